"""Working as a team, end to end, with real parts: a WebDAV server (wsgidav) on 127.0.0.1 as the
DVC remote (through dvc-webdav), a bare Git repository as origin, fresh clones, DVC's run-cache,
shared experiments and registered models."""

import hashlib
import re
import shutil
import socket
import subprocess
import sys
import time

import pytest
import torch
import yaml

from emoji_ae.model import load_model
from tests.conftest import REPO, dvc, git, share_cache, venv_env, write_params

pytestmark = pytest.mark.e2e

USER, PASSWORD = "alice", "correct horse"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def webdav(tmp_path_factory):
    """A wsgidav server on loopback with basic auth; its storage is a temporary folder."""
    root = tmp_path_factory.mktemp("webdav")
    (root / "storage" / "emoji").mkdir(parents=True)
    port = free_port()
    config = root / "wsgidav.yaml"
    config.write_text(yaml.safe_dump({
        "host": "127.0.0.1", "port": port, "provider_mapping": {"/": str(root / "storage")}, "verbose": 1,
        "http_authenticator": {"accept_basic": True, "accept_digest": False, "default_to_digest": False},
        "simple_dc": {"user_mapping": {"*": {USER: {"password": PASSWORD}}}}, "logging": {"enable_loggers": []},
    }))
    log = open(root / "server.log", "w")
    server = subprocess.Popen(
        [shutil.which("wsgidav", path=venv_env()["PATH"]), "-c", str(config)], stdout=log, stderr=subprocess.STDOUT
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            assert server.poll() is None, (root / "server.log").read_text()
            time.sleep(0.2)
    else:
        server.kill()
        pytest.fail("wsgidav did not start within 30 s")
    yield {"url": f"webdav://127.0.0.1:{port}/emoji", "storage": root / "storage" / "emoji"}
    server.terminate()
    server.wait(timeout=10)
    log.close()


def credentials(repo) -> None:
    dvc(repo, "remote", "modify", "--local", "team", "user", USER)
    dvc(repo, "remote", "modify", "--local", "team", "password", PASSWORD)


@pytest.fixture(scope="module")
def team(tiny_pipeline, webdav, tmp_path_factory):
    """The tiny pipeline with the WebDAV remote committed as default, pushed with its run-cache,
    and its Git history in a bare repository, as a team's origin."""
    root = tmp_path_factory.mktemp("team")
    work = share_cache(tiny_pipeline, root / "alice")
    dvc(work, "remote", "add", "-d", "team", webdav["url"])
    credentials(work)
    git(work, "add", ".dvc/config")
    git(work, "commit", "-qm", "the team's DVC remote")
    git(root, "init", "-q", "--bare", "--initial-branch=main", "origin.git")
    git(work, "remote", "add", "origin", str(root / "origin.git"))
    git(work, "push", "-q", "origin", "HEAD:main")
    dvc(work, "push", "--run-cache")
    return {"work": work, "origin": root / "origin.git", "root": root}


def fresh_clone(team, name):
    clone = team["root"] / name
    git(team["root"], "clone", "-q", str(team["origin"]), str(clone))
    credentials(clone)
    return clone


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_a_fresh_clone_pulls_everything_and_repro_trains_nothing(team, webdav):
    assert any(webdav["storage"].joinpath("files", "md5").iterdir())  # what `dvc push` stored on the server
    clone = fresh_clone(team, "bob")
    start = time.time()
    dvc(clone, "pull")
    repro = dvc(clone, "repro")
    seconds = time.time() - start
    stages = yaml.safe_load((clone / "dvc.yaml").read_text())["stages"]
    assert "Running stage" not in repro and repro.count("didn't change, skipping") == len(stages), repro
    assert md5(clone / "models/ae/model.pt") == md5(team["work"] / "models/ae/model.pt")
    assert "up to date" in dvc(clone, "status")
    print(f"dvc pull && dvc repro on a fresh clone: {seconds:.1f} s")


@pytest.mark.usefixtures("card_experiment")  # latent 32 is in the shared run-cache: restored, not retrained
def test_returning_to_params_already_run_restores_from_the_run_cache(team, tmp_path):
    work = share_cache(team["work"], tmp_path / "work")
    params_a = yaml.safe_load((work / "params.yaml").read_text())
    lock_a = (work / "dvc.lock").read_text()
    params_b = yaml.safe_load((work / "params.yaml").read_text())
    params_b["latent"] = 32  # the card's experiment, which the session ran once
    write_params(work, params_b)
    ran_b = dvc(work, "repro")
    stages = ("pretrain", "train_reference", "train_ae", "train_aux", "compose", "evaluate")
    assert all(f"Running stage '{stage}'" in ran_b or f"Stage '{stage}' is cached" in ran_b for stage in stages), ran_b
    assert (work / "dvc.lock").read_text() != lock_a and load_model(work / "models/ae/model.pt").encode(
        torch.rand(1, 3, 16, 16)
    ).shape == (1, 32)
    write_params(work, params_a)
    ran_a = dvc(work, "repro")  # latent A again: restored, not retrained
    for stage in stages:
        assert f"Stage '{stage}' is cached - skipping run, checking out outputs" in ran_a, ran_a
        assert f"Running stage '{stage}'" not in ran_a
    assert (work / "dvc.lock").read_text() == lock_a  # every output restored as it was


@pytest.mark.usefixtures("card_experiment")
def test_experiments_round_trip_through_origin_and_the_remote(team):
    dvc(
        team["work"], "exp", "run", "--temp", "-S", "latent=32", "--name", "latent-32"
    )  # the workspace stays as committed
    dvc(team["work"], "exp", "push", "origin", "latent-32")
    clone = fresh_clone(team, "dave")
    dvc(clone, "exp", "pull", "origin", "latent-32")
    table = dvc(clone, "exp", "show", "--md", "--no-pager")
    assert "latent-32" in table and "| 32 " in next(line for line in table.splitlines() if "latent-32" in line)
    dvc(clone, "exp", "apply", "latent-32")
    model = load_model(clone / "models/ae/model.pt")
    assert model.encode(torch.rand(1, 3, 16, 16)).shape == (1, 32)  # the experiment's model, fetched from the remote


def fetch(*args) -> None:
    """`dvc artifacts get` or `dvc get` from the team's origin, with the remote's credentials."""
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args, "--remote-config", f"user={USER}", f"password={PASSWORD}"],
        env=venv_env(),
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr


