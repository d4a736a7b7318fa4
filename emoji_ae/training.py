"""The training loop and the per-batch augmentation it applies: pasting, mirroring, warping."""

import math
import random
import sys

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from emoji_ae.config import PipelineError
from emoji_ae.metrics import evaluate
from emoji_ae.model import batches, bf16_is_native


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


def paste_patches(x: torch.Tensor, y: torch.Tensor, probability: float, generator) -> torch.Tensor:
    """With `probability` per image, paste a random square (a quarter to half of the side)
    from another image of the batch with the same label, at the same place.

    New combinations of parts (the eyes of one emoji, the ears of another) with the label still
    right, for a model that sees few distinct emoji. Whole-batch tensor operations.
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


def mirror(x: torch.Tensor, probability: float, generator) -> torch.Tensor:
    """Each image mirrored with `probability`: new views of the few training emoji (their
    mirrors are emoji too)."""
    if not probability:
        return x
    flipped = (torch.rand(len(x), generator=generator) < probability)[:, None, None, None]
    return torch.where(flipped.to(x.device), x.flip(-1), x)


def warp(x: torch.Tensor, rotate: float, shift: float, zoom: float, generator) -> torch.Tensor:
    """Each image turned by up to `rotate` degrees, shifted by up to `shift` of its side and
    zoomed by up to 1 +/- `zoom`, anew each time it is drawn: unlike the augment stage's fixed
    copies, these views never repeat. One affine grid for the whole batch; the border pixels
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


def augment_batch(x: torch.Tensor, y: torch.Tensor, cfg, generator) -> torch.Tensor:
    """train.paste, train.flip and train.rotate/shift/zoom, in that order, on one batch."""
    x = paste_patches(x, y, cfg.paste, generator)
    return warp(mirror(x, cfg.flip, generator), cfg.rotate, cfg.shift, cfg.zoom, generator)


class NoLog:
    """fit() logs to DVCLive in the pipeline; the tools keep only final numbers."""

    def log_metric(self, name, value):
        pass

    def next_step(self):
        pass


def warn_if_bf16_is_emulated(cfg) -> None:
    if cfg.precision == "bf16" and not bf16_is_native():
        print("warning: train.precision is bf16, but bfloat16 is emulated here (no AMX or AVX512_BF16, or the kernel "
              "pins cap oneDNN at AVX2), so training runs many times slower than with fp32; see docs/reproducibility.md",
              file=sys.stderr)


def fit(model, train, val, params, live=NoLog(), analogies=None, adversaries=None) -> None:
    """Train with AdamW and a one-cycle schedule as params' `train` says, seeded with `seed`;
    log train and val metrics per epoch to `live` (DVCLive in the pipeline).

    `train` and `val` are (images, labels) tensors held in memory: each step is pure PyTorch.
    A model with a classifier adds `aux.lambda` x cross-entropy to the loss; with `aux.ramp`
    that weight grows linearly from 0 over training, so the encoder first learns to reconstruct
    and the classes are then separated within that code. With `train.analogy` and `analogies`
    (drawings, TrainingAnalogies), each step also pays that weight x the MSE of decode(z(a) - z(b)
    + z(c)) to d, on analogies drawn from the training families. With `adversaries`
    (emoji_ae.critic), it also pays for the images their critics tell apart, and they learn each step.
    """
    cfg = params.train
    (x, y), (vx, vy) = train, val
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = math.ceil(len(x) / cfg.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=steps)
    generator = torch.Generator().manual_seed(params.seed)
    warn_if_bf16_is_emulated(cfg)
    progress = tqdm(range(1, cfg.epochs + 1), desc="train", unit="epoch")
    for epoch in progress:
        model.train()
        sums = {"mse": 0.0, "ce": 0.0, "acc": 0.0, "analogy": 0.0, "composite": 0.0, "patch": 0.0}
        for index in batches(len(x), cfg.batch_size, generator):
            step(model, optimizer, schedule, x[index], y[index], params, generator, sums, epoch, analogies, adversaries)
        kept = ("mse", "ce", "acc") if model.classifier is not None else ("mse",)
        kept += ("analogy",) if analogies is not None and params.train.analogy else ()
        kept += tuple(adversaries.critics) if adversaries else ()
        metrics = {f"train/{k}": v / len(x) for k, v in sums.items() if k in kept}
        metrics.update({f"val/{k}": v for k, v in evaluate(model, vx, vy).items()})
        for name, value in metrics.items():
            live.log_metric(name, value)
        live.next_step()
        progress.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()})


