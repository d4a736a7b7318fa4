"""End to end: the whole DVC pipeline on tiny params in a temporary copy of the repo."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import copy_repo, tiny_params, write_params

pytestmark = pytest.mark.e2e


def dvc(repo: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory):
    repo = copy_repo(tmp_path_factory.mktemp("repo"))
    write_params(repo, tiny_params())
    dvc(repo, "repro")
    return repo


def test_repro_writes_metrics_report_and_figures(pipeline):
    metrics = json.loads((pipeline / "reports/metrics.json").read_text())
    for name in ("ae", "aux"):
        assert 0 < metrics[name]["test_mse"] < 0.5 and metrics[name]["test_psnr"] > 0
    assert 0 <= metrics["aux"]["test_accuracy"] <= 1
    assert metrics["compose"]["n_analogies"] > 10 and 0 <= metrics["compose"]["ae"]["family_mean"]["top5"] <= 1

    report = (pipeline / "reports/report.md").read_text()
    for heading in ("### (a) The dataset", "### (b) Architecture", "### (e) Learning curves", "### (f) Test error",
                    "## 2. Auxiliary classification", "### (e) An experiment", "## 3. Composition"):
        assert heading in report
    assert f"{metrics['ae']['test_mse']:.4f}" in report
    for link in ("evaluate/learning_curves.png", "evaluate/reconstructions.png", "compose/ae/analogies.png"):
        assert f"]({link})" in report and (pipeline / "reports" / link).stat().st_size > 1000
    latents = __import__("torch").load(pipeline / "models/ae/latents.pt", weights_only=True)
    assert latents["train"]["z"].shape == (100, 16) and len(latents["test"]["text"]) == 40


def test_second_repro_is_up_to_date_and_forced_rerun_gives_identical_hashes(pipeline):
    assert "Data and pipelines are up to date" in dvc(pipeline, "status")
    lock = (pipeline / "dvc.lock").read_text()
    metrics = (pipeline / "reports/metrics.json").read_text()
    dvc(pipeline, "repro", "--force")
    assert (pipeline / "dvc.lock").read_text() == lock  # every output, models included
    assert (pipeline / "reports/metrics.json").read_text() == metrics


def test_plots_render_and_an_experiment_shows_its_metrics(pipeline):
    dvc(pipeline, "plots", "show", "-o", "plots_html")
    html = (pipeline / "plots_html/index.html").read_text()
    assert "ae: reconstruction MSE per epoch" in html and "reconstructions.png" in html

    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qam", "tiny"], cwd=pipeline, check=True)
    dvc(pipeline, "exp", "run", "-S", "latent=32", "--name", "latent32")
    table = dvc(pipeline, "exp", "show", "--md", "--no-pager")
    assert "latent32" in table and "ae.test_mse" in table
    shown = json.loads(dvc(pipeline, "exp", "show", "--json"))
    assert yaml.safe_dump(shown)  # machine-readable too
