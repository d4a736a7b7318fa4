"""Build what the end-to-end tests share: `python -m tests.tiny_pipeline FOLDER [--card-experiment]`.

FOLDER/tiny_pipeline: the real pipeline on tiny params, committed. With --card-experiment, then
FOLDER/card_experiment: a copy of it sharing its DVC cache, where the card's `dvc exp run -S
latent=32` ran as written, so the tests that return to latent 32 restore it from the run-cache.
tests/conftest.py starts this in the background as soon as a collected test needs it, so the tests
run beside its DVC stages; the fixtures wait for each part's FOLDER/NAME.status, written last.
"""

import subprocess
import sys
import traceback
from pathlib import Path

from tests.conftest import CARD_EXPERIMENT, copy_repo, dvc, git, share_cache, tiny_params, venv_env, write_params


def build(repo: Path) -> None:
    """The real pipeline with `dvc repro` on tiny params in a copy of the repo, committed."""
    copy_repo(repo)
    write_params(repo, tiny_params())
    dvc(repo, "repro")
    dvc(repo, "repro", "benchmark/dvc.yaml")  # as in this repo, whose benchmark results are committed
    dvc(repo, "repro", "--force", "--single-item", "report")  # the report names that benchmark (docs/benchmark.md)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "tiny params, reproduced")


def card_experiment(repo: Path, copy: Path) -> None:
    share_cache(repo, copy)
    print("$", " ".join(CARD_EXPERIMENT), flush=True)
    run = subprocess.run([sys.executable, "-m", *CARD_EXPERIMENT], cwd=copy, env=venv_env(),
                         stdout=sys.stdout, stderr=subprocess.STDOUT)
    assert run.returncode == 0, f"`{' '.join(CARD_EXPERIMENT)}` exited with {run.returncode}"


def attempt(part: Path, make) -> int:
    """make(), then NAME.status beside the part's folder (atomically): what its fixture waits for."""
    try:
        make()
        status = 0
    except Exception:  # the fixture shows the log's end to every test that waited for it
        traceback.print_exc()
        sys.stdout.flush()
        status = 1
    written = part.with_name(f"{part.name}.status.tmp")
    written.write_text(str(status))
    written.replace(part.with_name(f"{part.name}.status"))
    return status


def main(folder: Path, experiment: bool) -> int:
    repo, copy = folder / "tiny_pipeline", folder / "card_experiment"
    status = attempt(repo, lambda: build(repo))
    if experiment and status == 0:  # on a failed build, the card_experiment fixture fails with tiny_pipeline's
        status = attempt(copy, lambda: card_experiment(repo, copy))
    return status


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]), "--card-experiment" in sys.argv[2:]))