def draw_analogies(analogies, n: int, generator, dev) -> tuple[torch.Tensor, ...]:
    """n training analogies' drawings a, b, c and d (a - b + c should give d)."""
    images, found = analogies
    return tuple(images[i].to(dev) for i in found.sample(n, generator).T)


@torch.no_grad()
def analogy_loss(model, analogies, n: int, generator) -> torch.Tensor:
    """MSE of decode(z(a) - z(b) + z(c)) to d over n analogies drawn from the training families,
    with the model as it is (evaluation mode)."""
    a, b, c, d = draw_analogies(analogies, n, generator, next(model.parameters()).device)
    za, zb, zc = model.encode(torch.cat([a, b, c])).chunk(3)
    return F.mse_loss(model.decode(za - zb + zc), d)


def step(model, optimizer, schedule, xb, yb, params, generator, sums: dict, epoch: int, analogies=None, adversaries=None) -> None:
    """One optimiser step on a batch (and one of each critic); adds its summed MSE (and cross-entropy,
    hits, analogy and critics' losses) to `sums`."""
    cfg, dev = params.train, next(model.parameters()).device
    yb = yb.to(dev)
    xb = augment_batch(xb.to(dev), yb, cfg, generator)
    # Analogies ride in the batch's own forward pass (Autoencoder.forward): latent arithmetic is
    # trained, not hoped for.
    analogy = draw_analogies(analogies, max(1, len(xb) // 2), generator, dev) if analogies is not None and cfg.analogy else None
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
        recon, logits, *composites = model(xb, analogy[:3]) if analogy else model(xb)
    mse = F.mse_loss(recon.float(), xb)
    loss = mse
    if model.classifier is not None:  # the one-cycle schedule counts the steps taken, which the ramp reads
        ce = F.cross_entropy(logits.float(), yb)
        ramp = schedule.last_epoch / schedule.total_steps if params.aux.ramp else 1.0
        loss = mse + params.aux.lambda_ * ramp * ce
        sums["ce"] += ce.item() * len(xb)
        sums["acc"] += (logits.argmax(1) == yb).sum().item()
    if getattr(model, "variational", 0):
        loss = loss + model.variational * model.kl
    if analogy:
        arithmetic = F.mse_loss(composites[0].float(), analogy[3])
        loss = loss + cfg.analogy * arithmetic
        sums["analogy"] += arithmetic.item() * len(xb)
    if adversaries:
        for name, fooled in adversaries.autoencoder_loss(recon.float(), composites[0].float() if analogy else None).items():
            loss = loss + fooled
            sums[name] += fooled.item() * len(xb)
    if not torch.isfinite(loss):
        raise PipelineError(f"the training loss became {loss.item()} in epoch {epoch}: lower train.lr "
                            f"(now {cfg.lr}) or check the data; no model was written")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    schedule.step()
    if adversaries:
        adversaries.update(xb, recon, composites[0] if analogy else None)
    sums["mse"] += mse.item() * len(xb)


def fit_reference(model, x: torch.Tensor, cfg, seed: int) -> None:
    """The reference's published training: Adam on MSE, its own learning rate, weight decay and
    batch size, `cfg.epochs` epochs, no augmentation beyond the augment stage's copies."""
    dev = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(cfg.epochs), desc="reference", unit="epoch"):
        model.train()
        for index in batches(len(x), cfg.batch_size, generator):
            xb = x[index].to(dev)
            loss = F.mse_loss(model(xb)[0], xb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def pretrain(model, extra: tuple, train: tuple, val: tuple, params, live=NoLog(), analogies=None) -> None:
    """`pretrain.epochs` of fit() on other emoji (data/extra) together with the train split, at
    pretrain's learning rate, pasting and analogy weight; the rest as params' `train` says."""
    own = ("epochs", "lr", "paste", "analogy")
    cfg = params.train.model_copy(update={key: getattr(params.pretrain, key) for key in own})
    if cfg.epochs:
        pooled = (torch.cat([extra[0], train[0]]), torch.cat([extra[1], train[1]]))
        fit(model, pooled, val, params.model_copy(update={"train": cfg}), live, analogies)
