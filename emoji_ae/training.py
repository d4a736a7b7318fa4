"""The training loop and the per-batch augmentation it applies: pasting, mirroring, warping."""

import math
import sys

import torch
import torch.nn.functional as F
from tqdm import tqdm

from emoji_ae.attributes import Teachers, label_matrix, vocabulary
from emoji_ae.config import PipelineError
from emoji_ae.metrics import evaluate
from emoji_ae.model import batches, bf16_is_native


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
        print(
            "warning: train.precision is bf16, but bfloat16 is emulated here (no AMX or AVX512_BF16, or the kernel "
            "pins cap oneDNN at AVX2), so training runs many times slower than with fp32; see docs/reproducibility.md",
            file=sys.stderr,
        )


def fit(model, train, val, params, live=NoLog(), analogies=None) -> None:
    """Train with AdamW and a one-cycle schedule as params' `train` says, seeded with `seed`;
    log train and val metrics per epoch to `live` (DVCLive in the pipeline).

    `train` and `val` are (images, labels) tensors held in memory: each step is pure PyTorch.
    A model with a classifier adds `aux.lambda` x cross-entropy to the loss; with `aux.ramp`
    that weight grows linearly from 0 over training, so the encoder first learns to reconstruct
    and the classes are then separated within that code. With `analogies` (TrainingAnalogies), each
    step draws `train.pairs` analogies from the training families: with `train.analogy` it pays that
    weight x the MSE of decode(z(a) - z(b) + z(c)) to d, and params' `attribute` teachers
    (emoji_ae/attributes.py) teach the attribute code on their drawings.
    """
    cfg = params.train
    (x, y), (vx, vy) = train, val
    teachers = attribute_teachers(model, analogies, params)
    trained = [*model.parameters(), *(teachers.heads.parameters() if teachers is not None and teachers.heads else [])]
    optimizer = torch.optim.AdamW(trained, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = math.ceil(len(x) / cfg.batch_size)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=cfg.lr, epochs=cfg.epochs, steps_per_epoch=steps)
    generator = torch.Generator().manual_seed(params.seed)
    warn_if_bf16_is_emulated(cfg)
    progress = tqdm(range(1, cfg.epochs + 1), desc="train", unit="epoch")
    for epoch in progress:
        model.train()
        sums = {}
        for index in batches(len(x), cfg.batch_size, generator):
            step(model, optimizer, schedule, x[index], y[index], params, generator, sums, epoch, analogies, teachers)
        metrics = {f"train/{k}": v / len(x) for k, v in sums.items()}
        metrics.update({f"val/{k}": v for k, v in evaluate(model, vx, vy).items()})
        for name, value in metrics.items():
            live.log_metric(name, value)
        live.next_step()
        progress.set_postfix({k: f"{v:.4g}" for k, v in metrics.items()})


def attribute_teachers(model, analogies, params) -> Teachers | None:
    """params' `attribute` teachers for this model on the training analogies' drawings; None when
    there are no analogies, or every weight is 0 and the model has no attribute slots."""
    cfg = params.attribute
    weights = (cfg.classify, cfg.adversary, cfg.invariance, cfg.swap, cfg.reader)
    if analogies is None or not (model.slots or any(weights)):
        return None
    found = analogies.found if cfg.words else None
    attributes = model.slot_names or vocabulary(analogies.keys, analogies.variants, found)
    if not attributes:
        return None
    labels = label_matrix(analogies.keys, attributes, analogies.variants)
    teachers = Teachers(
        cfg, attributes, labels, model.latent_channels, model.attribute, analogies.images.shape[1], params.seed,
        model.slots,
    )
    return teachers.to(next(model.parameters()).device)


