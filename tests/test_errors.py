"""Bad input, as a user meets it: a stage fails with one line on stderr that names the problem
and the fix, exits non-zero, and writes nothing. The stages run in-process through the same
`run_stage` wrapper as `python -m stages.<name>`, which the last test runs as a real command."""

import importlib
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from emoji_ae import config
from tests.conftest import REPO, synthetic_params, tiny_params, write_params, write_valhalla_parquet


@pytest.fixture
def stage(monkeypatch, capsys):
    """Runs a stage's main() as its command would, in a directory: exit code and stderr."""
    # A library's log handler made in an earlier test writes to that test's closed capture
    # stream; in a real command there is one stream, so such a write cannot fail.
    monkeypatch.setattr(logging, "raiseExceptions", False)

    def run(directory: Path, module: str, *argv: str) -> SimpleNamespace:
        monkeypatch.chdir(directory)
        monkeypatch.setattr(sys, "argv", [module, *argv])
        capsys.readouterr()
        try:
            config.run_stage(importlib.import_module(module).main)
            code = 0
        except SystemExit as e:
            code = e.code
        return SimpleNamespace(returncode=code, stderr=capsys.readouterr().err)
    return run


def assert_clean_failure(result, *fragments):
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: ")
    for fragment in fragments:
        assert fragment in last


def files_under(directory: Path) -> set:
    return {p.relative_to(directory) for p in directory.rglob("*") if p.is_file()}


def bad(source_dir: Path, **changes) -> dict:
    params = synthetic_params(write_valhalla_parquet(source_dir / "emoji.parquet"))
    for dotted, value in changes.items():
        *parents, key = dotted.split("__")
        target = params
        for parent in parents:
            target = target[parent]
        target[key] = value
    return params


CASES = {
    "latent zero": ({"latent": 0}, ["latent"]),
    "latent not an integer": ({"latent": 1.5}, ["latent"]),
    "size not positive": ({"data__size": -16}, ["data.size"]),
    "split not summing to one": ({"data__split": {"train": 0.5, "val": 0.2, "test": 0.2}}, ["sum to 1"]),
    "negative learning rate": ({"train__lr": -1.0}, ["train.lr"]),
    "negative epochs": ({"train__epochs": -3}, ["train.epochs"]),
    "typo in a key": ({"train__epocs": 3}, ["train.epocs: unknown key (did you mean 'epochs'?)"]),
    "filter selects nothing": ({"data__include": ["spaceship"]}, ["widen data.include"]),
    "class empty in a split": (
        {"data__classes": [{"name": "tiger", "words": ["tiger"]}, {"name": "rest", "words": []}]},
        ["class tiger has no emoji"],
    ),
    "bad variant pattern": ({"data__variants": ["type ("]}, ["data.variants: 'type (' is not a regular expression"]),
    "empty source list": ({"data__source": []}, ["data.source"]),
    "source listed twice": ({"data__source": ["openmoji", "openmoji"]}, ["lists an empty or repeated source"]),
    "source that is not parquet": (
        {"data__source": "params.yaml"},
        ["could not be read as a parquet file or image folder"],
    ),
    "missing local source": ({"data__source": "nowhere/emoji.parquet"}, ["does not exist"]),
    "unknown source": ({"data__source": "opnemoji"}, ["'opnemoji' does not exist", "data.source=openmoji"]),
    "unreachable hub": ({"data__source": "someone/not-reachable"}, ["data.source=openmoji"]),
}


@pytest.mark.parametrize("case", CASES)
def test_prepare_rejects_bad_input_in_one_line_and_writes_nothing(case, tmp_path, stage, monkeypatch):
    changes, fragments = CASES[case]
    work = tmp_path / "work"
    work.mkdir()
    write_params(work, bad(tmp_path, **changes))
    before = files_under(work)
    # Offline, as the machines are: the libraries read these when imported, so set both ways.
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_OFFLINE", True)
    monkeypatch.setattr("datasets.config.HF_HUB_OFFLINE", True)
    assert_clean_failure(stage(work, "stages.prepare"), *fragments)
    assert files_under(work) == before


def test_compose_rejects_an_unknown_name_with_the_closest_names(tmp_path, stage):
    params = bad(tmp_path)
    write_params(tmp_path, params)
    assert stage(tmp_path, "stages.prepare").returncode == 0
    params["compose"]["recipes"] = ["nerd face - crying face + weary cat fase"]
    write_params(tmp_path, params)
    before = files_under(tmp_path)
    result = stage(tmp_path, "stages.compose")
    assert_clean_failure(result, "'weary cat fase'", "closest: 'weary cat face'")
    assert files_under(tmp_path) == before


def test_training_stage_without_data_says_to_run_the_earlier_stages_from_the_command_line(tmp_path):
    write_params(tmp_path, tiny_params())
    result = subprocess.run(
        [sys.executable, "-m", "stages.train", "ae"],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
    )
    assert_clean_failure(result, "run the earlier stages first")
