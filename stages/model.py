"""The convolutional autoencoder, its auxiliary classifier, and the loop that trains both."""

import math
import os
import random
import sys

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from stages.config import PipelineError
from stages.data import atomic_path


def seed_everything(seed: int, threads: int) -> None:
    """Same seed and thread count: the same numbers, bit for bit, on CPU (on x86_64, on any CPU
    with AVX2: importing stages pins the kernels, see stages/__init__.py)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True, warn_only=True)
    # Deterministic mode also fills every new tensor with NaN, in case an op reads memory it
    # never wrote. None of ours does (the weights are the same bit for bit without the fill),
    # and the fill was 6% of the operators' time in `python -m stages.profile_train`.
    torch.utils.deterministic.fill_uninitialized_memory = False


def device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def bf16_is_native() -> bool:
    """Whether bfloat16 runs in hardware here: on a GPU that has it, or on a CPU with AMX or
    AVX512_BF16 whose oneDNN is not capped below them (the kernel pins of stages/__init__.py cap it
    at AVX2). Elsewhere oneDNN emulates it: a training step ran 13x slower than in fp32 on an AMD
    EPYC with AVX2 (10 against 134 img/s), 14x with the pins on an Intel Xeon with AMX."""
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
        # feature of the few training emoji, which generalises to unseen ones (see params.yaml).
        nn.Dropout2d(dropout),
    )


class Residual(nn.Module):
    """x plus two 3x3 convolutions of x: decoder depth where it is cheap, at coarse resolutions
    (model.residual_levels in params.yaml says where it helped and where it did not)."""

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
    which is what latent arithmetic needs (see params.yaml, model.grid)."""
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
                 decoder_dropout: float = 0.0, residual_levels: int = 0):
        super().__init__()
        self.config = dict(size=size, channels=list(channels), latent=latent, in_channels=in_channels,
                           n_classes=n_classes, hidden=hidden, dropout=dropout, grid=grid,
                           decoder_dropout=decoder_dropout, residual_levels=residual_levels)
        self.grid = latent_grid(size, latent, grid)
        self.latent_channels = latent // self.grid**2
        levels = (size // self.grid).bit_length() - 1
        # channels[i] is the width after i + 1 halvings; deeper levels keep the last width.
        widths = [in_channels, *[channels[min(i, len(channels) - 1)] for i in range(levels)]]
        self.encoder = nn.Sequential(
            *[down(a, b) for a, b in zip(widths[:-1], widths[1:])],
            nn.Conv2d(widths[-1], self.latent_channels, 3, padding=1),
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
        # The auxiliary task reads the latent only, so it shapes what the latent encodes. Small
        # convolutions and a global max-pool look for shapes (ears, whiskers) wherever they are;
        # in development this generalised to unseen emoji far better than an MLP on the vector.
        self.classifier = nn.Sequential(
            nn.Unflatten(1, (self.latent_channels, self.grid, self.grid)),
            nn.Conv2d(self.latent_channels, hidden // 2, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(hidden // 2, hidden, 3, padding=1), nn.ReLU(inplace=True),
            nn.AdaptiveMaxPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(hidden, n_classes),
        ) if n_classes else None

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x).flatten(1)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        return self.decoder(z.view(len(z), self.latent_channels, self.grid, self.grid))

    def forward(self, x: torch.Tensor):
        z = self.encode(x)
        logits = self.classifier(z) if self.classifier is not None else None
        return self.decode(z), logits


def build_autoencoder(params, size: int, in_channels: int, classifier: bool, latent: int | None = None) -> Autoencoder:
    """The model params.yaml describes, with the aux classifier head or without."""
    head = dict(n_classes=len(params.data.classes), hidden=params.aux.hidden, dropout=params.aux.dropout) if classifier else {}
    return Autoencoder(size, params.model.channels, latent or params.latent, in_channels, grid=params.model.grid,
                       decoder_dropout=params.model.decoder_dropout, residual_levels=params.model.residual_levels, **head).to(device())


def batches(n: int, batch_size: int, generator=None):
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return [order[i : i + batch_size] for i in range(0, n, batch_size)]


@torch.no_grad()
def class_probabilities(model, x: torch.Tensor, z: torch.Tensor | None = None) -> torch.Tensor:
    """The classifier's probabilities, averaged over each image and its mirror image.

    The classes do not change under a mirror (training flips half the images), so the mirror
    is a second look at the same emoji; in development the average was right more often on
    validation (+0.5 to +1.5 points in four of four runs). It reads the encoder's latent (`z`
    when already computed), which is what the classifier was trained on.
    """
    dev = next(model.parameters()).device
    looks = [encode_all(model, x) if z is None else z, encode_all(model, x.flip(-1))]
    return torch.stack([model.classifier(look.to(dev)).softmax(1).cpu() for look in looks]).mean(0)


def evaluate(model, x, y=None, refine=None) -> dict:
    """Mean per-pixel MSE (and cross-entropy and accuracy when labelled) over a split.

    The reconstruction decodes the refined latent when `refine` (params' refine section) is
    given; the classifier's figures come from class_probabilities.
    """
    z = encode_all(model, x)
    recon = decode_all(model, encode_all(model, x, refine) if refine is not None and refine.steps else z)
    result = {"mse": F.mse_loss(recon, x).item()}
    if model.classifier is not None and y is not None:
        probabilities = class_probabilities(model, x, z)
        result.update(ce=F.nll_loss(probabilities.log(), y).item(), acc=(probabilities.argmax(1) == y).float().mean().item())
    return result


def paste_patches(x: torch.Tensor, y: torch.Tensor, probability: float, generator) -> torch.Tensor:
    """With `probability` per image, paste a random square (a quarter to half of the side)
    from another image of the batch with the same label, at the same place.

    New combinations of parts (the eyes of one emoji, the ears of another) with the label still
    right: with few distinct training emoji, this helped the decoder generalise at small
    latents (see params.yaml). Whole-batch tensor operations, no per-image Python.
    """
    if not probability:
        return x
    n, _, h, w = x.shape
    partner = torch.arange(n)
    for label in y.unique():
        members = (y == label).nonzero().flatten().cpu()
        partner[members] = members[torch.randperm(len(members), generator=generator)]
    side = torch.randint(h // 4, h // 2 + 1, (n,), generator=generator)
    top = (torch.rand(n, generator=generator) * (h - side + 1)).long()
    left = (torch.rand(n, generator=generator) * (w - side + 1)).long()
    rows, cols = torch.arange(h), torch.arange(w)
    inside = (((rows >= top[:, None]) & (rows < (top + side)[:, None]))[:, :, None]
              & ((cols >= left[:, None]) & (cols < (left + side)[:, None]))[:, None, :])
    pasted = inside & (torch.rand(n, generator=generator) < probability)[:, None, None]
    return torch.where(pasted[:, None].to(x.device), x[partner.to(x.device)], x)


class NoLog:
    """fit() logs to DVCLive in the pipeline; the benchmark and aux_cv keep only final numbers."""

    def log_metric(self, name, value):
        pass

    def next_step(self):
        pass


def fit(model, train, val, cfg, live, aux_lambda: float = 0.0, seed: int = 0, aux_ramp: bool = False) -> None:
    """Train with AdamW and a one-cycle schedule; log train and val metrics per epoch to DVCLive.

    `train` and `val` are (images, labels) tensors held in memory: each step is pure PyTorch.
    With `aux_ramp`, the cross-entropy's weight grows linearly from 0 to `aux_lambda` over
    training: the encoder first learns to reconstruct, and the classes are then separated within
    that code, which in cross-validation cost a third as much MSE for the same accuracy.
    """
    dev = next(model.parameters()).device
    (x, y), (vx, vy) = train, val
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = math.ceil(len(x) / cfg.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=steps)
    generator = torch.Generator().manual_seed(seed)
    use_aux = model.classifier is not None
    if cfg.precision == "bf16" and not bf16_is_native():
        print("warning: train.precision is bf16, but bfloat16 is emulated here (no AMX or AVX512_BF16, or the kernel "
              "pins cap oneDNN at AVX2), so training runs about 13x slower than with fp32; see the README", file=sys.stderr)
    progress = tqdm(range(1, cfg.epochs + 1), desc="train", unit="epoch")
    for epoch in progress:
        model.train()
        sums = {"mse": 0.0, "ce": 0.0, "acc": 0.0}
        for index in batches(len(x), cfg.batch_size, generator):
            yb = y[index].to(dev)
            xb = paste_patches(x[index].to(dev), yb, cfg.paste, generator)
            xb = warp(mirror(xb, cfg.flip, generator), cfg.rotate, cfg.shift, cfg.zoom, generator)
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
                recon, logits = model(xb)
            mse = F.mse_loss(recon.float(), xb)
            loss = mse
            if use_aux:  # the one-cycle schedule counts the steps taken, which the ramp reads
                ce = F.cross_entropy(logits.float(), yb)
                loss = mse + aux_lambda * (schedule.last_epoch / schedule.total_steps if aux_ramp else 1.0) * ce
                sums["ce"] += ce.item() * len(index)
                sums["acc"] += (logits.argmax(1) == yb).sum().item()
            if not torch.isfinite(loss):
                raise PipelineError(
                    f"the training loss became {loss.item()} in epoch {epoch}: lower train.lr "
                    f"(now {cfg.lr}) or check the data; no model was written"
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            sums["mse"] += mse.item() * len(index)
        metrics = {f"train/{k}": v / len(x) for k, v in sums.items() if use_aux or k == "mse"}
        metrics.update({f"val/{k}": v for k, v in evaluate(model, vx, vy).items()})
        for name, value in metrics.items():
            live.log_metric(name, value)
        live.next_step()
        progress.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()})


def mirror(x: torch.Tensor, probability: float, generator) -> torch.Tensor:
    """Each image mirrored with `probability`: every epoch sees new views of the few training
    emoji (their mirrors are emoji too), which helped at small latents (see params.yaml)."""
    if not probability:
        return x
    flipped = (torch.rand(len(x), generator=generator) < probability)[:, None, None, None]
    return torch.where(flipped.to(x.device), x.flip(-1), x)


def warp(x: torch.Tensor, rotate: float, shift: float, zoom: float, generator) -> torch.Tensor:
    """Each image turned by up to `rotate` degrees, shifted by up to `shift` of its side and
    zoomed by up to 1 +/- `zoom`, anew each time it is drawn. The augment stage's copies are
    fixed; these views never repeat, which lowered validation MSE at latent 128 (see the
    benchmark). One affine grid for the whole batch: no per-image Python. The border pixels
    (white background) fill what comes into view."""
    if not (rotate or shift or zoom):
        return x
    n = len(x)
    angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(rotate)
    factor = 1 + (torch.rand(n, generator=generator) * 2 - 1) * zoom
    offset = (torch.rand(n, 2, generator=generator) * 2 - 1) * shift * 2  # grid coordinates span 2
    cos, sin = angle.cos() / factor, angle.sin() / factor
    theta = torch.stack([torch.stack([cos, -sin, offset[:, 0]], 1), torch.stack([sin, cos, offset[:, 1]], 1)], 1)
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="border", align_corners=False)


def refine_latents(model, x: torch.Tensor, z: torch.Tensor, steps: int, lr: float) -> torch.Tensor:
    """`steps` of Adam on the latents z alone, to lower the decoder's error on x.

    An encoder trained on few distinct emoji guesses a code for an unseen one that the
    decoder can beat: in development, refining cut validation MSE by about a third. The model
    stays fixed and the decoder still receives only the latent.
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


def save_torch(obj, path) -> None:
    """torch.save, atomically. Through a file object, because torch names the archive inside
    after the file, and the temporary name would make equal models differ byte for byte."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def save_model(model, path) -> None:
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    save_torch({"config": model.config, "state_dict": state}, path)


def load_model(path) -> Autoencoder:
    """Rebuild a saved model; weights_only=True, so a model file can never run code."""
    try:
        saved = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise PipelineError(f"{path} is missing: run the training stages first (dvc repro)") from None
    model = Autoencoder(**saved["config"])
    model.load_state_dict(saved["state_dict"])
    return model.to(device()).eval()
