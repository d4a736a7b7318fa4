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
