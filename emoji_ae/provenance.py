"""Where and when a measurement was made, for the artefacts that tools commit (the benchmark,
the noise measurements, the frontier): date, commit, and the machine in words; and whether the
code and params they were made with are still the repository's."""

import datetime
import hashlib
import os
import platform
import re
import subprocess
from pathlib import Path

import torch
import yaml


def cpu_name() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else what platform knows."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine() -> str:
    accelerator = torch.cuda.get_device_name() if torch.cuda.is_available() else "no GPU"
    return f"{cpu_name()}, {os.cpu_count()} CPU threads, {accelerator}, torch {torch.__version__}"


def commit(writes: tuple[str, ...] = ()) -> str:
    """The checked-out commit, marked when the working tree has uncommitted changes other than
    `writes`: what the caller is writing, which DVC deletes before it runs a stage."""
    excluded = [f":(exclude){path}" for path in writes]
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", *excluded],
                               capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return f"{sha}+uncommitted" if dirty else sha


def provenance(writes: tuple[str, ...] = ()) -> dict:
    return {"date": datetime.date.today().isoformat(), "commit": commit(writes), "machine": machine()}


# What a committed measurement was made with, and whether the repository still has it. DVC records
# the md5 of every dependency in a lock file; these checks compare those records with the files,
# so a fast test sees a stale benchmark or frontier without running either.

class DvcYaml(yaml.SafeLoader):
    """DVC writes YAML 1.2, where 1e-05 is a number; PyYAML's 1.1 would read the string '1e-05'."""


DvcYaml.add_implicit_resolver("tag:yaml.org,2002:float", re.compile(
    r"^[-+]?(?:[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?|[0-9][0-9_]*[eE][-+]?[0-9]+|\.[0-9_]+(?:[eE][-+]?[0-9]+)?)$"),
    list("-+0123456789."))


def md5(path) -> str:
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


def lookup(tree: dict, dotted: str):
    for part in dotted.split("."):
        if not isinstance(tree, dict) or part not in tree:
            return None
        tree = tree[part]
    return tree


def stale_files(recorded: dict, what: str) -> list[str]:
    """One line per file of {path: md5} that changed or is gone."""
    lines = []
    for path, digest in sorted(recorded.items()):
        if not Path(path).is_file():
            lines.append(f"{what} was made with {path}, which no longer exists")
        elif md5(path) != digest:
            lines.append(f"{what} was made with another version of {path}")
    return lines


def stale_params(recorded: dict, params: dict, what: str) -> list[str]:
    return [f"{what} was made with {key}: {value!r}, params.yaml now has {lookup(params, key)!r}"
            for key, value in sorted(recorded.items()) if lookup(params, key) != value]


def stale_lock(lock_path, dvc_yaml_path, params: dict) -> list[str]:
    """What the stages of a DVC lock file were made with that the repository no longer has: code
    (Git-tracked files) that changed or is gone, params that changed, dependencies dvc.yaml lists
    that the lock lacks. Data under data/ is DVC's to check (`dvc status`); a fresh clone has none."""
    lock, spec = (yaml.load(Path(p).read_text(), Loader=DvcYaml) for p in (lock_path, dvc_yaml_path))
    lines = []
    for stage, entry in sorted(lock.get("stages", {}).items()):
        what, defined = (
            f"{lock_path} ({stage})",
            spec["stages"].get(stage.split("@")[0]),
        )  # a matrix cell: its stage's name
        if defined is None:
            lines.append(f"{what}: {dvc_yaml_path} has no such stage any more")
            continue
        deps = {d["path"]: d["md5"] for d in entry.get("deps", []) if not d["path"].startswith("data/")}
        listed = {dep_path(d) for d in defined.get("deps", [])}
        lines += [f"{what} lacks {path}, which its dvc.yaml now lists" for path in sorted(listed - set(deps))
                  if not path.startswith("data/") and Path(path).is_file()]
        lines += stale_files({path: digest for path, digest in deps.items() if not digest.endswith(".dir")}, what)
        lines += stale_params(entry.get("params", {}).get("params.yaml", {}), params, what)
    return lines


def dep_path(dep) -> str:
    """A dvc.yaml dependency's path: a plain string, or the key of a mapping with its options."""
    return dep if isinstance(dep, str) else next(iter(dep))


def code_of(stages: tuple[str, ...], dvc_yaml_path="dvc.yaml") -> dict:
    """{path: md5} of every file that the named stages of a dvc.yaml depend on, but data and models."""
    spec = yaml.safe_load(Path(dvc_yaml_path).read_text())["stages"]
    paths = {dep_path(d) for name in stages for d in spec[name].get("deps", [])}
    return {
        path: md5(path)
        for path in sorted(paths)
        if Path(path).is_file() and not path.startswith(("data/", "models/", "reports/"))
    }


def made_with(stages: tuple[str, ...], params_path="params.yaml") -> dict:
    """What a tool's measurement of the pipeline was made with: the code of the stages its figures
    come from, and the params."""
    return {"code": code_of(stages), "params": yaml.safe_load(Path(params_path).read_text())}


def stale_record(record: dict, params: dict, what: str) -> list[str]:
    """made_with() of a committed measurement against the repository now."""
    return stale_files(record["code"], what) + stale_params(flatten(record["params"]), params, what)


def flatten(tree: dict, prefix: str = "") -> dict:
    """{dotted key: value} of nested params."""
    out = {}
    for key, value in tree.items():
        out.update(flatten(value, f"{prefix}{key}.") if isinstance(value, dict) else {f"{prefix}{key}": value})
    return out