def test_a_registered_model_of_a_revision_is_fetched_from_the_remote(team, tmp_path):
    gto = shutil.which("gto", path=venv_env()["PATH"])
    for artifact in ("emoji-ae", "emoji-aux"):  # register versions, as Git tags on origin
        subprocess.run(
            [gto, "register", artifact, "--version", "v1.0.0", "--push"],
            cwd=team["work"],
            env=venv_env(),
            check=True,
            capture_output=True,
        )
    subprocess.run(
        [gto, "assign", "emoji-ae", "--version", "v1.0.0", "--stage", "prod", "--push"],
        cwd=team["work"],
        env=venv_env(),
        check=True,
        capture_output=True,
    )
    for artifact, model, how in (("emoji-ae", "ae", ["--rev", "v1.0.0"]), ("emoji-aux", "aux", ["--rev", "v1.0.0"]),
                                 ("emoji-ae", "ae", ["--stage", "prod"])):
        out = tmp_path / f"{artifact}-{how[0].strip('-')}"
        fetch("artifacts", "get", str(team["origin"]), artifact, *how, "-o", str(out))
        assert md5(out / "model.pt") == md5(team["work"] / "models" / model / "model.pt")
    assert load_model(tmp_path / "emoji-aux-rev/model.pt").classifier is not None
    # The fetched package works on its own, in a folder that is no clone of the project.
    composed = subprocess.run(
        [
            shutil.which("emoji-ae", path=venv_env()["PATH"]),
            "compose",
            "crying cat face - crying face + face with tears of joy",
            "--model",
            "emoji-ae-rev",
            "-o",
            "composite.png",
        ],
        cwd=tmp_path,
        env=venv_env(),
        capture_output=True,
        text=True,
    )
    assert composed.returncode == 0 and "nearest real emoji" in composed.stdout, composed.stderr
    assert (tmp_path / "composite.png").stat().st_size > 1000 and (tmp_path / "emoji-ae-rev/README.md").exists()
    revision = git(team["work"], "rev-parse", "HEAD").strip()  # any revision, through dvc get
    fetch("get", str(team["origin"]), "models/ae/latents.pt", "--rev", revision, "-o", str(tmp_path / "latents.pt"))
    assert md5(tmp_path / "latents.pt") == md5(team["work"] / "models/ae/latents.pt")


