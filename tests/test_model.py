from types import SimpleNamespace

import pytest
import torch

from emoji_ae.config import PipelineError
from emoji_ae.metrics import evaluate
from emoji_ae.model import (
    Autoencoder,
    Residual,
    bf16_is_native,
    class_probabilities,
    encode_all,
    load_model,
    save_model,
    seed_everything,
)
from emoji_ae.training import fit
from tests.conftest import RecordingLive, toy_data, training_params


@pytest.mark.parametrize(
    "size,latent,grid,attribute,channels",
    [(64, 256, 8, 64, 3), (64, 320, 8, 64, 4), (64, 256, 8, 0, 4), (16, 16, 2, 0, 4), (64, 32, 2, 16, 4)],
)
def test_the_latent_is_the_attribute_code_then_the_content_grid(size, latent, grid, attribute, channels):
    model = Autoencoder(size=size, channels=[8, 16, 32], latent=latent, grid=grid, attribute=attribute)
    x = torch.rand(2, 3, size, size)
    recon, logits = model(x)
    assert recon.shape == x.shape and logits is None and 0 <= recon.min() and recon.max() <= 1
    z = model.encode(x)
    code, content = model.split(z)
    assert z.shape == (2, latent) and code.shape == (2, attribute) and content.shape == (2, channels, grid, grid)


@pytest.mark.parametrize("latent,grid,attribute,message", [
    (256, 8, 32, "latent 256 less model.attribute 32 does not fill the 8x8 content grid"),
    (32, 8, 0, "latent 32 less model.attribute 0 does not fill the 8x8 content grid"),
    (256, 6, 0, "model.grid must be a power of two of at most data.size / 2 = 32, got 6"),
    (256, 64, 0, "model.grid must be a power of two of at most data.size / 2 = 32, got 64")])
def test_a_grid_that_the_latent_does_not_fill_is_refused_in_one_line_never_changed(latent, grid, attribute, message):
    with pytest.raises(ValueError, match=message):
        Autoencoder(size=64, channels=[8, 16], latent=latent, grid=grid, attribute=attribute)


def test_the_attribute_code_moves_every_level_of_the_decoder_and_the_head_reads_it():
    torch.manual_seed(0)
    model = Autoencoder(size=64, channels=[8, 16], latent=96, grid=4, attribute=32, n_classes=2)
    for film in model.film:  # FiLM starts as the identity, then learns
        torch.nn.init.normal_(film.linear.weight, std=0.1)
    x = torch.rand(4, 3, 64, 64)
    recon, logits = model(x)
    assert recon.shape == x.shape and logits.shape == (4, 2)
    model.eval()
    with torch.no_grad():
        z = model.encode(x)
        moved = z.clone()
        moved[:, :32] += 1.0  # the attribute code alone changes the whole image
        assert (model.decode(moved) - model.decode(z)).abs().mean(1).gt(0).float().mean() > 0.9
        assert not torch.equal(model.classify(moved), model.classify(z))


def test_decoder_dropout_acts_while_training_only():
    torch.manual_seed(0)
    model = Autoencoder(size=16, channels=[8, 16], latent=16, grid=2, decoder_dropout=0.5)
    z = torch.randn(4, 16)
    model.train()
    assert not torch.equal(model.decode(z), model.decode(z))
    model.eval()
    assert torch.equal(model.decode(z), model.decode(z))


@pytest.mark.parametrize("residual_levels,resolutions", [(0, []), (2, [8, 16]), (9, [8, 16, 32])])
def test_residual_blocks_sit_at_the_coarsest_decoder_resolutions(residual_levels, resolutions):
    model = Autoencoder(size=64, channels=[8, 16, 32], latent=128, residual_levels=residual_levels)  # 8x8 grid
    seen = []
    for block in model.modules():
        if isinstance(block, Residual):
            block.register_forward_hook(lambda module, inputs, output: seen.append(inputs[0].shape[-1]))
    x = torch.rand(2, 3, 64, 64)
    assert model(x)[0].shape == x.shape
    assert seen == resolutions
    assert model.encode(x).shape == (2, 128)  # the blocks add decoder depth, not latent values


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CPU check")
def test_bfloat16_is_not_native_while_the_pins_cap_onednn_at_avx2(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not bf16_is_native()


def test_refining_the_latent_lowers_the_error_and_leaves_the_model_alone():
    seed_everything(0, 2)
    x, y = toy_data()
    x = torch.nn.functional.interpolate(x[:, :, :4, :4], size=16, mode="bilinear")  # smooth: learnable
    model = Autoencoder(size=16, channels=[8, 16], latent=16, grid=2)
    fit(model, (x, y), (x, y), training_params(epochs=20, lr=1e-2), RecordingLive())
    model.zero_grad(set_to_none=True)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    refine = SimpleNamespace(steps=30, lr=0.05)
    one_pass, refined = encode_all(model, x), encode_all(model, x, refine, batch_size=20)
    assert refined.shape == one_pass.shape and not torch.equal(refined, one_pass)
    assert evaluate(model, x, refine=refine)["mse"] < 0.95 * evaluate(model, x)["mse"]
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert all(p.grad is None for p in model.parameters())
    assert torch.equal(encode_all(model, x, SimpleNamespace(steps=0, lr=0.05)), one_pass)


def test_class_probabilities_average_the_image_and_its_mirror():
    seed_everything(0, 2)
    x, y = toy_data(n=8)
    model = Autoencoder(size=16, channels=[8, 16], latent=16, grid=2, n_classes=2).eval()
    with torch.no_grad():
        looks = [model.classify(model.encode(v)).softmax(1) for v in (x, x.flip(-1))]
    probabilities = class_probabilities(model, x)
    assert torch.allclose(probabilities, (looks[0] + looks[1]) / 2, atol=1e-6)
    assert torch.allclose(probabilities.sum(1), torch.ones(8))
    symmetric = torch.cat([x[..., :8], x[..., :8].flip(-1)], -1)  # its own mirror image: one look
    with torch.no_grad():
        single = model.classify(model.encode(symmetric)).softmax(1)
    assert torch.allclose(class_probabilities(model, symmetric), single, atol=1e-6)
    assert evaluate(model, x, y)["acc"] == (probabilities.argmax(1) == y).float().mean().item()


def test_saved_models_reload_with_weights_only_and_give_the_same_latents(tmp_path):
    model = Autoencoder(
        size=16, channels=[8, 16], latent=16, grid=2, n_classes=3, hidden=10, dropout=0.1, residual_levels=1
    ).eval()
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
    with pytest.raises(PipelineError, match="evil.pt is unreadable .UnpicklingError: Weights only load failed"):
        load_model(tmp_path / "evil.pt")


def test_the_reference_has_the_assignments_shape_and_reloads(tmp_path):
    from emoji_ae.model import Reference

    model = Reference(latent=128).eval()
    x = torch.rand(2, 3, 64, 64)
    assert model.encoder(x).shape == (2, 8, 4, 4) and model.encode(x).shape == (2, 128) and model(x)[0].shape == x.shape
    assert Reference(latent=16, size=16).encode(torch.rand(1, 3, 16, 16)).shape == (1, 16)
    save_model(model, tmp_path / "reference.pt")
    loaded = load_model(tmp_path / "reference.pt")
    assert isinstance(loaded, Reference) and torch.equal(loaded(x)[0], model(x)[0])
