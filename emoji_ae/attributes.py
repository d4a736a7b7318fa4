"""The attribute code's teachers: labels that the names give for free, and the losses that put the
attributes in the latent's attribute code and keep them out of its content grid (params' attribute).

Arithmetic lands on the answer only if a difference of codes means the same on every emoji. On a
spatial grid it does not: a skin tone, a set's line work or cat ears are stored where they sit in
one drawing. So the attributes that the names label live in a code of their own, and composition
stays plain arithmetic, z(a) - z(b) + z(c), on the whole latent.

**Labels.** A drawing (source, name) carries an attribute when its set is it ("set twemoji"), a
whole variant of its name is it (a skin tone, a gender word: `data.variants`), or its name holds a
name family's deleted words ("cat"). The vocabulary is every such attribute of the training
drawings that at least LEAST of them carry, and as many lack; held-out emoji add nothing to it.

**Teachers**, each on the drawings of the step's training analogies (a, b, c, d: a - b + c = d;
(a, b) and (d, c) are pairs of one family, the same emoji with the attribute changed):

- *classify*: linear heads read every attribute from the attribute code;
- *adversary*: a small net learns to read them from the content grid, and the encoder pays where it
  can (Fader networks, Lample et al. 2017). Its target is each attribute's base rate, which is what
  a reader that learns nothing from the grid says, so the grid is not pushed toward the opposite
  label, and cannot collapse to win;
- *invariance*: where a pair is one drawing with its skin tone or gender changed, its grids are
  pulled together, and every pair's code arithmetic, code(a) - code(b) + code(c), toward code(d),
  each measured against how far any two grids (codes) of the step lie apart: nearer its pair than
  other drawings. The ratio keeps them apart, where a plain "same grid" penalty collapses them;
- *swap*: the decoder, given a drawing's attribute code and its pair's grid, draws the drawing
  (GZS-Net, Ge et al. 2021; the switch units of Reed et al. 2015);
- *reader*: a classifier trained here on real drawings only reads the intended attributes from the
  decoded swaps and analogy composites (AttGAN, He et al. 2019): an attribute must be visible, not
  merely close in MSE.

The adversary and the reader learn from detached inputs with their own Adam, seeded apart from
training's random stream, so weights of 0 leave training as it was.
"""

import torch
import torch.nn.functional as F
from torch import nn

from emoji_ae.analogies import carries, variant_words
from emoji_ae.model import AttributeNet

LEAST = 5  # an attribute is learned where at least this many training drawings have it, and as many lack it


def vocabulary(keys: list, variants: list[str], found: dict | None = None) -> list[str]:
    """The attributes the training drawings' names label that show everywhere in a drawing: the
    sets and the whole variants (skin tones, genders); with `found` (their families), also the
    words that a name family deletes ("cat", "cook")."""
    candidates = {f"set {source}" for source, _ in keys}
    candidates |= {words for _, name in keys for words in variant_words(name, variants)}
    if found is not None:
        candidates |= {family.split(": ", 1)[1] for family, spec in found.items() if spec["kind"] == "name"}
    counts = {a: sum(carries(key, a, variants) for key in keys) for a in sorted(candidates)}
    return [a for a, n in counts.items() if LEAST <= n <= len(keys) - LEAST]


def slot_names(cfg, attribute: int, analogies) -> list[str]:
    """The attributes that the attribute code's first values hold, one slot each (params'
    `attribute.slots`): the training drawings' vocabulary, sets and whole variants first, as many as
    the code has values. None without slots, without a code, or without training analogies."""
    if not (cfg.slots and attribute and analogies is not None):
        return []
    names = vocabulary(analogies.keys, analogies.variants, analogies.found if cfg.words else None)
    plain = vocabulary(analogies.keys, analogies.variants)
    return ([a for a in names if a in plain] + [a for a in names if a not in plain])[:attribute]


def label_matrix(keys: list, attributes: list[str], variants: list[str]) -> torch.Tensor:
    """(drawings, attributes): 1 where the drawing carries the attribute."""
    return torch.tensor([[carries(k, a, variants) for a in attributes] for k in keys], dtype=torch.float32)


class GridReader(nn.Module):
    """The adversary: two 3x3 convolutions on the content grid, pooled, one logit per attribute."""

    def __init__(self, channels: int, n_attributes: int, width: int = 64):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, width, 3, padding=1), nn.LeakyReLU(0.2),
                                 nn.Conv2d(width, width, 3, padding=1), nn.LeakyReLU(0.2))
        self.head = nn.Linear(2 * width, n_attributes)

    def forward(self, grid: torch.Tensor) -> torch.Tensor:
        h = self.net(grid)
        return self.head(torch.cat([h.mean((2, 3)), h.amax((2, 3))], 1))


