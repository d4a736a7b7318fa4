import os
import platform
import subprocess
import sys

import pytest
import torch

from emoji_ae import KERNEL_PINS
from emoji_ae.config import PipelineError
from emoji_ae.metrics import evaluate
from emoji_ae.model import Autoencoder, device, seed_everything
from emoji_ae.training import NoLog, fit, mirror, paste_patches, warp
from tests.conftest import RecordingLive, toy_data, training_params


def test_pasted_patches_are_squares_from_an_image_of_the_same_class():
    size, labels = 16, torch.tensor([0, 0, 0, 1, 1, 1, 1, 2])
    x = torch.arange(8.0)[:, None, None, None].expand(8, 3, size, size) / 10  # image i is all i / 10
    out = paste_patches(x, labels, 1.0, torch.Generator().manual_seed(0))
    assert torch.equal(out, paste_patches(x, labels, 1.0, torch.Generator().manual_seed(0)))
    assert torch.equal(paste_patches(x, labels, 0.0, torch.Generator()), x)
    changed = 0
    for i in range(8):
        diff = (out[i] != x[i]).any(0).nonzero()
        if not len(diff):
            continue  # paired with itself
        changed += 1
        rows, cols = diff[:, 0], diff[:, 1]
        side = rows.max() - rows.min() + 1
        assert side == cols.max() - cols.min() + 1 and size // 4 <= side <= size // 2 and len(diff) == side**2
        source = round(out[i, 0, rows[0], cols[0]].item() * 10)
        assert labels[source] == labels[i] and source != i
    assert changed >= 3 and torch.equal(out[7], x[7])  # class 2 has one image: nothing to paste


def test_mirror_flips_a_seeded_share_of_images_left_to_right():
    x = torch.rand(200, 3, 8, 8)
    out = mirror(x, 0.5, torch.Generator().manual_seed(0))
    assert torch.equal(out, mirror(x, 0.5, torch.Generator().manual_seed(0)))
    flipped = torch.tensor([torch.equal(o, i.flip(-1)) for o, i in zip(out, x)])
    kept = torch.tensor([torch.equal(o, i) for o, i in zip(out, x)])
    assert bool((flipped ^ kept).all()) and 70 < flipped.sum() < 130
    assert torch.equal(mirror(x, 0.0, torch.Generator()), x) and torch.equal(
        mirror(x, 1.0, torch.Generator()), x.flip(-1)
    )


def test_warp_moves_each_image_differently_and_keeps_a_white_background_white():
    x = torch.ones(64, 3, 16, 16)
    x[:, :, 6:10, 6:10] = 0.0  # a dark square in the middle of a white image
    out = warp(x, 10, 0.1, 0.1, torch.Generator().manual_seed(0))
    assert torch.equal(out, warp(x, 10, 0.1, 0.1, torch.Generator().manual_seed(0)))
    assert out.shape == x.shape and not torch.equal(out, x)
    assert len({tuple(o.flatten().tolist()) for o in out}) == len(x)  # a new view per image
    assert torch.allclose(out[..., 0, :], torch.ones(1), atol=1e-6) and torch.allclose(
        out[..., :, 0], torch.ones(1), atol=1e-6
    )
    assert torch.equal(warp(x, 0, 0.0, 0.0, torch.Generator()), x)
    shifted = warp(x, 0, 0.25, 0.0, torch.Generator().manual_seed(1))
    assert not torch.equal(shifted[:, :, 6:10, 6:10], x[:, :, 6:10, 6:10])  # the square moved


def test_training_lowers_the_loss_and_logs_every_epoch():
    seed_everything(0, 2)
    x, y = toy_data()
    model = Autoencoder(size=16, channels=[8, 16], latent=16, grid=2, n_classes=2)
    before = evaluate(model, x, y)["mse"]
    live = RecordingLive()
    fit(
        model,
        (x, y),
        (x, y),
        training_params(aux_lambda=0.1, epochs=5, paste=0.5, flip=0.5, rotate=10, shift=0.05, zoom=0.1),
        live,
    )
    assert len(live.rows) == 5
    assert set(live.rows[0]) == {"train/mse", "train/ce", "train/acc", "val/mse", "val/ce", "val/acc"}
    assert live.rows[-1]["val/mse"] < before