def forward(
    model, xb: torch.Tensor, quads: tuple | None, analogy: bool, swap: torch.Tensor | None = None,
    labels: torch.Tensor | None = None
) -> tuple[dict, torch.Tensor | None, torch.Tensor, torch.Tensor]:
    """One pass of the encoder over the batch and the analogies' drawings (a, b, c, d), and one of
    the decoder over all it draws: reconstructions, composites decode(z(a) - z(b) + z(c)) and, for
    the pairs that `swap` marks, swaps (a's code on b's grid, d's code on c's grid). BatchNorm then
    normalises, and keeps the running statistics of, one batch, as evaluation will see it. A model
    with attribute slots decodes the analogy drawings with their true `labels` in the slots (teacher
    forcing), and the batch with its predicted slots, detached: reconstruction never teaches the
    slots, only their labels do.
    Returns {what: images}, the aux logits, the analogy drawings' latents and their slots' logits."""
    z, slot_logits = model.encode_with_logits(xb if quads is None else torch.cat([xb, *quads]))
    own, drawn = z[: len(xb)], z[len(xb) :]
    k = model.slots
    if k:
        own = torch.cat([own[:, :k].detach(), own[:, k:]], 1)
        if labels is not None:
            drawn = torch.cat([labels.to(drawn.dtype), drawn[:, k:]], 1)
    latents = {"recon": own}
    if quads is not None:
        za, zb, zc, zd = drawn.chunk(4)
        if analogy:
            latents["analogy"] = za - zb + zc
        if swap is not None and swap.any():
            cut = k or model.attribute  # slots swap alone: the labels must draw the change
            latents["swap"] = torch.cat(
                [torch.cat([za[swap, :cut], zb[swap, cut:]], 1), torch.cat([zd[swap, :cut], zc[swap, cut:]], 1)]
            )
    images = model.decode(torch.cat(list(latents.values()))).split([len(v) for v in latents.values()])
    logits = model.classify(own) if model.classifier is not None else None
    return dict(zip(latents, images)), logits, drawn, slot_logits[len(xb) :]


def step(
    model, optimizer, schedule, xb, yb, params, generator, sums: dict, epoch: int, analogies=None, teachers=None
) -> None:
    """One optimiser step on a batch (and one of the teachers' own nets); adds each loss term, summed
    over the batch, to `sums`."""
    cfg, dev = params.train, next(model.parameters()).device
    yb = yb.to(dev)
    xb = augment_batch(xb.to(dev), yb, cfg, generator)
    index = analogies.sample(cfg.pairs, generator) if analogies is not None and (cfg.analogy or teachers) else None
    quads = None if index is None else tuple(analogies.images[i].to(dev) for i in index.T)
    labels = None if teachers is None else teachers.labels[index.T.flatten()].to(dev)
    swap = teachers.swapped(labels) if teachers is not None and teachers.swaps else None
    with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=cfg.precision == "bf16"):
        decoded, logits, drawn, slot_logits = forward(model, xb, quads, bool(cfg.analogy), swap, labels)
        terms = {"mse": F.mse_loss(decoded["recon"].float(), xb)}
        loss = terms["mse"]
        if logits is not None:  # the one-cycle schedule counts the steps taken, which the ramp reads
            terms["ce"] = F.cross_entropy(logits.float(), yb)
            ramp = schedule.last_epoch / schedule.total_steps if params.aux.ramp else 1.0
            loss = loss + params.aux.lambda_ * ramp * terms["ce"]
            sums["acc"] = sums.get("acc", 0.0) + (logits.argmax(1) == yb).sum().item()
        if "analogy" in decoded:
            terms["analogy"] = F.mse_loss(decoded["analogy"].float(), quads[3])
            loss = loss + cfg.analogy * terms["analogy"]
        if teachers is not None:
            progress = schedule.last_epoch / schedule.total_steps
            taught = teachers.losses(model, drawn, labels, decoded, quads, slot_logits, progress)
            loss = loss + sum(taught.values())
            terms.update(taught)
    if not torch.isfinite(loss):
        raise PipelineError(
            f"the training loss became {loss.item()} in epoch {epoch}: lower train.lr "
            f"(now {cfg.lr}) or check the data; no model was written"
        )
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    schedule.step()
    if teachers is not None:
        teachers.update(model.split(drawn)[1], torch.cat(quads), labels)
    for name, value in terms.items():
        sums[name] = sums.get(name, 0.0) + value.item() * len(xb)


def pretrain(model, extra: tuple, train: tuple, val: tuple, params, live=NoLog(), analogies=None) -> None:
    """`pretrain.epochs` of fit() on other emoji (data/extra) together with the train split, at
    pretrain's learning rate, pasting and analogy weight; the rest as params' `train` says."""
    own = ("epochs", "lr", "paste", "analogy")
    cfg = params.train.model_copy(update={key: getattr(params.pretrain, key) for key in own})
    if cfg.epochs:
        pooled = (torch.cat([extra[0], train[0]]), torch.cat([extra[1], train[1]]))
        fit(model, pooled, val, params.model_copy(update={"train": cfg}), live, analogies)
