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

from emoji_ae.metrics import accuracy_interval
from emoji_ae.model import load_model
from tests.conftest import CARD_EXPERIMENT, REPO, TINY_LATENT, dvc, venv_env, write_params

pytestmark = pytest.mark.e2e


def test_repro_writes_metrics_report_and_figures(tiny_pipeline):
    metrics = json.loads((tiny_pipeline / "reports/metrics.json").read_text())
    for name in ("ae", "aux"):
        assert 0 < metrics[name]["test_mse"] < 0.5 and metrics[name]["test_psnr"] > 0
    assert 0 <= metrics["aux"]["test_accuracy"] <= 1
    assert sum(metrics["compose"]["n_analogies"]["test"].values()) > 10
    held_out = metrics["compose"]["ae"]["test"]["family_mean"]
    assert 0 <= held_out["top5"] <= 1 and 0 <= held_out["beats_pixel"] <= 1 and held_out["gap"] > 0
    by_kind = metrics["compose"]["ae"]["test"]["family_mean_by_kind"]
    assert (
        by_kind["variant"]["n"] > 10 and by_kind["name"]["n"] > 10 and by_kind["style"]["n"] > 10
    )  # skin tones and genders of every glyph
    assert (
        metrics["compose"]["subset"]["ae"]["test"]["family_mean"]["n"] < held_out["n"]
    )  # the subset's own, reported apart
    assert [r["answer"] for r in metrics["compose"]["recipes"]["ae"]] == [
        "cat face with tears of joy"
    ]  # the assignment's recipe
    assert (
        metrics["ae"]["one_pass_vs_reference"]
        == metrics["ae"]["test_mse_one_pass"] / metrics["reference"]["test_mse_one_pass"]
    )
    assert 0 < metrics["ae"]["test_ssim"] <= 1 and 0 < metrics["reference"]["test_ssim_one_pass"] <= 1

    report = (tiny_pipeline / "reports/report.md").read_text()
    for heading in ("### (a) The dataset", "### (b) Architecture", "### (e) Learning curves", "### (f) Test error",
                    "## 2. Auxiliary classification", "### (e) An experiment", "## 3. Composition"):
        assert heading in report
    assert f"{metrics['ae']['test_mse']:.4f}" in report
    confusion = json.loads((tiny_pipeline / "reports/evaluate/confusion.json").read_text())
    assert len(confusion) == 40 and all(image["emoji"] for image in confusion)
    assert "Wrong predictions by emoji: " in report
    first_screen = report[: report.index("## 1. Autoencoder")]  # what a reader looks at first
    assert "](evaluate/reconstructions.png)" in first_screen and "](compose/ae/recipe_" in first_screen
    assert "| true emoji is the nearest drawing (top-1) |" in first_screen
    assert report.count("composite MSE / pixel arithmetic's") == 1  # the MSE breakdown, once, in the appendix
    for link in (
        "evaluate/learning_curves.png",
        "evaluate/reconstructions.png",
        "compose/ae/analogies.png",
        "compose/ae/benchmark.png",
    ):
        assert f"]({link})" in report and (tiny_pipeline / "reports" / link).stat().st_size > 1000
    assert "](frontier.png)" in report and "](benchmark.md)" in report  # the committed artefacts, linked
    latents = __import__("torch").load(tiny_pipeline / "models/ae/latents.pt", weights_only=True)
    assert latents["train"]["z"].shape == (100, TINY_LATENT) and len(latents["test"]["text"]) == 40


def figures(text: str) -> set[str]:
    """The measured-looking figures of a text: decimals with 3+ places, percentages with one."""
    return set(re.findall(r"(?<![\w.])\d+\.\d{3,}(?![\d])|(?<![\w.])\d+\.\d%", text))


def run_figures(repo) -> set[str]:
    """Every way the report may print a number this run computed, or a param it was given."""
    values = []
    for path in [
        "reports/metrics.json",
        "reports/prepare/summary.json",
        *map(str, (repo / "reports").glob("train_*/metrics.json")),
    ]:
        values += leaves(json.loads((repo / path).read_text()))
    confusion = json.loads((repo / "reports/evaluate/confusion.json").read_text())
    values += accuracy_interval(confusion, yaml.safe_load((repo / "params.yaml").read_text())["seed"])
    printed = {format(v, f) for v in values for f in (".3f", ".4f", ".5f", ".1%")}
    return printed | figures((repo / "params.yaml").read_text())


def leaves(tree) -> list[float]:
    if isinstance(tree, dict):
        return [v for value in tree.values() for v in leaves(value)]
    if isinstance(tree, list):
        return [v for value in tree for v in leaves(value)]
    return [tree] if isinstance(tree, (int, float)) and not isinstance(tree, bool) else []


def test_the_report_quotes_only_what_this_run_computed(tiny_pipeline):
    default_run = figures((REPO / "reports/report.md").read_text())
    tiny_report = (tiny_pipeline / "reports/report.md").read_text()
    assert len(default_run) > 20  # the committed report is full of the default run's figures
    leaked = (default_run & figures(tiny_report)) - run_figures(tiny_pipeline)
    assert not leaked, f"the tiny run's report quotes figures of the default run: {sorted(leaked)}"