def test_bf16_computes_in_bfloat16_and_keeps_float32_weights(capsys):
    def trained(precision):
        seed_everything(0, 2)
        x, y = toy_data()
        model = Autoencoder(size=16, channels=[8, 16], latent=16, grid=2, n_classes=2, residual_levels=1)
        fit(model, (x, y), (x, y), training_params(aux_lambda=0.1, epochs=2, precision=precision), RecordingLive())
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    fp32 = trained("fp32")
    assert "warning" not in capsys.readouterr().err
    bf16 = trained("bf16")
    if device().type == "cpu":  # the tests run with the kernel pins, which cap oneDNN below bfloat16 hardware
        assert "warning: train.precision is bf16, but bfloat16 is emulated here" in capsys.readouterr().err
    assert bf16.dtype == torch.float32 and not torch.equal(fp32, bf16)  # rounded otherwise on the way
    assert (fp32 - bf16).norm() < 0.01 * fp32.norm()  # but the same training


def test_the_ramp_gives_the_cross_entropy_no_weight_at_the_first_step_and_full_weight_later():
    def weights_after(batches, aux_lambda, aux_ramp):
        seed_everything(0, 2)
        x, y = toy_data(n=16 * batches)
        model = Autoencoder(size=16, channels=[8, 16], latent=16, grid=2, n_classes=2)
        fit(model, (x, y), (x, y), training_params(aux_lambda, aux_ramp, epochs=1, weight_decay=0.0), RecordingLive())
        return model.state_dict()

    def same(a, b):
        return all(torch.equal(a[k], b[k]) for k in a)

    assert same(weights_after(1, 1.0, aux_ramp=True), weights_after(1, 0.0, aux_ramp=False))
    assert not same(weights_after(1, 1.0, aux_ramp=False), weights_after(1, 0.0, aux_ramp=False))
    assert not same(weights_after(2, 1.0, aux_ramp=True), weights_after(2, 0.0, aux_ramp=False))


def test_same_seed_same_weights():
    def train_once():
        seed_everything(3, 2)
        x, y = toy_data()
        model = Autoencoder(size=16, channels=[8, 16], latent=16, grid=2)
        fit(model, (x, y), (x, y), training_params(seed=3), RecordingLive())
        return model.state_dict()

    first, second = train_once(), train_once()
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="the pin is for x86 CPUs")
def test_importing_stages_pins_torch_and_mkl_to_avx2_kernels_so_avx512_machines_give_the_same_numbers():
    # A fresh interpreter without the variables: torch and MKL pick their kernels once, on first
    # use. MKL_VERBOSE makes MKL name the instruction set it dispatched to (an Intel CPU with
    # AVX-512 says AVX-512 without the pin; there, the augment stage wrote other images).
    env = {k: v for k, v in os.environ.items() if k not in KERNEL_PINS} | {"MKL_VERBOSE": "1"}
    probe = ("import emoji_ae, torch; torch.ones(4).sum(); print(torch.backends.cpu.get_cpu_capability()); "
             "torch.rand(8, 64) @ torch.rand(64, 2)")
    run = subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True)
    capability, *mkl_log = run.stdout.splitlines()
    assert capability in ("AVX2", "DEFAULT")  # DEFAULT: a CPU without AVX2
    if torch.backends.mkl.is_available():
        banner = next(line for line in mkl_log if line.startswith("MKL_VERBOSE oneMKL"))
        assert "AVX-512" not in banner and "AMX" not in banner, banner


def test_a_diverging_loss_stops_training_with_the_epoch_and_a_hint():
    x, y = toy_data()
    x[0, 0, 0, 0] = float("nan")
    model = Autoencoder(size=16, channels=[8, 16], latent=16, grid=2)
    with pytest.raises(PipelineError, match=r"became nan in epoch 1: lower train.lr"):
        fit(model, (x, y), (x, y), training_params(), RecordingLive())