def test_the_pr_check_fails_on_a_stale_lock_and_passes_on_a_fresh_one(team, tmp_path):
    work = share_cache(team["work"], tmp_path / "work")
    check = [sys.executable, "-m", "emoji_ae.tools.pr_report", "check"]
    fresh = subprocess.run(check, cwd=work, env=venv_env(), capture_output=True, text=True)
    assert fresh.returncode == 0, fresh.stderr
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["train"]["lr"] = 0.004
    write_params(work, params)
    git(work, "commit", "-qam", "a new learning rate, without dvc repro")
    stale = subprocess.run(check, cwd=work, env=venv_env(), capture_output=True, text=True)
    assert stale.returncode == 1 and stale.stderr.count("\n") == 1
    assert stale.stderr.startswith(
        "error: this commit's dvc.lock and metrics are stale (pretrain: param train modified; train_ae: param train"
    )
    assert "run `dvc repro`, commit dvc.lock and reports/, and `dvc push`" in stale.stderr


@pytest.mark.usefixtures("card_experiment")
def test_the_pr_comment_compares_committed_results_and_shows_figures_before_and_after(team, tmp_path):
    work = share_cache(team["work"], tmp_path / "work")
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["latent"] = 32  # the card's experiment: the shared run-cache holds it
    write_params(work, params)
    dvc(work, "repro")
    git(work, "add", "-A")
    git(work, "commit", "-qm", "latent 32")
    comment = subprocess.run([sys.executable, "-m", "emoji_ae.tools.pr_report", "comment", "--base", "HEAD~1"],
                             cwd=work, env=venv_env(), capture_output=True, text=True, check=True).stdout
    assert "## Pipeline results: `HEAD` against `HEAD~1`" in comment
    row = next(line for line in comment.splitlines() if line.startswith("| ae.test_mse |"))
    assert "(better)" in row or "(worse)" in row or "(within noise" in row or "(noise not measured)" in row, row
    assert "| params.yaml" in comment and "latent" in comment  # dvc params diff
    figures = next(line for line in comment.splitlines() if line.startswith("| Reconstructions |"))
    links = figures.split("](")[1:]
    assert len(links) == 2, figures  # before and after
    for link in links:
        assert (work / link.split(")")[0]).stat().st_size > 1000


def readme_command(start: str) -> str:
    """The README's command line that begins with `start` and chains another, exactly as a user would paste it."""
    found = re.search(rf"`({re.escape(start)}[^`]*&&[^`]*)`", (REPO / "README.md").read_text())
    assert found, f"README.md shows no command starting with {start!r}"
    return found.group(1)


def test_the_readmes_pull_and_repro_works_where_nobody_pushed_the_benchmark(team, tmp_path):
    """A remote that holds the default pipeline's outputs but none of the benchmark's cells."""
    work = share_cache(team["work"], tmp_path / "work")
    dvc(work, "remote", "add", "-d", "fresh", str(tmp_path / "storage"))
    dvc(work, "push", "-r", "fresh", "dvc.yaml")
    git(work, "add", ".dvc/config")
    git(work, "commit", "-qm", "a remote without the benchmark")
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(work), str(clone))
    command = readme_command("dvc pull")
    assert command == "dvc pull dvc.yaml && dvc repro"
    result = subprocess.run(["sh", "-c", command], cwd=clone, env=venv_env(), capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "Running stage" not in result.stdout and md5(clone / "models/ae/model.pt") == md5(
        work / "models/ae/model.pt"
    )
    bare = subprocess.run(["sh", "-c", "dvc pull"], cwd=clone, env=venv_env(), capture_output=True, text=True)
    assert bare.returncode == 1 and "benchmark/cells" in bare.stdout + bare.stderr  # why the README names dvc.yaml