def test_second_repro_is_up_to_date_and_forced_rerun_gives_identical_hashes(pipeline_copy):
    assert "Data and pipelines are up to date" in dvc(pipeline_copy, "status")
    lock = (pipeline_copy / "dvc.lock").read_text()
    metrics = (pipeline_copy / "reports/metrics.json").read_text()
    dvc(pipeline_copy, "repro", "--force")
    assert (pipeline_copy / "dvc.lock").read_text() == lock  # every output, models included
    assert (pipeline_copy / "reports/metrics.json").read_text() == metrics


def test_plots_html_draws_offline_in_headless_chromium(pipeline_copy):
    dvc(pipeline_copy, "plots", "show", "-o", "plots_html")
    page = pipeline_copy / "plots_html/index.html"
    html = page.read_text()
    assert (
        "reports/train_ae/plots/metrics/val/mse.tsv" in html and "reconstructions.png" in html
    )  # a curve, once, and a figure
    assert "cdn.jsdelivr" not in html and "vega-embed" in html  # the vendored copies, inlined

    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip(
            "Chromium is not installed (Debian: apt-get install chromium); the offline rendering check needs it"
        )
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--no-first-run", f"--user-data-dir={pipeline_copy / 'chromium-profile'}",
         "--virtual-time-budget=20000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=180,
    ).stdout
    drawn = dom.count('class="marks"')  # vega-embed's rendered <svg>/<canvas> elements
    assert drawn >= 5, f"only {drawn} plots drew"


def test_the_cards_experiment_command_runs_as_written_and_shows_its_params_shape_and_metrics(card_experiment):
    """`dvc exp run -S latent=32`, exactly as the README and params.yaml give it (run once for the
    session, and its failure shown, by the fixture): the rule shapes the size."""
    assert " ".join(CARD_EXPERIMENT) in (REPO / "README.md").read_text()
    shown = json.loads(dvc(card_experiment, "exp", "show", "--json"))
    experiment = next(e for rev in shown for e in (rev.get("experiments") or []) if e)
    data = experiment["revs"][0]["data"]
    assert data["params"]["params.yaml"]["data"]["latent"] == 32
    headline = data["metrics"]["reports/headline.json"]["data"]
    assert headline["shape"] == {"attribute": 0, "grid": 4, "channels": 2}  # 32 values: 4x4x2
    assert "ae" in headline and headline["ae"]["test_mse_one_pass"] > 0


def test_killed_training_leaves_no_truncated_output_and_repro_recovers(pipeline_copy):
    params = yaml.safe_load((pipeline_copy / "params.yaml").read_text())
    params["train"]["epochs"] = 200  # long enough to be killed mid-training
    write_params(pipeline_copy, params)
    run = subprocess.Popen([sys.executable, "-m", "dvc", "repro", "train_ae"], cwd=pipeline_copy, env=venv_env(),
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    metrics = pipeline_copy / "reports/train_ae/metrics.json"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and '"step": 2' in metrics.read_text()):
        time.sleep(0.2)
    os.killpg(run.pid, signal.SIGKILL)
    run.wait()

    model = pipeline_copy / "models/ae/model.pt"
    if model.exists():  # the previous run's model, whole; never a half-trained or truncated one
        load_model(model)
    json.loads(metrics.read_text())  # whole, not truncated
    params["train"]["epochs"] = 2
    write_params(pipeline_copy, params)
    dvc(pipeline_copy, "repro")
    assert "up to date" in dvc(pipeline_copy, "status")


def metric_values(tree) -> int:
    if isinstance(tree, dict):
        return sum(metric_values(value) for value in tree.values())
    return 1 if isinstance(tree, (int, float)) and not isinstance(tree, bool) else 0


def test_a_reviewer_sees_the_headline_first_and_each_curve_once(tiny_pipeline, tmp_path):
    shown = json.loads(dvc(tiny_pipeline, "exp", "show", "--json"))
    workspace = next(entry for entry in shown if entry["rev"] == "workspace")
    metrics = workspace["data"]["metrics"]
    headline = metrics["reports/headline.json"]["data"]
    assert next(iter(headline["ae"])) == "test_mse" and 20 <= metric_values(headline)
    assert set(metrics) <= {"reports/headline.json", "reports/benchmark/headline.json"}, set(
        metrics
    )  # the breakdowns are outputs
    assert sum(metric_values(m.get("data", {})) for m in metrics.values()) <= 40
    plots = json.loads(dvc(tiny_pipeline, "plots", "show", "--json", "-o", str(tmp_path / "plots")))
    ids = list(plots.get("data", plots))
    curves = [i for i in ids if i.endswith(".tsv")]
    assert len(curves) == len(set(curves)) and "reports/train_ae/plots/metrics/val/mse.tsv" in curves
    assert all("/" in i for i in ids), ids  # no top-level plot drawing a stage's curves a second time
