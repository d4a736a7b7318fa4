"""The GitHub workflows, checked offline: they parse, and every `dvc`, `python -m` and `cml`
command they run exists with the options they give it. (They run on GitHub and on a cloud runner,
which this project's machines cannot reach.)"""

import re
import shlex
import shutil
import subprocess
import sys

import pytest
import yaml

from tests.conftest import REPO, venv_env

WORKFLOWS = sorted((REPO / ".github/workflows").glob("*.yaml"))


def commands(workflow) -> list[list[str]]:
    """Each simple command of each step's `run:` script, ${{ expressions }} replaced by a word."""
    spec = yaml.safe_load(workflow.read_text())
    found = []
    for job in spec["jobs"].values():
        for step in job["steps"]:
            script = re.sub(r"\$\{\{[^}]*\}\}", "X", step.get("run", ""))
            for line in re.split(r"\n|&&|\|\||;", script):
                words = shlex.split(line.replace(">", " > "), comments=True)
                if words and words[0] in ("dvc", "python", "cml"):
                    found.append(words[: words.index(">")] if ">" in words else words)
    return found


def test_the_workflows_parse_and_run_on_the_events_they_name():
    assert [w.name for w in WORKFLOWS] == ["cloud.yaml", "pr.yaml"]
    for workflow in WORKFLOWS:
        spec = yaml.safe_load(workflow.read_text())
        assert spec["jobs"] and spec[True]  # `on:` (YAML 1.1 reads the key as True)
        assert all(step.get("uses") or step.get("run") for job in spec["jobs"].values() for step in job["steps"])


def subcommand(words: list[str], first_option: int) -> list[str]:
    return [w for w in words[1:first_option] if re.fullmatch(r"[a-z]+", w)][:2]


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=lambda w: w.name)
def test_every_dvc_and_python_command_they_run_exists_with_its_options(workflow):
    checked = 0
    for words in commands(workflow):
        if words[0] == "cml":
            continue
        if words[0] == "python":
            assert words[1] == "-m", words
            module, rest = words[2], words[3:]
            command = [sys.executable, "-m", module, *[w for w in rest[:1] if not w.startswith("-")], "--help"]
        else:
            options = [i for i, w in enumerate(words) if w.startswith("-")] + [len(words)]
            command = [sys.executable, "-m", "dvc", *subcommand(words, options[0]), "--help"]
            rest = words
        result = subprocess.run(command, cwd=REPO, env=venv_env(), capture_output=True, text=True)
        assert result.returncode == 0, f"{' '.join(words)}: {result.stderr}"
        for option in {w.split("=")[0] for w in rest if w.startswith("-")}:
            assert re.search(rf"(^|[\s,\[]){re.escape(option)}\b", result.stdout), (
                f"{' '.join(words)}: {option} is not an option"
            )
        checked += 1
    assert checked >= 4


@pytest.mark.skipif(
    shutil.which("cml") is None,
    reason="CML is not installed here (npm: @dvcorg/cml, which this machine's registry mirror lacks)",
)
def test_every_cml_command_they_run_exists():
    for workflow in WORKFLOWS:
        for words in commands(workflow):
            if words[0] == "cml":
                result = subprocess.run(["cml", *words[1:3], "--help"], capture_output=True, text=True)
                assert result.returncode == 0, f"{' '.join(words)}: {result.stderr}"
