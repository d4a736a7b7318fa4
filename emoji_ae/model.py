"""The convolutional autoencoder and its auxiliary classifier: building, encoding (with latent
refinement), decoding, saving and loading. Training lives in emoji_ae.training; why the model
is built this way, in docs/design.md."""

import os

import torch
import torch.nn.functional as F
from torch import nn

from emoji_ae.files import broken, load_torch, save_torch, short_reason


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def bf16_is_native() -> bool:
    """Whether bfloat16 runs in hardware here: on a GPU that has it, or on a CPU with AMX or
    AVX512_BF16 whose oneDNN is not capped below them (the kernel pins of emoji_ae/__init__.py cap it
    at AVX2). Elsewhere oneDNN emulates it, many times slower than fp32."""
    if device().type == "cuda":
        return torch.cuda.is_bf16_supported(including_emulation=False)
    isa = os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    capped = isa != "ALL" and not any(name in isa for name in ("BF16", "AMX", "AVX10"))
    # torch.cpu has no public getter for these two; they read the same cpuinfo that oneDNN does.
    return not capped and (torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def down(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2, inplace=True),
    )


def up(c_in: int, c_out: int, dropout: float = 0.0) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.LeakyReLU(0.2, inplace=True),
        # Whole feature maps dropped while training: the decoder cannot lean on any one
        # feature of the few training emoji.
        nn.Dropout2d(dropout),
    )


