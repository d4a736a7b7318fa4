import os
import platform
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

from stages import KERNEL_PINS
from stages.config import PipelineError
from stages.model import (Autoencoder, bf16_is_native, class_probabilities, device, encode_all, evaluate, fit, latent_grid, load_model,
                          mirror, paste_patches, Residual, save_model, seed_everything, warp)


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


def config(**overrides):
    return SimpleNamespace(**{"epochs": 3, "batch_size": 16, "lr": 3e-3, "weight_decay": 1e-4, "paste": 0.0, "flip": 0.0, "rotate": 0.0, "shift": 0.0, "zoom": 0.0, "precision": "fp32",
                               **overrides})


@pytest.mark.parametrize("size,latent,grid", [(64, 32, 4), (64, 128, 8), (64, 512, 16), (64, 2048, 16), (64, 100, 2),
                                               (64, 7, 1), (16, 16, 2)])
def test_latent_grid_is_the_finest_that_holds_two_channels(size, latent, grid):
    assert latent_grid(size, latent) == grid


@pytest.mark.parametrize("size,latent", [(16, 16), (64, 128), (64, 7)])
def test_output_shape_equals_input_and_latent_has_the_configured_size(size, latent):
    model = Autoencoder(size=size, channels=[8, 16, 32], latent=latent)
    x = torch.rand(2, 3, size, size)
    recon, logits = model(x)
    assert recon.shape == x.shape and logits is None
    assert model.encode(x).shape == (2, latent)
    assert 0 <= recon.min() and recon.max() <= 1


def test_a_fixed_grid_holds_the_latent_in_its_channels():
    model = Autoencoder(size=64, channels=[8, 16], latent=128, grid=2)
    x = torch.rand(2, 3, 64, 64)
    assert (model.grid, model.latent_channels) == (2, 32)
    assert model.encoder(x).shape == (2, 32, 2, 2) and model(x)[0].shape == x.shape


def test_decoder_dropout_acts_while_training_only():
    torch.manual_seed(0)
    model = Autoencoder(size=16, channels=[8, 16], latent=16, decoder_dropout=0.5)
    z = torch.randn(4, 16)
    model.train()
    assert not torch.equal(model.decode(z), model.decode(z))
    model.eval()
    assert torch.equal(model.decode(z), model.decode(z))


@pytest.mark.parametrize("residual_levels,resolutions", [(0, []), (2, [8, 16]), (9, [8, 16, 32])])
def test_residual_blocks_sit_at_the_coarsest_decoder_resolutions(residual_levels, resolutions):
    model = Autoencoder(size=64, channels=[8, 16, 32], latent=128, residual_levels=residual_levels)  # 8x8 grid
    seen = []
    for block in model.decoder:
        if isinstance(block, Residual):
            block.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape[-1]))
    x = torch.rand(2, 3, 64, 64)
    assert model(x)[0].shape == x.shape
    assert seen == resolutions
    assert model.encode(x).shape == (2, 128)  # the blocks add decoder depth, not latent values


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
    assert torch.equal(mirror(x, 0.0, torch.Generator()), x) and torch.equal(mirror(x, 1.0, torch.Generator()), x.flip(-1))


def test_warp_moves_each_image_differently_and_keeps_a_white_background_white():
    x = torch.ones(64, 3, 16, 16)
    x[:, :, 6:10, 6:10] = 0.0  # a dark square in the middle of a white image
    out = warp(x, 10, 0.1, 0.1, torch.Generator().manual_seed(0))
    assert torch.equal(out, warp(x, 10, 0.1, 0.1, torch.Generator().manual_seed(0)))
    assert out.shape == x.shape and not torch.equal(out, x)
    assert len({tuple(o.flatten().tolist()) for o in out}) == len(x)  # a new view per image
    assert torch.allclose(out[..., 0, :], torch.ones(1), atol=1e-6) and torch.allclose(out[..., :, 0], torch.ones(1), atol=1e-6)
    assert torch.equal(warp(x, 0, 0.0, 0.0, torch.Generator()), x)
    shifted = warp(x, 0, 0.25, 0.0, torch.Generator().manual_seed(1))
    assert not torch.equal(shifted[:, :, 6:10, 6:10], x[:, :, 6:10, 6:10])  # the square moved


def test_training_lowers_the_loss_and_logs_every_epoch():
    seed_everything(0, 2)
    x, y = toy_data()
    model = Autoencoder(size=16, channels=[8, 16], latent=16, n_classes=2)
    before = evaluate(model, x, y)["mse"]
    live = RecordingLive()
    fit(model, (x, y), (x, y), config(epochs=5, paste=0.5, flip=0.5, rotate=10, shift=0.05, zoom=0.1), live, aux_lambda=0.1)
    assert len(live.rows) == 5
    assert set(live.rows[0]) == {"train/mse", "train/ce", "train/acc", "val/mse", "val/ce", "val/acc"}
    assert live.rows[-1]["val/mse"] < before


