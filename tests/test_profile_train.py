import sys

import pandas as pd
import pytest

from emoji_ae.config import PipelineError
from emoji_ae.tools import profile_train
from stages import augment, prepare
from tests.conftest import synthetic_params, write_params


@pytest.fixture
def augmented(workdir, valhalla_parquet, capsys):
    write_params(workdir, synthetic_params(valhalla_parquet))
    prepare.main()
    augment.main()
    capsys.readouterr()
    return workdir


def files_under(directory):
    return sorted((path, path.stat().st_mtime_ns) for path in directory.rglob("*") if path.is_file())


def test_profile_splits_the_wall_time_into_the_parts_of_a_training_step(augmented, monkeypatch, capsys):
    before = files_under(augmented)
    monkeypatch.setattr(sys, "argv", ["profile_train", "aux", "--epochs", "2"])
    profile_train.main()
    out = capsys.readouterr().out
    assert "aten::convolution_backward" in out  # torch's table of the operators that took longest
    images = len(pd.read_parquet(augmented / "data/augmented/train.parquet"))
    summary, *phases = out.strip().splitlines()[-5:]
    assert summary.startswith(f"profile_train aux: 2 epochs of {images} images in ")
    wall_s = float(summary.split(" in ")[1].split(" s ")[0])
    seconds = {line[:38].strip(): float(line[38:].split(" s ")[0]) for line in phases}
    assert list(seconds) == ["forward passes and batching", "backward pass", "optimizer (AdamW step, zero_grad)",
                             "Python outside PyTorch operators"]
    # Every step ran a forward pass, a backward pass and an optimizer step, each found in the profile.
    assert all(seconds[name] > 0 for name in list(seconds)[:3])
    assert sum(seconds.values()) == pytest.approx(wall_s, abs=0.03)  # no event counted twice
    assert files_under(augmented) == before  # it writes nothing


def test_profile_rejects_zero_epochs(augmented, monkeypatch):
    monkeypatch.setattr(sys, "argv", ["profile_train", "--epochs", "0"])
    with pytest.raises(PipelineError, match="--epochs is 0; profile at least 1 epoch"):
        profile_train.main()
