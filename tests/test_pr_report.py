"""The pull-request review's logic: what counts as stale, and what counts as noise."""

import json
import os
import subprocess
import sys

import pytest

from emoji_ae.config import PipelineError
from emoji_ae.tools import pr_report
from tests.conftest import REPO

OUTPUTS = {"data/prepared", "data/augmented", "models/ae", "reports/metrics.json", "reports/train_ae/architecture.txt"}


def test_missing_outputs_are_not_staleness_but_changed_code_params_and_edited_results_are():
    status = {
        "train_ae": [
            {
                "changed deps": {
                    "data/augmented": "deleted",
                    "emoji_ae/model.py": "modified",
                    "params.yaml": {"latent": "modified"},
                }
            },
            {"changed outs": {"models/ae": "not in cache", "reports/train_ae/architecture.txt": "not in cache"}},
        ],
        "augment": [
            {"changed deps": {"data/prepared": "deleted"}},
            {"changed outs": {"data/augmented": "not in cache"}},
        ],
        "evaluate": [{"changed outs": {"reports/metrics.json": "modified"}}],
        "report": [{"changed deps": {"stages/report.py": "deleted"}}, "changed command"],
    }
    assert pr_report.stale_reasons(status, OUTPUTS) == {
        "train_ae": ["emoji_ae/model.py modified", "param latent modified"],
        "evaluate": ["reports/metrics.json modified"],
        "report": ["stages/report.py deleted", "changed command"],
    }
    assert pr_report.stale_reasons({"augment": status["augment"]}, OUTPUTS) == {}
    assert pr_report.is_output("data/augmented/test.parquet", OUTPUTS) and not pr_report.is_output(
        "data/augmentedx", OUTPUTS
    )


@pytest.mark.parametrize("old, new, better, spread, expected", [
    (0.0200, 0.0201, "lower", 0.0004, "+0.0001 (+0.5%) (within noise, ±0.0004)"),
    (0.0200, 0.0190, "lower", 0.0004, "-0.001 (-5.0%) (better)"),
    (0.0200, 0.0210, "lower", 0.0004, "+0.001 (+5.0%) (worse)"),
    (0.93, 0.95, "higher", 0.035, "+0.02 (+2.2%) (within noise, ±0.035)"),
    (0.93, 0.90, "higher", 0.01, "-0.03 (-3.2%) (worse)"),
    (0.93, 0.95, "higher", None, "+0.02 (+2.2%) (noise not measured)"),
    (0.93, 0.93, "higher", 0.01, "no change"),
    (None, 0.5, "higher", 0.01, "new"),
    (0.5, None, "higher", 0.01, "removed"),
])
def test_a_change_within_the_measured_spread_is_noise_not_better_or_worse(old, new, better, spread, expected):
    assert pr_report.label(old, new, better, spread) == expected


def test_the_headline_table_judges_each_change_by_its_tolerance():
    base = {"ae": {"test_mse": 0.0200}, "aux": {"test_accuracy": 0.93}}
    head = {"ae": {"test_mse": 0.0199}, "aux": {"test_accuracy": 0.88}}
    # tolerance = t(3) * stdev * sqrt(2): 12.92 * 4.08e-5 * 1.414 = 0.00075 for these four runs
    noise = {
        "metrics": {
            "ae.test_mse": {"values": [0.0200, 0.02005, 0.01995, 0.0200]},
            "aux.test_accuracy": {"values": [0.93, 0.93]},
        }
    }
    head["judge_ae"] = {"top1": 0.2}  # a figure new in this change
    table = pr_report.headline_table(base, head, noise)
    assert "| ae.test_mse | 0.02 | 0.0199 | -0.0001 (-0.5%) (within noise, ±0.000746) |" in table
    assert "| aux.test_accuracy | 0.93 | 0.88 | -0.05 (-5.4%) (worse) |" in table  # every recorded run agreed: exact
    assert "| judge_ae.top1 | - | 0.2 | new |" in table


def event(tmp_path, head_repo, base_repo):
    path = tmp_path / "event.json"
    path.write_text(
        json.dumps(
            {"pull_request": {"head": {"repo": {"full_name": head_repo}}, "base": {"repo": {"full_name": base_repo}}}}
        )
    )
    return str(path)


def test_a_pull_request_from_a_fork_is_recognised_from_the_event(tmp_path):
    assert pr_report.pull_request_from_fork(event(tmp_path, "someone/emoji", "team/emoji"))
    assert not pr_report.pull_request_from_fork(event(tmp_path, "team/emoji", "team/emoji"))
    assert not pr_report.pull_request_from_fork(None) and not pr_report.pull_request_from_fork(
        str(tmp_path / "none.json")
    )


def test_posting_from_a_fork_degrades_to_the_job_summary_with_a_warning(tmp_path):
    comment = tmp_path / "pr_comment.md"
    comment.write_text("## Pipeline results\n")
    summary = tmp_path / "summary.md"
    env = {**os.environ, "PYTHONPATH": str(REPO), "GITHUB_EVENT_PATH": event(tmp_path, "someone/emoji", "team/emoji"),
           "GITHUB_STEP_SUMMARY": str(summary)}
    result = subprocess.run([sys.executable, "-m", "emoji_ae.tools.pr_report", "post", str(comment)], env=env,
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "::warning::pr_report: not posted, this pull request comes from a fork" in result.stdout
    assert summary.read_text() == "## Pipeline results\n"


def test_posting_without_cml_degrades_too(tmp_path, monkeypatch, capsys):
    comment = tmp_path / "pr_comment.md"
    comment.write_text("body\n")
    monkeypatch.setenv("PATH", str(tmp_path))  # no cml on it
    monkeypatch.delenv("GITHUB_EVENT_PATH", raising=False)
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    pr_report.post(comment)
    assert "not posted, CML is not installed" in capsys.readouterr().out


def test_pull_without_any_remote_says_so_and_goes_on(tmp_path, monkeypatch, capsys):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DVC_REMOTE_URL", raising=False)
    monkeypatch.setenv("PATH", f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
    pr_report.pull()
    assert "no DVC remote configured" in capsys.readouterr().out


def test_pull_from_an_unreachable_remote_is_one_line(tmp_path, monkeypatch):
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=tmp_path, check=True)
    (tmp_path / "x.txt").write_text("x")
    subprocess.run([sys.executable, "-m", "dvc", "add", "-q", "x.txt"], cwd=tmp_path, check=True)
    (tmp_path / "x.txt").unlink()
    subprocess.run(["rm", "-rf", str(tmp_path / ".dvc/cache")], check=True)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_REMOTE_URL", str(tmp_path / "no-such-remote"))
    monkeypatch.setenv("PATH", f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}")
    with pytest.raises(
        PipelineError, match="dvc pull failed: the team's remote lacks outputs of this commit"
    ) as caught:
        pr_report.pull()
    assert "\n" not in str(caught.value)