def pair_distance(u: torch.Tensor, v: torch.Tensor, grids: torch.Tensor) -> torch.Tensor:
    """The pairs' mean squared grid distance over the mean squared distance between any two grids of
    the step: a drawing's grid is pulled toward its pair's, relative to how far grids lie apart, so
    shrinking every grid (the collapse of a plain "same grid" penalty) gains nothing."""
    pairs = (u - v).flatten(1).pow(2).sum(1).mean()
    flat = grids.flatten(1)
    spread = 2 * flat.var(0, unbiased=False).sum()  # the mean squared distance between two grids of the step
    return pairs / spread.clamp(min=1e-8)


class Teachers(nn.Module):
    """The heads, the adversary and the reader for one training run, and their losses."""

    def __init__(self, cfg, attributes: list[str], labels: torch.Tensor, grid_channels: int, attribute: int,
                 image_channels: int, seed: int, slots: int = 0):
        super().__init__()
        self.cfg, self.labels, self.slots = cfg, labels, slots
        n = labels.shape[1]
        self.register_buffer("prior", labels.mean(0))
        self.register_buffer("sets", torch.tensor([a.startswith("set ") for a in attributes], dtype=torch.bool))
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed + 1)
            self.heads = nn.Linear(attribute, n) if attribute and cfg.classify and not slots else None
            self.adversary = GridReader(grid_channels, n) if cfg.adversary else None
            self.reader = AttributeNet(image_channels, [str(i) for i in range(n)]) if cfg.reader and attribute else None
        self.optimizers = {name: torch.optim.Adam(net.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
                           for name, net in (("adversary", self.adversary), ("reader", self.reader)) if net is not None}
        # Swapped codes need a code to swap; the reader reads them.
        self.swaps = bool(attribute) and bool(cfg.swap or cfg.reader)

    def bce(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        # Unweighted: weighing the few drawings of a rare attribute ("girl") up made them pull the
        # encoder's features, and cost reconstruction (docs/findings.md).
        return F.binary_cross_entropy_with_logits(logits.float(), target)

    def losses(self, model, z: torch.Tensor, labels: torch.Tensor, decoded: dict, quads: tuple,
               slot_logits: torch.Tensor | None = None, progress: float = 1.0) -> dict:
        """{teacher: weighted loss} for the step's analogy drawings (a, b, c, d: z and labels in that
        order, four equal chunks), their decoded swaps and composites, and their images; `slot_logits`,
        the encoder's reading of the slots, and `progress`, the share of training done (the
        adversary's weight ramps up over the first `attribute.ramp` of it)."""
        cfg, out = self.cfg, {}
        code, grid = model.split(z)
        if self.slots and cfg.classify:
            out["classify"] = cfg.classify * self.bce(slot_logits, labels)
        elif self.heads is not None:
            out["classify"] = cfg.classify * self.bce(self.heads(code), labels)
        if self.adversary is not None:
            logits = self.adversary(grid)
            ramp = min(1.0, progress / cfg.ramp) if cfg.ramp else 1.0
            out["adversary"] = ramp * cfg.adversary * F.binary_cross_entropy_with_logits(
                logits.float(), self.prior.expand_as(logits)
            )
        la, lb, _, ld = labels.chunk(4)
        differ, swapped = (la != lb).any(1), self.swapped(labels)
        if cfg.invariance and swapped.any():
            ga, gb, gc, gd = grid.chunk(4)
            sa, sb, sc, sd = code.chunk(4)
            pairs = swapped.repeat(2)
            out["invariance"] = cfg.invariance * (
                pair_distance(torch.cat([ga, gd])[pairs], torch.cat([gb, gc])[pairs], grid)
                + pair_distance((sa - sb + sc)[differ], sd[differ], code)
            )
        if "swap" in decoded and cfg.swap:
            out["swap"] = cfg.swap * F.mse_loss(
                decoded["swap"].float(), torch.cat([quads[0][swapped], quads[3][swapped]])
            )
        if self.reader is not None:
            read = [(decoded["analogy"], ld)] if "analogy" in decoded else []
            if "swap" in decoded:
                read.append((decoded["swap"], torch.cat([la[swapped], ld[swapped]])))
            if read:
                out["reader"] = cfg.reader * sum(self.bce(self.reader(x.float()), y) for x, y in read) / len(read)
        return out

    def swapped(self, labels: torch.Tensor) -> torch.Tensor:
        """Which of the step's pairs (a, b) and (d, c) the swap teacher takes: one drawing of one set with
        its skin tone or gender changed. A style pair's drawings differ in every line, which no code
        can carry (decoding their swaps cost reconstruction and taught nothing, docs/findings.md); a
        name family's pair ("man cook", "man") differs in what is drawn, which the grid must keep."""
        la, lb = labels.chunk(4)[:2]
        return (la != lb).any(1) & ~(la != lb)[:, self.sets].any(1)

    def update(self, grid: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> None:
        """One step of the adversary on the (detached) grids and of the reader on the real drawings."""
        for name, x in (("adversary", grid), ("reader", images)):
            if name in self.optimizers:
                net = getattr(self, name)
                net.zero_grad(set_to_none=True)  # also what the autoencoder's loss left in it
                self.bce(net(x.detach().float()), labels).backward()
                self.optimizers[name].step()