def test_both_models_start_from_the_pretrained_weights_and_refuse_another_models(workdir):
    from emoji_ae.model import save_model
    from stages.train import start_from_pretrained

    torch.manual_seed(0)
    pretrained = Autoencoder(size=16, channels=[8, 16], latent=16, grid=2)
    save_model(pretrained, workdir / "models/pretrained/model.pt")
    for n_classes in (0, 2):
        torch.manual_seed(1)
        model = Autoencoder(size=16, channels=[8, 16], latent=16, grid=2, n_classes=n_classes)
        head = {k: v.clone() for k, v in model.state_dict().items() if k.startswith("classifier")}
        start_from_pretrained(model)
        state = model.state_dict()
        assert all(torch.equal(state[k], v) for k, v in pretrained.state_dict().items())
        assert all(torch.equal(state[k], v) for k, v in head.items())  # the aux head starts fresh
    with pytest.raises(
        PipelineError, match="models/pretrained/model.pt is unreadable .it was pretrained for another model or latent"
    ):
        start_from_pretrained(Autoencoder(size=16, channels=[8, 16], latent=32, grid=2))


def test_pretraining_pools_the_other_emoji_with_the_train_split_at_its_own_settings(monkeypatch):
    from emoji_ae import training
    from emoji_ae.config import parse_params
    from tests.conftest import tiny_params

    seen = {}
    monkeypatch.setattr(
        training,
        "fit",
        lambda model, train, val, params, live, analogies: seen.update(
            n=len(train[0]), labels=train[1], cfg=params.train
        ),
    )
    raw = tiny_params()
    raw["pretrain"] = {"epochs": 3, "lr": 0.004, "paste": 0.25, "analogy": 0.5}
    params = parse_params(raw)
    x, y = toy_data(n=20)
    training.pretrain(None, (x, torch.full((20,), -1)), (x[:8], y[:8]), (x, y), params)
    assert seen["n"] == 28 and (seen["labels"][:20] == -1).all() and torch.equal(seen["labels"][20:], y[:8])
    assert (seen["cfg"].epochs, seen["cfg"].lr, seen["cfg"].paste, seen["cfg"].analogy, seen["cfg"].batch_size) == (
        3,
        0.004,
        0.25,
        0.5,
        params.train.batch_size,
    )


def analogy_gap(model, analogies, n: int = 200) -> float:
    """The MSE of decode(z(a) - z(b) + z(c)) to d over n drawn analogies, over the reconstruction MSE."""
    quads = analogies.sample(n, torch.Generator().manual_seed(1))
    a, b, c, d = (analogies.images[i] for i in quads.T)
    model.eval()
    with torch.no_grad():
        za, zb, zc = model.encode(torch.cat([a, b, c])).chunk(3)
        composites = model.decode(za - zb + zc)
        reconstruction = torch.nn.functional.mse_loss(model(analogies.images)[0], analogies.images)
    return (torch.nn.functional.mse_loss(composites, d) / reconstruction).item()


def square_analogies(word: str = "with square"):
    """Flat colours with and without a red square (named `word`), and their one family."""
    from emoji_ae.analogies import TrainingAnalogies

    g = torch.Generator().manual_seed(0)
    plain = (torch.rand(12, 3, 1, 1, generator=g) * 0.5).expand(12, 3, 16, 16).clone()
    square = plain.clone()
    square[:, 0, 2:8, 2:8] = 1.0
    keys = [("set", f"thing {i}") for i in range(12)] + [("set", f"thing {i} {word}") for i in range(12)]
    variants = [r"\bdark skin tone\b"] if word == "dark skin tone" else []
    return TrainingAnalogies(keys, variants, torch.cat([plain, square]))


def trained_on_squares(analogies, settings: dict, attribute: int = 0, live=NoLog()) -> Autoencoder:
    """A small autoencoder trained from seed 0 on the square analogies, with training_params(**settings)."""
    seed_everything(0, 1)
    model = Autoencoder(size=16, channels=[8, 16], latent=32, grid=2, attribute=attribute)
    data = (analogies.images, torch.zeros(len(analogies.images), dtype=torch.long))
    fit(model, data, data, training_params(**settings), live, analogies)
    return model


