"""The noise measurement that the PR comment trusts: real retraining with other seeds."""

import json
import subprocess
import sys

import pytest

from emoji_ae.tools import noise, pr_report
from tests.conftest import venv_env

pytestmark = pytest.mark.e2e


def test_noise_retrains_with_other_seeds_and_records_each_metrics_spread(pipeline_copy):
    committed = json.loads((pipeline_copy / "reports/metrics.json").read_text())
    before = (pipeline_copy / "dvc.lock").read_text()
    result = subprocess.run([sys.executable, "-m", "emoji_ae.tools.noise", "--seeds", "1", "2"], cwd=pipeline_copy, env=venv_env(),
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    measured = json.loads((pipeline_copy / "reports/noise.json").read_text())
    assert measured["command"] == "python -m emoji_ae.tools.noise --seeds 1 2" and measured["runs"] == ["committed (seed 42)", "seed 1", "seed 2"]
    assert {"date", "commit", "machine"} <= set(measured)
    entry = measured["metrics"]["ae.test_mse"]
    assert entry["values"][0] == committed["ae"]["test_mse"] and len(entry["values"]) == 3
    assert entry["spread"] == max(entry["values"]) - min(entry["values"]) > 0  # other seeds, other weights
    assert "compose.ae.test.family_mean.beats_pixel" in measured["metrics"] and "aux.test_accuracy" in measured["metrics"]
    assert "judge_ae.top1" in measured["metrics"]  # the headline's own figures have a spread too
    assert (pipeline_copy / "dvc.lock").read_text() == before  # the workspace's pipeline is untouched

    # The PR comment reads it: a change inside the spread is noise, one beyond it is not.
    spread = entry["spread"]
    base = json.loads((pipeline_copy / "reports/headline.json").read_text())
    head = json.loads(json.dumps(base))
    head["ae"]["test_mse"] += spread / 2
    row = lambda table: next(line for line in table.splitlines() if line.startswith("| ae.test_mse |"))  # noqa: E731
    assert "(within noise" in row(pr_report.headline_table(base, head, measured))
    head["ae"]["test_mse"] += spread * 2
    assert "(worse)" in row(pr_report.headline_table(base, head, measured))


def test_noise_refuses_the_committed_seed_and_repeats(tmp_path, monkeypatch):
    from tests.conftest import tiny_params, write_params

    write_params(tmp_path, tiny_params())
    monkeypatch.chdir(tmp_path)
    for seeds in (["42"], ["1", "1"], ["-3"]):
        monkeypatch.setattr(sys, "argv", ["noise", "--seeds", *seeds])
        with pytest.raises(noise.PipelineError, match="give distinct non-negative seeds other than params.yaml's 42"):
            noise.main()
