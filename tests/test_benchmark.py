"""The benchmark as a DVC pipeline of its own: cells through the experiment queue, then collected
from the run-cache by `dvc repro benchmark/dvc.yaml`."""

import json
import shutil
import subprocess
import sys
import time

import pytest
import yaml

from tests.conftest import REPO, dvc, git, venv_env

pytestmark = pytest.mark.e2e


def test_the_benchmark_matrix_follows_params_and_is_not_part_of_the_default_pipeline():
    spec = yaml.safe_load((REPO / "benchmark/dvc.yaml").read_text())
    assert (
        spec["vars"] == ["../params.yaml:benchmark"]
        and spec["stages"]["cell"]["matrix"]["latent"] == "${benchmark.latents}"
    )
    default = yaml.safe_load((REPO / "dvc.yaml").read_text())
    outs = {out if isinstance(out, str) else next(iter(out)) for stage in default["stages"].values()
            for key in ("outs", "metrics", "plots") for out in stage.get(key, [])}
    deps = {dep for stage in default["stages"].values() for dep in stage.get("deps", [])}
    made_by_the_benchmark = ("benchmark/cells", "reports/benchmark")  # its outputs: a dependency on one would run it
    assert not any(dep.startswith(made_by_the_benchmark) for dep in deps)  # `dvc repro` never runs it
    assert not any(out.startswith("benchmark/") for out in outs)


def forget_the_benchmark(repo) -> None:
    """The benchmark as if never run: no results, no lock, an empty run-cache."""
    for result in (
        "benchmark/dvc.lock",
        "benchmark/cells",
        "reports/benchmark.json",
        "reports/benchmark.md",
        "reports/benchmark",
        ".dvc/cache/runs",
    ):
        path = repo / result
        shutil.rmtree(path) if path.is_dir() else path.unlink()
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "no benchmark yet")


def test_cells_run_in_the_queue_and_the_pipeline_collects_them_from_the_run_cache(private_pipeline_copy):
    pipeline_copy = private_pipeline_copy
    forget_the_benchmark(pipeline_copy)
    cells = ("reference-32", "ours-32")  # the tiny params' one size: both models, side by side
    for cell in cells:
        dvc(pipeline_copy, "exp", "run", "--queue", f"benchmark/dvc.yaml:cell@{cell}")
    # The workers outlive `dvc queue start` and inherit its output: captured, they would hold the
    # pipe open and the call would never return.
    subprocess.run([sys.executable, "-m", "dvc", "queue", "start", "-j", "2"], cwd=pipeline_copy, env=venv_env(),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, timeout=120)
    deadline = time.time() + 600
    while time.time() < deadline:  # until both are done, asking at most every second
        status = dvc(pipeline_copy, "queue", "status")
        if "Running" not in status and "Queued" not in status:
            break
        time.sleep(1)
    assert status.count("Success") == 2, status

    ran = dvc(pipeline_copy, "repro", "benchmark/dvc.yaml")
    for cell in cells:
        assert f"Stage 'benchmark/dvc.yaml:cell@{cell}' is cached - skipping run" in ran, ran
    assert "Running stage 'benchmark/dvc.yaml:summary'" in ran
    result = json.loads((pipeline_copy / "reports/benchmark.json").read_text())
    assert [row["latent"] for row in result["rows"]] == [32] and {"date", "commit", "machine"} <= set(result)
    for row in result["rows"]:
        assert row["ratio_one_pass"] == row["ours"]["test_mse_one_pass"] / row["reference"]["test_mse_one_pass"]
        for model in ("reference", "ours"):
            assert 0 < row[model]["test_ssim_one_pass"] <= 1 and row[model]["test_mse"] > 0
    table = (pipeline_copy / "reports/benchmark.md").read_text()
    assert (
        "| 32 |" in table
        and (pipeline_copy / "reports/benchmark/rate_distortion.png").stat().st_size > 1000
    )
    assert "up to date" in dvc(pipeline_copy, "status", "benchmark/dvc.yaml")


def test_a_cell_called_wrongly_says_how_to_call_it(tiny_pipeline):
    result = subprocess.run([sys.executable, "-m", "benchmark.cell", "ours", "abc"], cwd=tiny_pipeline, env=venv_env(),
                            capture_output=True, text=True)
    assert result.returncode == 1 and result.stderr == "error: usage: python -m benchmark.cell reference|ours LATENT\n"