def test_the_analogy_objective_makes_latent_arithmetic_land_on_the_target():
    """The arithmetic gap shrinks when training asks for the analogy."""
    analogies = square_analogies()
    gaps = {}
    for weight in (0.0, 4.0):
        model = trained_on_squares(analogies, {"epochs": 150, "lr": 1e-2, "analogy": weight})
        gaps[weight] = analogy_gap(model, analogies)
    assert gaps[4.0] < 0.6 * gaps[0.0]


TEACHERS = {"classify": 0.1, "adversary": 0.05, "invariance": 0.1, "swap": 1.0, "reader": 0.05}


def test_teachers_of_weight_zero_leave_training_as_it_was_and_weighed_ones_train_with_it():
    analogies = square_analogies("dark skin tone")  # a variant: an attribute the code learns
    states, logs = {}, {}
    for name, teachers in (("none", None), ("zero", dict.fromkeys(TEACHERS, 0.0)), ("all", TEACHERS)):
        logs[name] = RecordingLive()
        settings = {"epochs": 4, "analogy": 0.5, "attribute": teachers}
        states[name] = trained_on_squares(analogies, settings, attribute=16, live=logs[name]).state_dict()
    assert all(torch.equal(states["none"][k], states["zero"][k]) for k in states["none"])
    assert not all(torch.equal(states["none"][k], states["all"][k]) for k in states["none"])
    assert {f"train/{t}" for t in TEACHERS} <= set(logs["all"].rows[-1]) and "train/swap" not in logs["none"].rows[-1]


def swap_error(model, analogies) -> float:
    """MSE of decode(attribute code of a, content grid of b) to a, over the family's pairs (a, b)."""
    a, b = (analogies.images[analogies.pairs[:, i]] for i in (0, 1))
    model.eval()
    with torch.no_grad():
        za, zb = model.encode(a), model.encode(b)
        swapped = torch.cat([za[:, : model.attribute], zb[:, model.attribute :]], 1)
        return torch.nn.functional.mse_loss(model.decode(swapped), a).item()


def test_the_swap_teacher_puts_the_attribute_in_the_code_and_the_decoder_draws_it_on_another_grid():
    """A red square named as a variant: with the swap, a drawing's attribute code on its pair's grid
    draws the drawing with the square; without it, the grid keeps the square and the code does not."""
    analogies = square_analogies("dark skin tone")
    errors = {}
    for name, teachers in (("untaught", None), ("swap", {"classify": 0.1, "swap": 1.0})):
        model = trained_on_squares(analogies, {"epochs": 100, "lr": 1e-2, "attribute": teachers}, attribute=16)
        errors[name] = swap_error(model, analogies)
    assert errors["swap"] < 0.5 * errors["untaught"]


@pytest.mark.skipif(device().type != "cpu", reason="the processes side by side are the CPU's path")
def test_each_reference_seed_trains_the_same_weights_side_by_side_or_one_after_another():
    """The stage trains the seeds in processes of their own when train.threads > 1, the benchmark's
    cell and a one-thread run train them in turn: one seed must give one reference either way."""
    from emoji_ae.config import parse_params
    from emoji_ae.reference import reference_seeds, train_references
    from tests.conftest import tiny_params

    raw = tiny_params()
    raw["reference"].update(epochs=1, seeds=2)
    x, _ = toy_data(n=16)
    side_by_side = train_references(parse_params({**raw, "train": {**raw["train"], "threads": 2}}), x)
    in_turn = train_references(parse_params(raw), x)
    seeds = reference_seeds(parse_params(raw))
    assert list(side_by_side) == list(in_turn) == seeds == [raw["seed"], raw["seed"] + 1000]
    for seed in in_turn:
        assert all(torch.equal(a, b) for a, b in zip(side_by_side[seed].state_dict().values(),
                                                     in_turn[seed].state_dict().values()))
    assert not torch.equal(*(next(iter(m.state_dict().values())) for m in in_turn.values()))  # other seeds
