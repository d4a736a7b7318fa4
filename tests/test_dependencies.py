"""dvc.yaml's code dependencies cannot drift: each stage lists exactly the repository's Python files
that its script imports, directly or through others (the packages' __init__.py included), and the
templates it renders, so a change to any of them re-runs the stage, and a listed file it no longer
uses does not."""

import ast
import re
from pathlib import Path

import pytest
import yaml

from tests.conftest import REPO

PIPELINES = ("dvc.yaml", "benchmark/dvc.yaml")
PACKAGES = ("emoji_ae", "stages", "benchmark")


def module_file(name: str, root: Path) -> Path | None:
    """The repository file of a dotted module name, or None for a module from elsewhere."""
    if name.split(".")[0] not in PACKAGES:
        return None
    path = root.joinpath(*name.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def imports_of(path: Path, root: Path) -> set[Path]:
    """The repository files that importing `path` imports at once: its imports and their packages."""
    module = ".".join(path.relative_to(root).with_suffix("").parts).removesuffix(".__init__")
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the importing module's package
                package = module.split(".")[: len(module.split(".")) - node.level + (path.name == "__init__.py")]
                base = ".".join([*package, *([base] if base else [])])
            names.add(base)
            names |= {f"{base}.{alias.name}" for alias in node.names}  # `from pkg import module`
    files = set()
    for name in names:
        parts = name.split(".")
        for depth in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__.py and a/b/__init__.py too
            found = module_file(".".join(parts[:depth]), root)
            if found is not None and found.is_file():
                files.add(found)
    return files - {path}


def closure(script: Path, root: Path) -> set[str]:
    """Every repository file that running `script` (`python -m`) imports, itself and its package's
    __init__.py included, as paths from the root."""
    seen, todo = set(), [script, script.parent / "__init__.py"]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        todo += imports_of(path, root)
    return {str(p.relative_to(root)) for p in seen}


def script_of(cmd: str, root: Path) -> Path:
    match = re.match(r"python -m ([\w.]+)", cmd)
    assert match, f"not a `python -m` command: {cmd}"
    return module_file(match.group(1), root)


def drift(root: Path) -> list[str]:
    """One line per stage and file where dvc.yaml's code dependencies and the import closure differ."""
    problems = []
    for pipeline in PIPELINES:
        for stage, spec in yaml.safe_load((root / pipeline).read_text())["stages"].items():
            script = script_of(spec["cmd"].replace("${item.model}", "").strip(), root)
            listed = {dep for dep in spec["deps"] if dep.endswith((".py", ".j2"))}
            imported = closure(script, root)
            imported |= {
                f"emoji_ae/templates/{name}"
                for path in imported  # the templates it renders (emoji_ae.markdown)
                for name in re.findall(r'render\("([\w.]+)"', (root / path).read_text())
            }
            problems += [
                f"{pipeline}: stage {stage} imports {path}, which its deps do not list"
                for path in sorted(imported - listed)
            ]
            problems += [
                f"{pipeline}: stage {stage} lists {path}, which it does not import"
                for path in sorted(listed - imported)
            ]
    return problems


def test_every_stage_lists_exactly_the_code_it_imports():
    assert not drift(REPO), "\n".join(drift(REPO))


@pytest.mark.parametrize("stage, module", [("train_reference", "emoji_ae.metrics"), ("card", "emoji_ae.judge")])
def test_an_import_added_without_its_dependency_is_named(tmp_path, stage, module):
    for name in (*PACKAGES, *PIPELINES):
        source = REPO / name
        if source.is_dir():
            for path in [*source.rglob("*.py"), *source.rglob("*.j2")]:
                (tmp_path / path.relative_to(REPO)).parent.mkdir(parents=True, exist_ok=True)
                (tmp_path / path.relative_to(REPO)).write_text(path.read_text())
        else:
            (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / name).write_text(source.read_text())
    spec = yaml.safe_load((tmp_path / "dvc.yaml").read_text())["stages"][stage]
    script = script_of(spec["cmd"], tmp_path)
    script.write_text(f"import {module}\n" + script.read_text())
    added = module_file(module, tmp_path).relative_to(tmp_path)
    assert any(line.startswith(f"dvc.yaml: stage {stage} imports {added}") for line in drift(tmp_path)), drift(tmp_path)
