"""A missing, truncated or foreign artefact, read by any stage or tool: exit 1, one `error:` line
that names the file and the command that restores or rebuilds it, and nothing written."""

import hashlib
import shutil
import subprocess
import sys

import pytest

from benchmark import cell
from emoji_ae.app import cli
from emoji_ae.config import run_stage
from emoji_ae.tools import aux_cv, profile_train
from stages import augment, card, compose, evaluate, extra, prepare, pretrain, reference, report, train
from tests.conftest import REPO, synthetic_params, write_params, write_valhalla_parquet


def run_main(main, monkeypatch, argv=()):
    monkeypatch.setattr(sys, "argv", ["stage", *argv])
    run_stage(main)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """Every stage's outputs on tiny synthetic data, built once, in-process."""
    work = tmp_path_factory.mktemp("built")
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.chdir(work)
    source = write_valhalla_parquet(work / "emoji.parquet")
    params = synthetic_params(source)
    params["extra"]["sources"] = [
        str(write_valhalla_parquet(work / "other.parquet", names=["rocket", "sun with face", "dog face"]))
    ]
    write_params(work, params)
    (work / "reports").mkdir()
    shutil.copy(REPO / "reports/frontier.json", work / "reports/frontier.json")  # committed; the report names it
    for main, argv in (
        (prepare.main, ()),
        (augment.main, ()),
        (extra.main, ()),
        (pretrain.main, ()),
        (reference.main, ()),
        (train.main, ("ae",)),
        (train.main, ("aux",)),
        (compose.main, ()),
        (evaluate.main, ()),
        (report.main, ()),
        (card.main, ()),
    ):
        run_main(main, monkeypatch, argv)
    monkeypatch.undo()
    return work


def fingerprint(directory) -> dict:
    return {
        p.relative_to(directory): hashlib.md5(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


DAMAGE = {
    "missing": lambda path: path.unlink(),
    "truncated": lambda path: path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)]),
    "foreign": lambda path: path.write_bytes(b"this is not the file you are looking for\n" * 4),
}

# (artefact, damage, consumer, its argv, what the error line says to run)
CASES = [
    ("data/prepared/train.parquet", "truncated", augment.main, (), "dvc checkout --force data/prepared/train.parquet"),
    ("data/prepared/val.parquet", "missing", compose.main, (), "dvc repro prepare"),
    ("data/augmented/train.parquet", "truncated", train.main, ("ae",), "dvc repro -f augment"),
    ("data/augmented/test.parquet", "foreign", evaluate.main, (), "dvc checkout --force data/augmented/test.parquet"),
    ("data/augmented/train.parquet", "foreign", aux_cv.main, ("--folds", "2"), "dvc repro -f augment"),
    ("data/augmented/val.parquet", "missing", profile_train.main, ("--epochs", "1"), "dvc repro augment"),
    ("data/augmented/test.parquet", "truncated", cell.main, ("reference", "32"), "dvc repro -f augment"),
    ("data/extra/pretrain.parquet", "foreign", pretrain.main, (), "dvc checkout --force data/extra/pretrain.parquet"),
    ("data/extra/styles.parquet", "missing", compose.main, (), "dvc repro extra"),
    ("models/pretrained/model.pt", "truncated", train.main, ("aux",), "dvc repro -f pretrain"),
    ("models/reference/seed_1042.pt", "missing", evaluate.main, (), "dvc repro train_reference"),
    ("models/ae/model.pt", "truncated", compose.main, (), "dvc checkout --force models/ae/model.pt"),
    ("models/aux/model.pt", "missing", evaluate.main, (), "dvc repro train_aux"),
    ("models/ae/model.pt", "foreign", evaluate.main, (), "dvc repro -f train_ae"),
    (
        "reports/compose/metrics.json",
        "truncated",
        evaluate.main,
        (),
        "dvc checkout --force reports/compose/metrics.json",
    ),
    ("reports/train_aux/plots/metrics/val/acc.tsv", "missing", evaluate.main, (), "dvc repro train_aux"),
    ("reports/evaluate/metrics.json", "foreign", report.main, (), "dvc repro -f evaluate"),
    ("reports/train_ae/architecture.txt", "missing", report.main, (), "dvc repro train_ae"),
    ("reports/extra/summary.json", "truncated", report.main, (), "dvc checkout --force reports/extra/summary.json"),
    ("reports/evaluate/metrics.json", "missing", card.main, (), "dvc repro evaluate"),
    ("reports/frontier.json", "truncated", report.main, (), "git checkout -- reports/frontier.json"),
    ("models/aux/model.pt", "truncated", card.main, (), "dvc repro -f train_aux"),
    (
        "models/release/ae/model.pt",
        "truncated",
        cli.main,
        ("compose", "nerd face"),
        "dvc checkout --force models/release/ae/model.pt",
    ),
    ("models/release/ae/emoji.parquet", "foreign", cli.main, ("names",), "dvc repro -f card"),
    (
        "models/release/aux/settings.json",
        "truncated",
        cli.main,
        ("reconstruct", "nerd face", "--model", "models/release/aux"),
        "dvc checkout --force models/release/aux/settings.json",
    ),
]


@pytest.mark.parametrize(
    "artefact, damage, main, argv, fix", CASES, ids=[f"{c[0]} {c[1]} -> {c[2].__module__}" for c in CASES]
)
def test_a_broken_artefact_is_one_line_naming_it_and_the_fix(
    built, tmp_path, monkeypatch, capsys, artefact, damage, main, argv, fix
):
    work = shutil.copytree(built, tmp_path / "work")
    monkeypatch.chdir(work)
    DAMAGE[damage](work / artefact)
    before = fingerprint(work)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        run_main(main, monkeypatch, argv)
    err = capsys.readouterr().err.strip().splitlines()
    assert exit_info.value.code == 1
    assert err[-1].startswith(f"error: {artefact} is ") and fix in err[-1], err[-1]
    assert fingerprint(work) == before  # nothing written, nothing half-written


def test_from_the_command_line_it_is_one_line_on_stderr_and_exit_code_1(built, tmp_path):
    work = shutil.copytree(built, tmp_path / "work")
    DAMAGE["truncated"](work / "models/ae/model.pt")
    result = subprocess.run([sys.executable, "-m", "stages.compose"], cwd=work, capture_output=True, text=True,
                            env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [result.stderr.strip()]
    assert (
        result.stderr.startswith("error: models/ae/model.pt is unreadable (")
        and "dvc repro -f train_ae" in result.stderr
    )
