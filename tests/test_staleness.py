"""The committed benchmark and frontier describe the repository's own code and params: a fast
check of the hashes they were made with (emoji_ae.provenance), without running either."""

import shutil

import yaml

from emoji_ae.files import read_json
from emoji_ae.paths import BENCHMARK_LOCK, BENCHMARK_SPEC
from emoji_ae.provenance import stale_lock, stale_record
from tests.conftest import REPO


def params_of(root) -> dict:
    return yaml.safe_load((root / "params.yaml").read_text())


def test_the_committed_benchmark_was_made_with_this_code_and_these_params(monkeypatch):
    monkeypatch.chdir(REPO)
    stale = stale_lock(BENCHMARK_LOCK, BENCHMARK_SPEC, params_of(REPO))
    assert not stale, (
        "reports/benchmark.md is stale: run `dvc repro benchmark/dvc.yaml` and commit its outputs\n" + "\n".join(stale)
    )


def test_the_committed_frontier_was_made_with_this_code_and_these_params(monkeypatch):
    monkeypatch.chdir(REPO)
    frontier = read_json("reports/frontier.json")
    stale = stale_record(frontier["made_with"], params_of(REPO), "reports/frontier.json")
    assert not stale, (
        "reports/frontier.json is stale: run `python -m emoji_ae.tools.frontier` and commit it\n" + "\n".join(stale)
    )


def test_a_changed_code_file_or_param_makes_the_benchmark_and_the_frontier_stale_by_name(tmp_path, monkeypatch):
    for name in ("benchmark", "emoji_ae", "stages", "params.yaml", "dvc.yaml", "reports/frontier.json"):
        source, copy = REPO / name, tmp_path / name
        copy.parent.mkdir(parents=True, exist_ok=True)
        shutil.copytree(source, copy) if source.is_dir() else shutil.copy2(source, copy)
    monkeypatch.chdir(tmp_path)
    frontier = read_json("reports/frontier.json")["made_with"]
    params = params_of(tmp_path)
    assert stale_lock(BENCHMARK_LOCK, BENCHMARK_SPEC, params) == [] and stale_record(frontier, params, "frontier") == []

    with open("emoji_ae/model.py", "a") as f:
        f.write("\n# a change\n")
    params["train"]["epochs"] += 1
    lines = stale_lock(BENCHMARK_LOCK, BENCHMARK_SPEC, params)
    assert "benchmark/dvc.lock (cell@ours-128) was made with another version of emoji_ae/model.py" in lines
    assert any(line.startswith("benchmark/dvc.lock (cell@ours-128) was made with train: ") for line in lines)
    assert not any("summary" in line for line in lines)  # the summary reads the cells, not the model
    assert set(stale_record(frontier, params, "frontier")) >= {
        "frontier was made with another version of emoji_ae/model.py",
        f"frontier was made with train.epochs: {params['train']['epochs'] - 1}, "
        f"params.yaml now has {params['train']['epochs']}",
    }

    (tmp_path / "emoji_ae/judge.py").unlink()
    assert "benchmark/dvc.lock (cell@ours-128) was made with emoji_ae/judge.py, which no longer exists" in stale_lock(
        BENCHMARK_LOCK, BENCHMARK_SPEC, params
    )
