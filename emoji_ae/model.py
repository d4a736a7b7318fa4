"""The convolutional autoencoder and its auxiliary classifier: building, encoding (with latent
refinement), decoding, saving and loading. Training lives in emoji_ae.training; why the model
is built this way, in docs/design.md."""

import os
import random

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from emoji_ae.config import content_channels
from emoji_ae.files import broken, load_torch, save_torch, short_reason


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def seed_everything(seed: int, threads: int) -> None:
    """Same seed and thread count: the same numbers, bit for bit, on one CPU (and on x86_64
    the kernel pins of emoji_ae/__init__.py keep data stages equal across CPUs)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    # Deterministic mode also fills every new tensor with NaN, in case an op reads memory it
    # never wrote. None of ours does (the weights are the same bit for bit without it), and the
    # fill shows up in `python -m emoji_ae.tools.profile_train`.
    torch.utils.deterministic.fill_uninitialized_memory = False


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


class Pool(nn.Module):
    """Mean and max over the grid: how much of a feature there is, and how strongly it shows anywhere."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.mean((2, 3)), x.amax((2, 3))], 1)


class Film(nn.Module):
    """Feature-wise modulation (FiLM, Perez et al. 2018): the attribute code scales and shifts each
    channel of a decoder level, wherever it is drawn. Starts as the identity."""

    def __init__(self, attribute: int, width: int):
        super().__init__()
        self.linear = nn.Linear(attribute, 2 * width)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        scale, shift = self.linear(code)[:, :, None, None].chunk(2, 1)
        return x * (1 + scale) + shift


