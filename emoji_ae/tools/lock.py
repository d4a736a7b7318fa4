"""Pin every dependency, with hashes: requirements.lock (the pipeline) and requirements-test.lock
(the pipeline and the test extra, the same pins for what they share).

    pip install uv && python -m emoji_ae.tools.lock     # after editing pyproject.toml: keeps the pins it can
    python -m emoji_ae.tools.lock --upgrade             # the newest versions pyproject.toml allows
    python -m emoji_ae.tools.lock --from-environment    # exactly what this environment has installed

uv resolves (`uv pip compile`); pip installs (`pip install -r requirements.lock`). Each lock
starts with `# pyproject.toml: <digest>` of the requirements it was compiled from, which
tests/test_lock.py recomputes: a bound changed in pyproject.toml without a new lock fails it.
"""

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import tomllib

from emoji_ae.config import PipelineError, run_stage

PYPROJECT = Path("pyproject.toml")
LOCKS = {"requirements.lock": [], "requirements-test.lock": ["test"]}  # lock -> the extras it includes
PLATFORM = ["--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28"]  # the machines the README names


def digest(pyproject: Path, extras: list[str]) -> str:
    """What a lock answers for: Python's bound, the dependencies and the chosen extras, normalised."""
    from packaging.requirements import Requirement  # a dependency of DVC's; normalises "a >= 1" to "a>=1"

    project = tomllib.loads(pyproject.read_text())["project"]
    normal = lambda found: sorted(str(Requirement(r)) for r in found)  # noqa: E731
    spec = {
        "requires-python": project.get("requires-python", ""),
        "dependencies": normal(project.get("dependencies", [])),
        "extras": {e: normal(project.get("optional-dependencies", {}).get(e, [])) for e in extras},
    }
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def header(pyproject: Path, extras: list[str]) -> str:
    return f"# pyproject.toml: {digest(pyproject, extras)}\n"


def installed() -> str:
    """This environment's versions, as pip freeze writes them (the project itself left out)."""
    frozen = subprocess.run(
        [sys.executable, "-m", "pip", "freeze", "--exclude-editable"], capture_output=True, text=True, check=True
    ).stdout
    return "".join(
        line + "\n" for line in frozen.splitlines() if line and not line.startswith(("-e ", "emoji-autoencoder"))
    )


def compile_lock(uv: str, lock: str, extras: list[str], constraints: list[str], upgrade: bool) -> None:
    command = [uv, "pip", "compile", str(PYPROJECT), *[f"--extra={e}" for e in extras], "--generate-hashes", *PLATFORM,
               "--no-header", "--quiet", "-o", lock, *[f"--constraint={c}" for c in constraints]]
    if upgrade:
        command.append("--upgrade")
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise PipelineError(
            f"uv pip compile failed for {lock}: {(result.stderr.strip().splitlines() or ['no output'])[-1]}"
        )
    # uv names each constraints file in its "via" comments; a temporary one would make every update a diff.
    temporary = [c for c in constraints if c.startswith(tempfile.gettempdir())]
    body = "".join(
        line for line in Path(lock).read_text().splitlines(keepends=True) if not any(t in line for t in temporary)
    )
    Path(lock).write_text(
        header(PYPROJECT, extras)
        + "# update: pip install uv && python -m emoji_ae.tools.lock (docs/reproducibility.md)\n"
        + body
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--upgrade", action="store_true", help="the newest versions pyproject.toml allows")
    how.add_argument("--from-environment", action="store_true", help="exactly the versions installed here")
    args = parser.parse_args()
    uv = shutil.which("uv")
    if uv is None:
        raise PipelineError("uv is not installed: pip install uv, then run this again")
    if not PYPROJECT.exists():
        raise PipelineError("pyproject.toml not found: run this from the repository root")
    with tempfile.TemporaryDirectory() as tmp:
        constraints = []
        if args.from_environment:
            (Path(tmp) / "installed.txt").write_text(installed())
            constraints.append(str(Path(tmp) / "installed.txt"))
        compile_lock(uv, "requirements.lock", LOCKS["requirements.lock"], constraints, args.upgrade)
        # The test lock keeps the pipeline's pins, so both installs run the pipeline on the same versions.
        compile_lock(
            uv,
            "requirements-test.lock",
            LOCKS["requirements-test.lock"],
            [*constraints, "requirements.lock"],
            args.upgrade,
        )
    for lock in LOCKS:
        pins = sum("==" in line and not line.startswith((" ", "#")) for line in Path(lock).read_text().splitlines())
        print(f"wrote {lock}: {pins} pinned packages")


if __name__ == "__main__":
    run_stage(main)
