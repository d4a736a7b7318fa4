"""The house style, checked: ruff's lint (pycodestyle, pyflakes and import order) with lines of at
most 120 characters, over the library, the stages, the benchmark and the tests (pyproject.toml)."""

import subprocess
import sys

from tests.conftest import REPO


def test_ruff_finds_nothing_to_fix():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "emoji_ae", "stages", "benchmark", "tests"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-1000:]
