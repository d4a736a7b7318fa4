"""Small data the tests build themselves: synthetic emoji in the valhalla parquet layout; the
tiny pipeline the end-to-end tests share, built in the background while the fast tests run; the
fresh clone's reproduction (`pytest -m reproduction`)."""

import io
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

# Two pytest-xdist workers run beside the tiny pipeline's build (pytest_collection_finish below):
# more processes than cores. An OpenMP thread that spins while it waits, or a second thread per
# process, only takes a core from another process; neither changes what the tiny models learn
# from one run to the next. Set before torch loads, and so for every process the tests start but
# the reproduction (TEST_ONLY_ENVIRONMENT).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np
import pandas as pd
import pytest
import torch
import yaml
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
TEST_ONLY_ENVIRONMENT = ("OMP_WAIT_POLICY", "OMP_NUM_THREADS")  # set above


# Names that exercise the default rules: several classes and one analogy family.
NAMES = [
    "grinning face", "crying face", "weary face", "pouting face", "smiling face with open mouth",
    "nerd face", "neutral face", "face with tears of joy", "winking face", "sleepy face",
    "crying cat face", "weary cat face", "pouting cat face", "cat face with tears of joy",
    "smiling cat face with open mouth", "dog face", "tiger face", "monkey face", "fox face", "pig face",
    "alarm clock face", "grinning cat",
]


def emoji_png(index: int, size: int = 72) -> bytes:
    """A distinct, emoji-like RGBA drawing: a coloured disc with two eyes and a mouth."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    hue = (index * 53) % 255
    draw.ellipse((4, 4, size - 4, size - 4), fill=(255, hue, (index * 97) % 255, 255), outline=(0, 0, 0, 255), width=3)
    eye = 6 + index % 5
    draw.ellipse((20, 22, 20 + eye, 22 + eye), fill=(0, 0, 0, 255))
    draw.ellipse((size - 26, 22, size - 26 + eye, 22 + eye), fill=(0, 0, 0, 255))
    draw.arc((18, 30 + index % 7, size - 18, size - 14), 10, 170, fill=(120, 0, 0, 255), width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def encoded(mode: str, index: int = 0, size: int = 40, blank: bool = False) -> bytes:
    """emoji_png's drawing in another image mode, saved in a format that keeps the mode (PNG, else
    TIFF): what other vendors' sets and users' own drawings bring."""
    image = (
        Image.new("RGBA", (size, size), (0, 0, 0, 0))
        if blank
        else Image.open(io.BytesIO(emoji_png(index))).resize((size, size))
    )
    if mode == "I;16":  # 16-bit greyscale, as a 16-bit PNG holds it
        image = Image.fromarray(np.asarray(image.convert("L")).astype(np.uint16) * 257)
    else:
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG" if mode in ("RGBA", "RGB", "LA", "L", "P", "1", "I;16") else "TIFF")
    return buffer.getvalue()


def write_valhalla_parquet(path: Path, names=NAMES, corrupt: int = 0) -> Path:
    """A parquet file with valhalla/emoji-dataset's schema: image = {bytes, path}, text."""
    rows = [{"image": {"bytes": emoji_png(i), "path": f"{i}.png"}, "text": name} for i, name in enumerate(names)]
    rows += [
        {"image": {"bytes": b"not a png", "path": f"bad{i}.png"}, "text": f"broken face {i}"} for i in range(corrupt)
    ]
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


@pytest.fixture
def valhalla_parquet(tmp_path) -> Path:
    return write_valhalla_parquet(tmp_path / "emoji.parquet")


def default_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


TINY_LATENT = 80  # by the default rule at 16 px: a code of 16 beside a 4x4x4 grid


def tiny_params(**data_overrides) -> dict:
    """Defaults shrunk to seconds: 16 px, two stride-2 blocks, a few epochs, a share of the other emoji."""
    params = default_params()
    params["latent"] = TINY_LATENT
    params["data"].update(size=16, **data_overrides)
    params["augment"]["targets"] = {"train": 100, "val": 40, "test": 40}
    params["model"].update(channels=[8, 16])
    params["extra"]["share"] = 0.2  # a fifth of the other emoji: every kind of analogy family, in a quarter of the time
    params["pretrain"]["epochs"] = 1
    params["train"].update(epochs=2, batch_size=16, threads=1)  # tiny models: a second thread or process only costs
    params["reference"]["epochs"] = 2
    params["benchmark"]["latents"] = [32]  # one size, not `latent`'s: its cells' models differ from the pipeline's
    return params


