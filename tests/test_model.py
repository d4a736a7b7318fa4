from types import SimpleNamespace

import pytest
import torch

from emoji_ae.config import PipelineError
from emoji_ae.metrics import evaluate
from emoji_ae.model import Autoencoder, Residual, bf16_is_native, class_probabilities, encode_all, latent_grid, load_model, save_model
from emoji_ae.training import fit, seed_everything
from tests.conftest import RecordingLive, toy_data, training_params


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


def test_a_two_level_variational_latent_holds_a_global_code_before_the_grid():
    torch.manual_seed(0)
    model = Autoencoder(size=64, channels=[8, 16], latent=96, global_latent=32, variational=0.1, n_classes=2)
    x = torch.rand(4, 3, 64, 64)
    assert (model.grid, model.latent_channels) == (4, 4)  # the other 64 values: 4x4x4
    model.train()
    recon, logits = model(x)
    assert recon.shape == x.shape and logits.shape == (4, 2) and model.kl.item() > 0
    recon, logits, composites = model(x, (x[:2], x[2:], x[:2]))  # analogies in the same pass
    assert recon.shape == x.shape and logits.shape == (4, 2) and composites.shape == (2, 3, 64, 64)
    model.eval()
    with torch.no_grad():
        mean, log_var = model.encode_stats(x)
        assert mean.shape == log_var.shape == (4, 96)
        assert torch.equal(model.encode(x), mean)  # evaluation uses the mean, never a sample
    moved = mean.clone()
    moved[:, :32] += 1.0  # the global code alone changes the whole image
    assert (model.decode(moved) - model.decode(mean)).abs().mean(1).gt(0).float().mean() > 0.9


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


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CPU check")
def test_bfloat16_is_not_native_while_the_pins_cap_onednn_at_avx2(monkeypatch):
    monkeypatch.setenv("ONEDNN_MAX_CPU_ISA", "AVX2")
    assert not bf16_is_native()


def test_refining_the_latent_lowers_the_error_and_leaves_the_model_alone():
    seed_everything(0, 2)
    x, y = toy_data()
    x = torch.nn.functional.interpolate(x[:, :, :4, :4], size=16, mode="bilinear")  # smooth: learnable
    model = Autoencoder(size=16, channels=[8, 16], latent=16)
    fit(model, (x, y), (x, y), training_params(epochs=20, lr=1e-2), RecordingLive())
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
    with pytest.raises(PipelineError, match="evil.pt is unreadable .UnpicklingError: Weights only load failed"):
        load_model(tmp_path / "evil.pt")


def test_the_reference_has_the_assignments_shape_and_reloads(tmp_path):
    from emoji_ae.model import Reference, reference_cells

    model = Reference(latent=128).eval()
    x = torch.rand(2, 3, 64, 64)
    assert model.encoder(x).shape == (2, 8, 4, 4) and model.encode(x).shape == (2, 128) and model(x)[0].shape == x.shape
    assert reference_cells(64) == 16 and Reference(latent=16, size=16).encode(torch.rand(1, 3, 16, 16)).shape == (1, 16)
    save_model(model, tmp_path / "reference.pt")
    loaded = load_model(tmp_path / "reference.pt")
    assert isinstance(loaded, Reference) and torch.equal(loaded(x)[0], model(x)[0])