class Residual(nn.Module):
    """x plus two 3x3 convolutions of x: decoder depth where it is cheap, at coarse resolutions."""

    def __init__(self, width: int):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
        )
        self.activation = nn.LeakyReLU(0.2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.activation(x + self.body(x))


def latent_grid(size: int, latent: int, grid: int | None = None) -> int:
    """Side of the latent grid: `grid` when given, else the finest (at most size / 4) that
    holds `latent` values in at least two channels. Finer grids keep each value local, which
    reconstructs unseen emoji best; coarse grids make each value describe the whole face,
    which is what latent arithmetic needs (docs/design.md)."""
    if grid is not None:
        return grid
    grid = size // 4
    while grid > 1 and (latent % grid**2 or latent // grid**2 < 2):
        grid //= 2
    return grid


class Autoencoder(nn.Module):
    """DCGAN-style: stride-2 convolutions down to the latent grid, a 3x3 convolution to a few
    latent channels, and the mirror image back up. The latent is that grid flattened, a
    vector of `latent` values, and the only thing that passes from encoder to decoder. No
    fully connected layer: what the model learns about one part of an emoji applies
    everywhere, which is what generalises to emoji it has never seen."""

    def __init__(self, size: int, channels: list[int], latent: int, in_channels: int = 3,
                 n_classes: int = 0, hidden: int = 64, dropout: float = 0.0, grid: int | None = None,
                 decoder_dropout: float = 0.0, residual_levels: int = 0, variational: float = 0.0, global_latent: int = 0):
        super().__init__()
        self.config = dict(size=size, channels=list(channels), latent=latent, in_channels=in_channels,
                           n_classes=n_classes, hidden=hidden, dropout=dropout, grid=grid,
                           decoder_dropout=decoder_dropout, residual_levels=residual_levels,
                           variational=variational, global_latent=global_latent)
        # Two-level latent: the first `global_latent` values describe the whole emoji (pooled, then
        # a linear layer), the rest are the spatial grid that carries the detail.
        self.global_latent = global_latent
        self.grid = latent_grid(size, latent - global_latent, grid)
        self.latent_channels = (latent - global_latent) // self.grid**2
        # Variational: the encoder gives a mean and a log-variance per value; training samples
        # around the mean and pays `variational` x KL to a unit Gaussian (a beta-VAE).
        self.variational = variational
        stats = 2 if variational else 1
        levels = (size // self.grid).bit_length() - 1
        # channels[i] is the width after i + 1 halvings; deeper levels keep the last width.
        widths = [in_channels, *[channels[min(i, len(channels) - 1)] for i in range(levels)]]
        self.encoder = nn.Sequential(
            *[down(a, b) for a, b in zip(widths[:-1], widths[1:])],
            nn.Conv2d(widths[-1], self.latent_channels * stats, 3, padding=1),
        )
        rev = widths[::-1]
        decoder = [nn.Conv2d(self.latent_channels, rev[0], 3, padding=1, bias=False), nn.BatchNorm2d(rev[0]), nn.LeakyReLU(0.2, inplace=True)]
        # From the latent grid up: the first `residual_levels` resolutions get a residual block.
        for level, (a, b) in enumerate(zip(rev[:-1], rev[1:])):
            if level < residual_levels:
                decoder.append(Residual(a))
            last = level == len(rev) - 2
            decoder.append(nn.ConvTranspose2d(a, b, 4, stride=2, padding=1) if last else up(a, b, decoder_dropout))
        self.decoder = nn.Sequential(*decoder, nn.Sigmoid())
        if global_latent:
            self.global_out = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(widths[-1], global_latent * stats))
            self.global_in = nn.Linear(global_latent, rev[0])  # added to every cell of the decoder's first features
        # The auxiliary task reads the latent only, so it shapes what the latent encodes. Small
        # convolutions and a global max-pool look for shapes (ears, whiskers) wherever they are,
        # which carries over to unseen emoji better than an MLP on the vector (docs/design.md).
        self.classifier = nn.Sequential(
            nn.Unflatten(1, (self.latent_channels, self.grid, self.grid)),
            nn.Conv2d(self.latent_channels, hidden // 2, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden // 2, hidden, 3, padding=1), nn.ReLU(inplace=True),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(hidden, n_classes),
        ) if n_classes else None

    def encode_stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The latent's mean and, for a variational model, its log-variance (else None)."""
        features = self.encoder[:-1](x)
        spatial = self.encoder[-1](features).chunk(2 if self.variational else 1, dim=1)
        parts = [s.flatten(1) for s in spatial]
        if self.global_latent:
            parts = [torch.cat([g, s], 1) for g, s in zip(self.global_out(features).chunk(len(parts), dim=1), parts)]
        return parts[0], (parts[1] if self.variational else None)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_stats(x)[0]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        spatial = z[:, self.global_latent :].reshape(len(z), self.latent_channels, self.grid, self.grid)
        if not self.global_latent:
            return self.decoder(spatial)
        features = self.decoder[0](spatial) + self.global_in(z[:, : self.global_latent])[:, :, None, None]
        return self.decoder[1:](features)

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """The aux classifier's logits, from the spatial grid of the latent."""
        return self.classifier(z[:, self.global_latent :])

    def forward(self, x: torch.Tensor, analogy=None):
        """Reconstruction and logits; a variational model in training samples its latent and
        leaves the KL term (per pixel value, like the MSE) in `self.kl` for the loss. With
        `analogy`, images (a, b, c), also the composites decode(z(a) - z(b) + z(c)), from the same
        pass of the encoder and of the decoder: BatchNorm then normalises, and keeps the running
        statistics of, one batch, as evaluation will see it."""
        inputs = x if analogy is None else torch.cat([x, *analogy])
        z, log_var = self.encode_stats(inputs)
        if log_var is not None and self.training:
            self.kl = 0.5 * (z.pow(2) + log_var.exp() - 1 - log_var).sum(1).mean() / x[0].numel()
            z = z + torch.randn_like(z) * (0.5 * log_var).exp()
        own = z[: len(x)]
        logits = self.classify(own) if self.classifier is not None else None
        if analogy is None:
            return self.decode(own), logits
        za, zb, zc = z[len(x) :].chunk(3)
        out = self.decode(torch.cat([own, za - zb + zc]))
        return out[: len(x)], logits, out[len(x) :]


class Reference(nn.Module):
    """The assignment's public solutions' plain strided autoencoder, trained beside ours as the
    yardstick: conv 3-16-32-64-C (3x3, stride 2, ReLU) and its transpose; a 4x4xC latent at 64 px."""

    def __init__(self, latent: int, size: int = 64, in_channels: int = 3):
        super().__init__()
        self.config = dict(architecture="reference", latent=latent, size=size, in_channels=in_channels)
        self.side = size // 16
        self.latent_channels = latent // self.side**2
        widths = [in_channels, 16, 32, 64, self.latent_channels]
        self.encoder = nn.Sequential(*[m for a, b in zip(widths, widths[1:]) for m in (nn.Conv2d(a, b, 3, 2, 1), nn.ReLU())])
        rev = widths[::-1]
        layers = [m for a, b in zip(rev[:-1], rev[1:]) for m in (nn.ConvTranspose2d(a, b, 3, 2, 1, output_padding=1), nn.ReLU())]
        self.decoder = nn.Sequential(*layers[:-1], nn.Sigmoid())
        self.classifier = None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).flatten(1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z.view(len(z), self.latent_channels, self.side, self.side))

    def forward(self, x: torch.Tensor):
        return self.decode(self.encode(x)), None


def build_autoencoder(params, size: int, in_channels: int, classifier: bool, latent: int | None = None) -> Autoencoder:
    """The model params.yaml describes, with the aux classifier head or without."""
    head = dict(n_classes=len(params.data.classes), hidden=params.aux.hidden, dropout=params.aux.dropout) if classifier else {}
    return Autoencoder(size, params.model.channels, latent or params.latent, in_channels, grid=params.model.grid,
                       decoder_dropout=params.model.decoder_dropout, residual_levels=params.model.residual_levels,
                       variational=params.model.variational, global_latent=params.model.global_latent, **head).to(device())


def batches(n: int, batch_size: int, generator=None):
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


@torch.no_grad()
def class_probabilities(model, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
    """The classifier's probabilities, averaged over each image and its mirror image.

    The classes do not change under a mirror (augmentation flips half the images), so the mirror
    is a second look at the same emoji. It reads the encoder's latent (`z` when already
    computed), which is what the classifier was trained on.
    """
    dev = next(model.parameters()).device
    looks = [encode_all(model, x) if z is None else z, encode_all(model, x.flip(-1))]
    return torch.stack([model.classify(look.to(dev)).softmax(1).cpu() for look in looks]).mean(0)


def refine_latents(model, x: torch.Tensor, z: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    """`steps` of Adam on the latents z alone, to lower the decoder's error on x.

    An encoder trained on few distinct emoji guesses a code for an unseen one that the
    decoder can beat. The model stays fixed and the decoder still receives only the latent.
    """
    z = z.detach().clone().requires_grad_(True)
    optimizer = torch.optim.Adam([z], lr=lr)
    for _ in range(steps):
        loss = F.mse_loss(model.decode(z), x, reduction="sum")
        (z.grad,) = torch.autograd.grad(loss, z)  # gradients for z only, none for the weights
        optimizer.step()
    return z.detach()


def encode_all(model, x: torch.Tensor, refine=None, batch_size: int = 256) -> torch.Tensor:
    """The latent of every image: the encoder's, refined when `refine` asks for steps."""
    model.eval()
    dev = next(model.parameters()).device
    latents = []
    for index in batches(len(x), batch_size):
        xb = x[index].to(dev)
        with torch.no_grad():
            z = model.encode(xb)
        if refine is not None and refine.steps:
            z = refine_latents(model, xb, z, refine.steps, refine.lr)
        latents.append(z.cpu())
    return torch.cat(latents)


@torch.no_grad()
def decode_all(model, z: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    model.eval()
    dev = next(model.parameters()).device
    return torch.cat([model.decode(z[i].to(dev)).cpu() for i in batches(len(z), batch_size)])


def save_model(model, path) -> None:
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    save_torch({"config": model.config, "state_dict": state}, path)


def load_model(path) -> Autoencoder:
    """Rebuild a saved model (emoji_ae.files.load_torch: weights only, clear errors)."""
    saved = load_torch(path)
    try:
        config = dict(saved["config"])
        model = Reference(**config) if config.pop("architecture", None) == "reference" else Autoencoder(**config)
        model.load_state_dict(saved["state_dict"])
    except (KeyError, TypeError, RuntimeError) as e:
        raise broken(path, f"not a model of this code: {short_reason(e)}") from None
    return model.to(device()).eval()


def reference_cells(size: int) -> int:
    """Cells of the reference's latent grid: it halves the image four times, 4x4 at 64 px."""
    return (size // 16) ** 2
