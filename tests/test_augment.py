import pandas as pd
import pytest
import torch

from emoji_ae import data
from emoji_ae.config import PipelineError, parse_params
from stages import augment, prepare
from tests.conftest import synthetic_params, tiny_params, write_params


def originals(n=5, channels=3, size=16):
    return torch.randint(
        0, 256, (n, channels, size, size), generator=torch.Generator().manual_seed(0), dtype=torch.uint8
    )


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


def test_adversarial_copies_stay_within_epsilon_raise_the_error_and_are_seeded():
    originals = torch.full((6, 3, 16, 16), 255, dtype=torch.uint8)
    originals[:, :, 4:12, 4:12] = torch.randint(
        0, 256, (6, 3, 8, 8), generator=torch.Generator().manual_seed(1), dtype=torch.uint8
    )
    copies = originals.repeat(3, 1, 1, 1)
    attacked, mask = augment.adversarial(copies, originals, share=0.5, epsilon=0.03, seed=3)
    assert mask.sum() == 9 and torch.equal(attacked[~mask], copies[~mask])  # half of them, the rest untouched
    change = (attacked.int() - copies.int()).abs()
    assert change[mask].max() <= round(0.03 * 255) and change[mask].float().mean() > 1
    again, mask_again = augment.adversarial(copies, originals, share=0.5, epsilon=0.03, seed=3)
    assert torch.equal(again, attacked) and torch.equal(mask_again, mask)


def test_the_augment_stage_marks_adversarial_copies_in_the_train_split_only(workdir, valhalla_parquet):
    params = synthetic_params(valhalla_parquet)
    params["augment"]["adversarial"] = 0.25
    write_params(workdir, params)
    prepare.main()
    augment.main()
    frames = {s: pd.read_parquet(workdir / f"data/augmented/{s}.parquet") for s in data.SPLITS}
    copies = (frames["train"]["augmented"]).sum()
    assert (
        frames["train"]["adversarial"].sum() == round(0.25 * copies)
        and not frames["train"]["adversarial"][~frames["train"]["augmented"]].any()
    )
    assert not frames["val"]["adversarial"].any() and not frames["test"]["adversarial"].any()
