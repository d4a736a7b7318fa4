import pandas as pd
import pytest
import torch

from stages import augment, prepare
from stages.lib import data
from stages.lib.config import PipelineError, parse_params
from tests.conftest import synthetic_params, tiny_params, write_params


def originals(n=5, channels=3, size=16):
    return torch.randint(0, 256, (n, channels, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def test_augment_keeps_originals_and_reaches_the_target():
    aug = parse_params(tiny_params()).augment
    images = originals()
    expanded = augment.augment_split(images, 23, aug, seed=1)
    assert expanded.shape == (23, 3, 16, 16) and expanded.dtype == torch.uint8
    assert torch.equal(expanded[:5], images)
    assert not torch.equal(expanded[5], images[0])  # copies are transformed


def test_augment_is_seeded_and_handles_rgba():
    aug = parse_params(tiny_params()).augment
    images = originals(channels=4)
    first, second = (augment.augment_split(images, 12, aug, seed=7) for _ in range(2))
    assert torch.equal(first, second) and first.shape[1] == 4
    assert not torch.equal(first, augment.augment_split(images, 12, aug, seed=8))


def test_augment_stage_is_bitwise_reproducible_and_rejects_small_targets(workdir, valhalla_parquet):
    params = synthetic_params(valhalla_parquet)
    write_params(workdir, params)
    prepare.main()
    augment.main()
    first = {s: (workdir / f"data/augmented/{s}.parquet").read_bytes() for s in data.SPLITS}
    augment.main()
    assert first == {s: (workdir / f"data/augmented/{s}.parquet").read_bytes() for s in data.SPLITS}

    train = pd.read_parquet(workdir / "data/augmented/train.parquet")
    assert len(train) == 100 and (~train["augmented"]).sum() == len(pd.read_parquet("data/prepared/train.parquet"))
    test_texts = set(pd.read_parquet("data/prepared/test.parquet")["text"])
    assert set(pd.read_parquet("data/augmented/test.parquet")["text"]) == test_texts  # copies stay in their split

    params["augment"]["targets"]["val"] = 3
    write_params(workdir, params)
    with pytest.raises(PipelineError, match="augment.targets.val is 3"):
        augment.main()
    assert first["train"] == (workdir / "data/augmented/train.parquet").read_bytes()  # checked before writing