class Classifier(nn.Module):
    """The auxiliary head: small convolutions and a global max-pool over the content grid look for
    shapes (ears, whiskers) wherever they are, beside the attribute code (docs/design.md)."""

    def __init__(self, grid_channels: int, attribute: int, hidden: int, n_classes: int, dropout: float):
        super().__init__()
        self.shapes = nn.Sequential(
            nn.Conv2d(grid_channels, hidden // 2, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden // 2, hidden, 3, padding=1), nn.ReLU(inplace=True), nn.AdaptiveMaxPool2d(1), nn.Flatten())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(hidden + attribute, n_classes))

    def forward(self, grid: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return self.head(torch.cat([self.shapes(grid), code], 1))


class Autoencoder(nn.Module):
    """DCGAN-style: stride-2 convolutions down to the content grid, and the mirror image back up.
    The latent is a vector of `latent` values, the only thing that passes from encoder to decoder:
    first the attribute code (`attribute` values, pooled from the whole image), then the content
    grid flattened (a `grid` x `grid` map of a few channels, from a 3x3 convolution). The decoder
    draws the grid and the attribute code modulates every level of it (Film). No fully connected
    path for the content: what the model learns about one part of an emoji applies everywhere."""

    def __init__(self, size: int, channels: list[int], latent: int, in_channels: int = 3, n_classes: int = 0,
                 hidden: int = 64, dropout: float = 0.0, grid: int = 8, attribute: int = 0,
                 decoder_dropout: float = 0.0, residual_levels: int = 0, slots: list[str] = ()):
        super().__init__()
        if len(slots) > attribute:
            raise ValueError(f"{len(slots)} attribute slots do not fit an attribute code of {attribute} values")
        self.config = dict(size=size, channels=list(channels), latent=latent, in_channels=in_channels,
                           n_classes=n_classes, hidden=hidden, dropout=dropout, grid=grid, attribute=attribute,
                           decoder_dropout=decoder_dropout, residual_levels=residual_levels, slots=list(slots))
        self.grid, self.attribute, self.slot_names, self.slots = grid, attribute, list(slots), len(slots)
        self.latent_channels = content_channels(size, latent, grid, attribute)
        levels = (size // grid).bit_length() - 1
        # channels[i] is the width after i + 1 halvings; deeper levels keep the last width.
        widths = [in_channels, *[channels[min(i, len(channels) - 1)] for i in range(levels)]]
        self.encoder = nn.Sequential(*[down(a, b) for a, b in zip(widths[:-1], widths[1:])])
        # The decoder's first BatchNorm makes any scale of the grid equivalent, so the grid leaves the
        # encoder standardised: the code and the grid then weigh in latent distances (the nearest
        # emoji, the latent rank) by how they vary, not by a scale training drifted to.
        self.to_grid = nn.Sequential(nn.Conv2d(widths[-1], self.latent_channels, 3, padding=1, bias=False),
                                     nn.BatchNorm2d(self.latent_channels, affine=False))
        self.to_attribute = nn.Sequential(Pool(), nn.Linear(2 * widths[-1], attribute)) if attribute else None
        rev = widths[::-1]
        self.from_grid = nn.Sequential(nn.Conv2d(self.latent_channels, rev[0], 3, padding=1, bias=False),
                                       nn.BatchNorm2d(rev[0]), nn.LeakyReLU(0.2, inplace=True))
        blocks = []
        for level, (a, b) in enumerate(zip(rev[:-1], rev[1:])):  # the first `residual_levels` get a residual block
            last = level == len(rev) - 2
            upsample = nn.ConvTranspose2d(a, b, 4, stride=2, padding=1) if last else up(a, b, decoder_dropout)
            blocks.append(nn.Sequential(*([Residual(a)] if level < residual_levels else []), upsample))
        self.blocks = nn.ModuleList(blocks)
        self.film = nn.ModuleList([Film(attribute, a) for a in rev[:-1]]) if attribute else None
        self.classifier = Classifier(self.latent_channels, attribute, hidden, n_classes, dropout) if n_classes else None

    def split(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """A latent's attribute code (N, attribute) and content grid (N, channels, grid, grid)."""
        code, grid = z[:, : self.attribute], z[:, self.attribute :]
        return code, grid.reshape(len(z), self.latent_channels, self.grid, self.grid)

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encode_with_logits(x)[0]

    def encode_with_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The latent, and the slots' logits (N, slots): each slot holds its attribute's probability."""
        features = self.encoder(x)
        grid = self.to_grid(features).flatten(1)
        if self.to_attribute is None:
            return grid, grid[:, :0]
        code = self.to_attribute(features)
        logits = code[:, : self.slots]
        return torch.cat([torch.sigmoid(logits), code[:, self.slots :], grid], 1), logits

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        code, grid = self.split(z)
        h = self.from_grid(grid)
        for level, block in enumerate(self.blocks):
            h = block(h if self.film is None else self.film[level](h, code))
        return torch.sigmoid(h)

    def classify(self, z: torch.Tensor) -> torch.Tensor:
        """The aux classifier's logits, from the content grid and the attribute code."""
        return self.classifier(self.split(z)[1], self.split(z)[0])

    def forward(self, x: torch.Tensor):
        z = self.encode(x)
        return self.decode(z), (self.classify(z) if self.classifier is not None else None)


class Reference(nn.Module):
    """The assignment's public solutions' plain strided autoencoder, trained beside ours as the
    yardstick: conv 3-16-32-64-C (3x3, stride 2, ReLU) and its transpose; a 4x4xC latent at 64 px."""

    def __init__(self, latent: int, size: int = 64, in_channels: int = 3):
        super().__init__()
        self.config = dict(architecture="reference", latent=latent, size=size, in_channels=in_channels)
        self.side = size // 16
        self.latent_channels = latent // self.side**2
        widths = [in_channels, 16, 32, 64, self.latent_channels]
        self.encoder = nn.Sequential(
            *[m for a, b in zip(widths, widths[1:]) for m in (nn.Conv2d(a, b, 3, 2, 1), nn.ReLU())]
        )
        rev = widths[::-1]
        layers = [
            m
            for a, b in zip(rev[:-1], rev[1:])
            for m in (nn.ConvTranspose2d(a, b, 3, 2, 1, output_padding=1), nn.ReLU())
        ]
        self.decoder = nn.Sequential(*layers[:-1], nn.Sigmoid())
        self.classifier = None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).flatten(1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z.view(len(z), self.latent_channels, self.side, self.side))

    def forward(self, x: torch.Tensor):
        return self.decode(self.encode(x)), None


class AttributeNet(nn.Module):
    """A small convolutional classifier: one logit per attribute (several may hold at once). It
    looks at 32 px at most: a skin tone, a set's line work or cat ears are plain at that size, and
    it trains in seconds on a CPU."""

    def __init__(self, channels: int, attributes: list[str], width: int = 16):
        super().__init__()
        self.attributes = list(attributes)
        self.features = nn.Sequential(
            nn.Conv2d(channels, width, 3, 2, 1), nn.ReLU(), nn.Conv2d(width, 2 * width, 3, 2, 1), nn.ReLU(),
            nn.Conv2d(2 * width, 4 * width, 3, 2, 1), nn.ReLU(), nn.Conv2d(4 * width, 4 * width, 3, 1, 1), nn.ReLU())
        self.head = nn.Linear(8 * width, len(attributes))

    def forward(self, x):
        if x.shape[-1] > 32:
            x = F.adaptive_avg_pool2d(x, 32)
        h = self.features(x)
        return self.head(torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1))  # where an attribute is and how strongly


def build_autoencoder(params, size: int, in_channels: int, classifier: bool, latent: int | None = None,
                      slots: list[str] = ()) -> Autoencoder:
    """The model params.yaml describes, with the aux classifier head or without, and `slots`: the
    attributes that the code's first values hold, one each (emoji_ae/attributes.py)."""
    head = (
        dict(n_classes=len(params.data.classes), hidden=params.aux.hidden, dropout=params.aux.dropout)
        if classifier
        else {}
    )
    shape = params.shape if latent is None else params.model_copy(update={"latent": latent}).shape
    return Autoencoder(size, params.model.channels, latent or params.latent, in_channels, grid=shape.grid,
                       attribute=shape.attribute, decoder_dropout=params.model.decoder_dropout,
                       residual_levels=params.model.residual_levels, slots=slots, **head).to(device())


def shape_of(model) -> dict:
    """How a model lays out its latent: the attribute code (and how many of its values are slots),
    then the content grid, side x side x channels."""
    return {"latent": model.config["latent"], "attribute": model.attribute, "slots": model.slots,
            "grid": model.grid, "channels": model.latent_channels}


def describe_shape(model) -> str:
    """One line: the latent's values, its attribute code (and slots) and its content grid."""
    shape = shape_of(model)
    slots = f", {shape['slots']} of them attribute slots" if shape["slots"] else ""
    return (f"latent {shape['latent']} = attribute code {shape['attribute']}{slots} + content grid "
            f"{shape['grid']}x{shape['grid']}x{shape['channels']}")


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
    except (KeyError, TypeError, ValueError, RuntimeError) as e:
        raise broken(path, f"not a model of this code: {short_reason(e)}") from None
    return model.to(device()).eval()
