"""End to end: the whole DVC pipeline on tiny params in a temporary copy of the repo."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import yaml

from stages.model import load_model
from tests.conftest import copy_repo, dvc, tiny_params, venv_env, write_params

pytestmark = pytest.mark.e2e


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
    confusion = json.loads((pipeline / "reports/evaluate/confusion.json").read_text())
    assert len(confusion) == 40 and all(image["emoji"] for image in confusion)
    assert "wrong predictions fall on" in report or "Every test image is classified correctly" in report
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


def test_plots_html_draws_offline_in_headless_chromium(pipeline):
    dvc(pipeline, "plots", "show", "-o", "plots_html")
    page = pipeline / "plots_html/index.html"
    html = page.read_text()
    assert "ae: reconstruction MSE per epoch" in html and "reconstructions.png" in html
    assert "cdn.jsdelivr" not in html and "vega-embed" in html  # the vendored copies, inlined

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); the offline rendering check needs it")
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={pipeline / 'chromium-profile'}",
         "--virtual-time-budget=20000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180,
    ).stdout
    drawn = dom.count('class="marks"')  # vega-embed's rendered <svg>/<canvas> elements
    assert drawn >= 5, f"only {drawn} plots drew"


def test_pr_report_shows_metric_and_param_changes_with_signs(pipeline):
    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run([*git, "add", "-A"], cwd=pipeline, check=True)
    subprocess.run([*git, "commit", "-qm", "tiny, latent 16"], cwd=pipeline, check=True)
    params = yaml.safe_load((pipeline / "params.yaml").read_text())
    params["latent"] = 32
    write_params(pipeline, params)
    dvc(pipeline, "repro")
    subprocess.run([*git, "commit", "-qam", "latent 32"], cwd=pipeline, check=True)

    comment = subprocess.run([sys.executable, "-m", "stages.pr_report", "--base", "HEAD~1", "--head", "HEAD"],
                             cwd=pipeline, env=venv_env(), capture_output=True, text=True, check=True).stdout
    assert "## Pipeline results: `HEAD` against `HEAD~1`" in comment
    row = next(line for line in comment.splitlines() if line.startswith("| ae test MSE |"))
    assert re.search(r"\| [+-]\d", row), row  # a signed delta
    assert re.search(r"\| reports/metrics\.json +\| ae\.test_mse +\| [\d.]+ +\| [\d.]+ +\| -?[\d.]+", comment)  # dvc metrics diff
    assert re.search(r"\| params\.yaml +\| latent +\| 16 +\| 32 +\|", comment)  # dvc params diff
    assert "![Reconstructions](reports/evaluate/reconstructions.png)" in comment


def test_an_experiment_shows_its_params_and_metrics(pipeline):
    dvc(pipeline, "exp", "run", "-S", "latent=64", "--name", "latent64")
    table = dvc(pipeline, "exp", "show", "--md", "--no-pager")
    assert "latent64" in table and "ae.test_mse" in table
    row = next(line for line in table.splitlines() if "latent64" in line)
    assert "| 64 " in row


def test_killed_training_leaves_no_truncated_output_and_repro_recovers(pipeline):
    params = yaml.safe_load((pipeline / "params.yaml").read_text())
    params["train"]["epochs"] = 200  # long enough to be killed mid-training
    write_params(pipeline, params)
    run = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "train_ae"], cwd=pipeline, env=venv_env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    metrics = pipeline / "reports/train_ae/metrics.json"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and '"step": 2' in metrics.read_text()):
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()

    model = pipeline / "models/ae/model.pt"
    if model.exists():  # the previous run's model, whole; never a half-trained or truncated one
        load_model(model)
    json.loads(metrics.read_text())  # whole, not truncated
    params["train"]["epochs"] = 2
    write_params(pipeline, params)
    dvc(pipeline, "repro")
    assert "up to date" in dvc(pipeline, "status")
