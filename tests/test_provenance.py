"""Provenance of committed measurements: the commit is marked when the tree has other changes
than the files being written."""

import subprocess

from emoji_ae.provenance import commit, provenance


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True)


def test_the_commit_is_marked_only_for_changes_beyond_what_is_being_written(tmp_path, monkeypatch):
    git("init", "-q", cwd=tmp_path)
    for name in ("params.yaml", "result.json"):
        (tmp_path / name).write_text("a\n")
    git("add", ".", cwd=tmp_path)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "one", cwd=tmp_path)
    monkeypatch.chdir(tmp_path)
    sha = commit()
    assert sha and "+" not in sha

    (tmp_path / "result.json").unlink()  # DVC deletes a stage's outputs before it runs
    assert commit(writes=("result.json",)) == sha
    assert commit() == f"{sha}+uncommitted"
    (tmp_path / "params.yaml").write_text("b\n")
    assert commit(writes=("result.json",)) == f"{sha}+uncommitted"
    assert set(provenance()) == {"date", "commit", "machine"}


def test_a_reused_experiment_keeps_the_commit_it_was_run_from(tmp_path, monkeypatch):
    """frontier --reuse reads an experiment's metrics from Git; its point is its baseline's, not
    the commit the tool runs at."""
    from emoji_ae.tools import frontier

    (tmp_path / "reports").mkdir()
    (tmp_path / "reports/metrics.json").write_text('{"ae": {"val_mse_one_pass": 0.01}}')
    git("init", "-q", cwd=tmp_path)
    git("add", ".", cwd=tmp_path)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "baseline", cwd=tmp_path)
    monkeypatch.chdir(tmp_path)
    baseline = commit()
    full = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    git("update-ref", f"refs/exps/{full[:2]}/{full[2:]}/frontier-beta-1", full, cwd=tmp_path)
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty", "-m", "later", cwd=tmp_path)

    assert frontier.measured_metrics("beta 1", [], None, reuse=True) == ({"ae": {"val_mse_one_pass": 0.01}}, baseline)
    assert commit() != baseline