def test_bf16_computes_in_bfloat16_and_keeps_float32_weights(capsys):
    def trained(precision):
        seed_everything(0, 2)
        x, y = toy_data()
        model = Autoencoder(size=16, channels=[8, 16], latent=16, n_classes=2, residual_levels=1)
        fit(model, (x, y), (x, y), config(epochs=2, precision=precision), RecordingLive(), aux_lambda=0.1)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    fp32 = trained("fp32")
    assert "warning" not in capsys.readouterr().err
    bf16 = trained("bf16")
    if device().type == "cpu":  # the tests run with the kernel pins, which cap oneDNN below bfloat16 hardware
        assert "warning: train.precision is bf16, but bfloat16 is emulated here" in capsys.readouterr().err
    assert bf16.dtype == torch.float32 and not torch.equal(fp32, bf16)  # rounded otherwise on the way
    assert (fp32 - bf16).norm() < 0.01 * fp32.norm()  # but the same training


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CPU check")
def test_bfloat16_is_not_native_while_the_pins_cap_onednn_at_avx2(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not bf16_is_native()


def test_the_ramp_gives_the_cross_entropy_no_weight_at_the_first_step_and_full_weight_later():
    def weights_after(batches, aux_lambda, aux_ramp):
        seed_everything(0, 2)
        x, y = toy_data(n=16 * batches)
        model = Autoencoder(size=16, channels=[8, 16], latent=16, n_classes=2)
        fit(model, (x, y), (x, y), config(epochs=1, weight_decay=0.0), RecordingLive(), aux_lambda, aux_ramp=aux_ramp)
        return model.state_dict()

    def same(a, b):
        return all(torch.equal(a[k], b[k]) for k in a)

    assert same(weights_after(1, 1.0, aux_ramp=True), weights_after(1, 0.0, aux_ramp=False))
    assert not same(weights_after(1, 1.0, aux_ramp=False), weights_after(1, 0.0, aux_ramp=False))
    assert not same(weights_after(2, 1.0, aux_ramp=True), weights_after(2, 0.0, aux_ramp=False))


def test_refining_the_latent_lowers_the_error_and_leaves_the_model_alone():
    seed_everything(0, 2)
    x, y = toy_data()
    x = torch.nn.functional.interpolate(x[:, :, :4, :4], size=16, mode="bilinear")  # smooth: learnable
    model = Autoencoder(size=16, channels=[8, 16], latent=16)
    fit(model, (x, y), (x, y), config(epochs=20, lr=1e-2), RecordingLive())
    model.zero_grad(set_to_none=True)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    refine = SimpleNamespace(steps=30, lr=0.05)
    one_pass, refined = encode_all(model, x), encode_all(model, x, refine, batch_size=20)
    assert refined.shape == one_pass.shape and not torch.equal(refined, one_pass)
    assert evaluate(model, x, refine=refine)["mse"] < 0.9 * evaluate(model, x)["mse"]
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(encode_all(model, x, SimpleNamespace(steps=0, lr=0.05)), one_pass)


def test_class_probabilities_average_the_image_and_its_mirror():
    seed_everything(0, 2)
    x, y = toy_data(n=8)
    model = Autoencoder(size=16, channels=[8, 16], latent=16, n_classes=2).eval()
    with torch.no_grad():
        looks = [model.classifier(model.encode(v)).softmax(1) for v in (x, x.flip(-1))]
    probabilities = class_probabilities(model, x)
    assert torch.allclose(probabilities, (looks[0] + looks[1]) / 2, atol=1e-6)
    assert torch.allclose(probabilities.sum(1), torch.ones(8))
    symmetric = torch.cat([x[..., :8], x[..., :8].flip(-1)], -1)  # its own mirror image: one look
    with torch.no_grad():
        single = model.classifier(model.encode(symmetric)).softmax(1)
    assert torch.allclose(class_probabilities(model, symmetric), single, atol=1e-6)
    assert evaluate(model, x, y)["acc"] == (probabilities.argmax(1) == y).float().mean().item()


def test_same_seed_same_weights():
    def train_once():
        seed_everything(3, 2)
        x, y = toy_data()
        model = Autoencoder(size=16, channels=[8, 16], latent=16)
        fit(model, (x, y), (x, y), config(), RecordingLive(), seed=3)
        return model.state_dict()

    first, second = train_once(), train_once()
    assert all(torch.equal(first[k], second[k]) for k in first)


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="the pin is for x86 CPUs")
def test_importing_stages_pins_torch_and_mkl_to_avx2_kernels_so_avx512_machines_give_the_same_numbers():
    # A fresh interpreter without the variables: torch and MKL pick their kernels once, on first
    # use. MKL_VERBOSE makes MKL name the instruction set it dispatched to (an Intel CPU with
    # AVX-512 says AVX-512 without the pin; there, the augment stage wrote other images).
    env = {k: v for k, v in os.environ.items() if k not in KERNEL_PINS} | {"MKL_VERBOSE": "1"}
    probe = ("import stages, torch; torch.ones(4).sum(); print(torch.backends.cpu.get_cpu_capability()); "
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
    model = Autoencoder(size=16, channels=[8, 16], latent=16)
    with pytest.raises(PipelineError, match=r"became nan in epoch 1: lower train.lr"):
        fit(model, (x, y), (x, y), config(), RecordingLive())


def test_saved_models_reload_with_weights_only_and_give_the_same_latents(tmp_path):
    model = Autoencoder(size=16, channels=[8, 16], latent=16, n_classes=3, hidden=10, dropout=0.1, residual_levels=1).eval()
    save_model(model, tmp_path / "model.pt")
    loaded = load_model(tmp_path / "model.pt").eval()
    x, _ = toy_data(n=4)
    assert torch.equal(encode_all(model, x), encode_all(loaded, x))
    assert torch.equal(model(x)[0], loaded(x)[0])
    assert loaded.config == model.config


def test_a_model_file_that_would_run_code_is_refused(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"config": Payload(), "state_dict": {}}, tmp_path / "evil.pt")
    with pytest.raises(Exception, match="Weights only load failed"):
        load_model(tmp_path / "evil.pt")