def synthetic_params(source) -> dict:
    """Tiny params for a parquet of NAMES: two classes (it has no person or object) and
    recipes that use its names."""
    classes = [
        {"name": "animal", "words": ["cat", "dog", "tiger", "monkey", "fox", "pig"]},
        {"name": "face", "words": []},
    ]
    params = tiny_params(source=str(source), classes=classes)
    params["compose"] = {
        "concepts": {"cat": ["crying cat face", "weary cat face"], "human": ["crying face", "weary face"]},
        "recipes": ["crying cat face - crying face + pouting face", "grinning face + cat - human"],
        "strip": {"base": "grinning face", "attribute": "cat - human", "alphas": [0, 1]},
        "slerp": ["grinning face", "dog face"],
        "slerp_steps": 3,
    }
    return params


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """An empty directory to run stages in, as the repository root would be."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_params(directory: Path, params: dict) -> None:
    (directory / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def copy_repo(destination: Path) -> Path:
    """The Git-tracked files of this checkout, as a fresh Git repository of its own."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    git(destination, "init", "-q")
    git(destination, "add", "-A")
    git(destination, "commit", "-qm", "copy")
    return destination


def venv_env() -> dict:
    """The environment with this interpreter's bin first, so stages run with `python` find it,
    and a Git identity for the commits and tags that DVC and GTO make on a machine without one."""
    identity = {f"GIT_{who}_{what}": value for who in ("AUTHOR", "COMMITTER")
                for what, value in (("NAME", "test"), ("EMAIL", "test@example.com"))}
    return {**identity, **os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def emoji_ae(*args, cwd) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    command = shutil.which("emoji-ae", path=venv_env()["PATH"])
    assert command, "the console script is not installed: pip install -e ."
    return subprocess.run([command, *args], cwd=cwd, env=venv_env(), capture_output=True, text=True)


def dvc(repo: Path, *args: str) -> str:
    result = subprocess.run(  # tests on other workers may run DVC in the same shared repo: wait, don't fail
        [sys.executable, "-m", "dvc", "--wait-for-lock", *args], cwd=repo, env=venv_env(), capture_output=True,
        text=True,
    )
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout


def git(repo: Path, *args: str) -> str:
    command = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", *args]
    return subprocess.run(command, cwd=repo, capture_output=True, text=True, check=True).stdout


class TinyBuild:
    """What the end-to-end tests share (tests/tiny_pipeline.py): the tiny pipeline and, when a
    collected test needs it, the card's experiment on it. The first process of the session that
    collects a test needing them starts their build in the background; with pytest-xdist, one build
    for all workers, in the folder they share. The other tests run beside it."""

    def __init__(self, config, experiment: bool):
        base = config._tmp_path_factory.getbasetemp()  # what the tmp_path_factory fixture returns
        self.folder = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base  # workers' folders sit in it
        self.log = self.folder / "tiny_pipeline.log"
        self.process = None
        try:
            (self.folder / "tiny_pipeline").mkdir()  # atomic: exactly one process of the session starts the build
        except FileExistsError:
            return
        command = [sys.executable, "-m", "tests.tiny_pipeline", str(self.folder)] + ["--card-experiment"] * experiment
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(command, cwd=REPO, env=venv_env(), stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def result(self, part: str, timeout: float = 1800) -> Path:
        """The part's folder once built; the build log's end if it failed."""
        status = self.folder / f"{part}.status"
        deadline = time.time() + timeout
        while not status.exists():
            assert time.time() < deadline, f"{part} was not built within {timeout:.0f} s"
            ended = self.process is not None and self.process.poll() is not None  # killed before it could say
            assert not ended or status.exists(), f"the build ended without {part}:\n" + self.log.read_text()[-3000:]
            time.sleep(0.5)
        assert status.read_text() == "0", f"{part} failed:\n" + self.log.read_text()[-3000:]
        return self.folder / part

    def stop(self, interrupted: bool) -> None:
        """At the session's end: wait for a build another worker may still need, unless interrupted."""
        if self.process is not None and self.process.poll() is None:
            if interrupted:
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


TINY_BUILD = pytest.StashKey[TinyBuild]()
CARD_EXPERIMENT = ["dvc", "exp", "run", "-S", "latent=32"]  # as the README and params.yaml give it


def uses(item, fixture: str) -> bool:
    return fixture in getattr(item, "fixturenames", ())


@pytest.fixture(scope="session")
def tiny_pipeline(request) -> Path:
    """The real pipeline, run once with `dvc repro` on tiny params in a copy of the repo, and
    committed (tests/tiny_pipeline.py). Shared by the end-to-end tests: read it, never change it
    (take `pipeline_copy`)."""
    return request.config.stash[TINY_BUILD].result("tiny_pipeline")


@pytest.fixture(scope="session")
def card_experiment(tiny_pipeline, request) -> Path:
    """A copy of the tiny pipeline, sharing its cache, where the card's `dvc exp run -S latent=32`
    ran as written, once for the session, in the background after the build (tests/tiny_pipeline.py):
    the tests that return to latent 32 restore it from the run-cache. Read it, never change it."""
    return request.config.stash[TINY_BUILD].result("card_experiment")


def copy_dvc_repo(source: Path, destination: Path, *leave_out_of_dvc: str) -> Path:
    """copytree of a DVC repository that other tests may be using meanwhile: DVC's scratch
    (.dvc/tmp, the locks and indexes of their DVC commands) and half-written files (*.tmp) stay
    behind, with whatever else of .dvc is named."""
    left = {"tmp", *leave_out_of_dvc}
    ignore = lambda folder, names: [  # noqa: E731
        name for name in names if name.endswith(".tmp") or (Path(folder) == source / ".dvc" and name in left)
    ]
    return Path(shutil.copytree(source, destination, symlinks=True, ignore=ignore))


def share_cache(source: Path, destination: Path) -> Path:
    """A copy of a DVC repository whose cache is the source's own, run-cache included: one
    session's copies restore each other's runs instead of training the same params twice."""
    cache = source / ".dvc" / "cache"
    copy_dvc_repo(source, destination, "cache")
    if cache.is_dir():  # a copy of a copy shares the first one's cache through its config.local already
        with open(destination / ".dvc" / "config.local", "a") as config:
            config.write(f"[cache]\n    dir = {cache}\n")
    return destination


@pytest.fixture
def pipeline_copy(tiny_pipeline, tmp_path) -> Path:
    """A copy of the tiny pipeline, its Git history included, sharing its DVC cache."""
    return share_cache(tiny_pipeline, tmp_path / "repo")


@pytest.fixture
def private_pipeline_copy(tiny_pipeline, tmp_path) -> Path:
    """A copy of the tiny pipeline with a DVC cache of its own, for a test that empties it."""
    return copy_dvc_repo(tiny_pipeline, tmp_path / "repo")


class Reproduction:
    """`dvc repro` of the committed params in a fresh copy of the repo, in the background: the
    full-size reproduction (`pytest -m reproduction`, docs/reproducibility.md). It runs alone, with
    OpenMP's defaults, as `dvc repro` does for a user."""

    def __init__(self):
        self.root = Path(tempfile.mkdtemp(prefix="reproduction-"))
        (self.root / "repo").mkdir()
        self.repo = copy_repo(self.root / "repo")
        self.log = self.root / "repro.log"
        env = {key: value for key, value in venv_env().items() if key not in TEST_ONLY_ENVIRONMENT}
        with open(self.log, "w") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "dvc", "repro"], cwd=self.repo, env=env,
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def result(self, timeout: float = 3600) -> Path:
        """The reproduced repo, once `dvc repro` is done; its log's end if it failed."""
        assert self.process.wait(timeout=timeout) == 0, self.log.read_text()[-3000:]
        return self.repo

    def stop(self) -> None:
        if self.process.poll() is None:  # the session was cut short: dvc and the stage it runs
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        shutil.rmtree(self.root, ignore_errors=True)


REPRODUCTION = pytest.StashKey[Reproduction]()
REPRODUCTION_REPORT = pytest.StashKey[list]()


def reproduction_selected(config) -> bool:
    return "reproduction" in (config.option.markexpr or "")


def pytest_collection_modifyitems(config, items):
    """The full-size reproduction is a command of its own (`pytest -m reproduction`): the README's
    test command checks an install, this one the committed results. Its tests run only when the
    marker expression names it."""
    if reproduction_selected(config):
        return
    kept = [item for item in items if item.get_closest_marker("reproduction") is None]
    if len(kept) < len(items):
        config.hook.pytest_deselected(items=[item for item in items if item not in kept])
    # The tests that read the tiny pipeline last, and those that return to the card's experiment
    # after them: the others run while these are built.
    items[:] = sorted(kept, key=lambda item: (uses(item, "tiny_pipeline"), uses(item, "card_experiment")))


def pytest_configure(config):
    """The reproduction is one `dvc repro` that uses every core: its command runs in one process,
    whatever -n the README's test command gives pytest-xdist (pyproject.toml's addopts)."""
    if reproduction_selected(config) and hasattr(config.option, "dist"):
        config.option.dist, config.option.numprocesses = "no", 0


def pytest_collection_finish(session):
    """Start the builds the selected tests wait on, before the first of them: the reproduction, and
    the tiny pipeline (its fixture waits for it)."""
    if any(item.get_closest_marker("reproduction") for item in session.items):
        session.config.stash[REPRODUCTION] = Reproduction()
    if any(uses(item, "tiny_pipeline") for item in session.items):
        experiment = any(uses(item, "card_experiment") for item in session.items)
        session.config.stash[TINY_BUILD] = TinyBuild(session.config, experiment)


def pytest_sessionfinish(session, exitstatus):
    if REPRODUCTION in session.config.stash:
        session.config.stash[REPRODUCTION].stop()
    if TINY_BUILD in session.config.stash:
        session.config.stash[TINY_BUILD].stop(interrupted=exitstatus == pytest.ExitCode.INTERRUPTED)


def pytest_terminal_summary(terminalreporter, config):
    """The reproduction's report: each figure compared, its committed value, this machine's, the tolerance."""
    if REPRODUCTION_REPORT in config.stash:
        terminalreporter.section("reproduction: this machine against the committed results")
        for line in config.stash[REPRODUCTION_REPORT]:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def reproduced(request) -> Path:
    """A fresh copy of the repo after `dvc repro` of its committed params (started at collection)."""
    return request.config.stash[REPRODUCTION].result()


@pytest.fixture(scope="session")
def reproduction_report(request) -> list:
    """Lines for the session's closing summary (pytest_terminal_summary)."""
    return request.config.stash.setdefault(REPRODUCTION_REPORT, [])


class RecordingLive:
    """Stands in for dvclive.Live: keeps what fit() logs."""

    def __init__(self):
        self.rows, self.current = [], {}

    def log_metric(self, name, value):
        self.current[name] = value

    def next_step(self):
        self.rows.append(self.current)
        self.current = {}


def toy_data(n=48, size=16, classes=2):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(n, 3, size, size, generator=g)
    return x, torch.randint(0, classes, (n,), generator=g)


def training_params(aux_lambda=0.0, aux_ramp=False, seed=0, attribute=None, **train):
    """The parts of params that fit() reads, small: train (3 epochs of 16), aux, the attribute code's
    teachers (all off unless given) and seed."""
    defaults = {
        "epochs": 3,
        "batch_size": 16,
        "lr": 3e-3,
        "weight_decay": 1e-4,
        "paste": 0.0,
        "flip": 0.0,
        "rotate": 0.0,
        "shift": 0.0,
        "zoom": 0.0,
        "precision": "fp32",
        "analogy": 0.0,
        "pairs": 8,
    }
    teachers = {
        "slots": False,
        "words": False,
        "classify": 0.0,
        "adversary": 0.0,
        "invariance": 0.0,
        "swap": 0.0,
        "reader": 0.0,
        "ramp": 0.0,
        "lr": 1e-3,
        **(attribute or {}),
    }
    return SimpleNamespace(
        train=SimpleNamespace(**{**defaults, **train}),
        aux=SimpleNamespace(lambda_=aux_lambda, ramp=aux_ramp),
        attribute=SimpleNamespace(**teachers),
        seed=seed,
    )
