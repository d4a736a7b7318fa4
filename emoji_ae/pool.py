"""The drawings that latent arithmetic is judged on, their analogy families, and the held-out rule.

Two pools, each a dict of drawings keyed (source, name), with the split of each:

- **subset**: the prepared subset's originals (every split) and the other sets' drawings of the
  same emoji (data/extra/styles.parquet): the assignment's part 3. Its plain names stand for the
  drawing of the source listed first in `data.source`.
- **every glyph**: the subset pool and every other glyph of the sets: the pretraining glyphs (split
  "train", inputs only, never a target) and the held-out ones (val, test): thousands of analogies of
  every kind, the headline.

**The held-out rule.** An analogy belongs to the split of its target's base emoji (a name with its
skin tones and genders deleted, `data.variants`). Those whose target is a test emoji are held out:
no model trains on their targets, nor on another set's drawing of them, nor on a variant of them
(the extra stage keeps those out of pretraining), and designs are chosen on the validation ones only.

An `AnalogySet` is a pool, its families (emoji_ae/analogies.py) and the analogies drawn from them; it
scores a model's latents on them, with the judge (emoji_ae/judge.py). The compose stage and the
benchmark pipeline both score through it.
"""

from dataclasses import dataclass

import pandas as pd
import torch

from emoji_ae import analogies as A
from emoji_ae import judge as J
from emoji_ae.data import SPLITS, split_tensors
from emoji_ae.files import read_split
from emoji_ae.model import decode_all, encode_all
from emoji_ae.paths import EXTRA, PREPARED, split_file


@dataclass
class Pool:
    pixels: dict  # {(source, name): (C, H, W) image in [0, 1]}
    split_of: dict  # {(source, name): "train", "val" or "test"}
    targets: set  # the keys that may be an analogy's target
    named: dict  # {name: key}: the drawing each of the subset's plain names stands for


def drawings(frame: pd.DataFrame, splits) -> tuple[dict, dict]:
    """{(source, name): image} and {(source, name): split} of a split file's records."""
    keys = list(zip(frame["source"], frame["text"]))
    if not keys:  # a small set may hold out none of its glyphs, or draw none of the subset's emoji
        return {}, {}
    return dict(zip(keys, split_tensors(frame))), dict(zip(keys, splits))


def subset_originals(sources: list[str]) -> Pool:
    """The subset's originals of every split; a plain name stands for the drawing of the first of
    `sources` (data.source) that has it."""
    pixels, split_of = {}, {}
    for split in SPLITS:
        frame = read_split(split_file(PREPARED, split))
        images, where = drawings(frame, [split] * len(frame))
        pixels, split_of = {**images, **pixels}, {**where, **split_of}
    rank = {source: i for i, source in enumerate(sources)}
    named = {}
    for key in sorted(pixels, key=lambda key: rank.get(key[0], len(rank))):
        named.setdefault(key[1], key)
    return Pool(pixels, split_of, set(pixels), named)


def subset_pool(originals: Pool) -> Pool:
    """The subset's originals and the other sets' drawings of its emoji (data/extra/styles.parquet)."""
    frame = read_split(EXTRA / "styles.parquet", empty_ok=True)
    images, where = drawings(frame, frame["split"])
    return Pool(
        {**images, **originals.pixels},
        {**where, **originals.split_of},
        set(images) | originals.targets,
        originals.named,
    )


def every_glyph_pool(subset: Pool) -> Pool:
    """The subset pool with every other glyph of the sets: the pretraining glyphs (train, inputs
    only, their mirror images left out) and the held-out ones (val, test)."""
    frame = read_split(EXTRA / "pretrain.parquet")
    frame = frame[~frame["augmented"]].reset_index(drop=True)
    learn, learn_split = drawings(frame, ["train"] * len(frame))
    frame = read_split(EXTRA / "held_out.parquet", empty_ok=True)
    held, held_split = drawings(frame, frame["split"])
    return Pool({**learn, **held, **subset.pixels}, {**learn_split, **held_split, **subset.split_of},
                set(held) | subset.targets, subset.named)


def encode_drawings(model, pool: Pool) -> tuple[dict, dict, dict]:
    """Each drawing's latent, and the model's one-pass reconstruction of each target and its MSE
    (only a target's is read; the pretraining glyphs, most of the pool, are inputs only)."""
    keys = list(pool.pixels)
    latents = dict(zip(keys, encode_all(model, torch.stack([pool.pixels[k] for k in keys]))))
    scored = [k for k in keys if k in pool.targets]
    images = torch.stack([pool.pixels[k] for k in scored])
    decoded = decode_all(model, torch.stack([latents[k] for k in scored]))
    errors = ((decoded - images) ** 2).flatten(1).mean(1)
    return latents, dict(zip(scored, errors.tolist())), dict(zip(scored, decoded))


class AnalogySet:
    """A pool's families and the analogies drawn from them: every target's family mean, and
    `singles` single-pair analogies per target and family."""

    def __init__(self, pool: Pool, variants: list[str], singles: int, targets=None):
        self.pixels, self.found = pool.pixels, A.families(pool.pixels, variants)
        targets = pool.targets if targets is None else targets
        self.family_items = A.analogies(self.found, pool.split_of, per_target=1, targets=targets)
        self.single_items = A.analogies(self.found, pool.split_of, per_target=singles, targets=targets)
        self.pixel_sums = A.family_sums(pool.pixels, self.found)

    def counts(self) -> dict:
        return {"n_families": len({i["family"] for i in self.family_items}),
                "n_analogies": {split: {kind: sum(i["split"] == split and i["kind"] == kind for i in self.family_items)
                                        for kind in A.KINDS} for split in SPLITS}}

    def score(self, model, latents: dict, recon_mse: dict, judge: J.Judge, reconstructions=None) -> tuple[dict, list]:
        """Every analogy scored with this model's latents (of at least the pool's keys); the family
        mean's also by the judge of this pool. `reconstructions`: the targets' decoded latents, when
        already at hand (encode_drawings)."""
        latents = {key: latents[key] for key in self.pixels}
        sums = (A.family_sums(latents, self.found), self.pixel_sums)
        judge.forget_reconstructions()  # the judge's reconstructions were another model's
        rows = []
        for method, items in (("family_mean", self.family_items), ("single", self.single_items)):
            for start in range(0, len(items), 512):  # chunks, so composites never fill memory
                rows += A.score(
                    items[start : start + 512],
                    method,
                    lambda z: decode_all(model, z),
                    latents,
                    self.pixels,
                    recon_mse,
                    sums,
                    judge if method == "family_mean" else None,
                    reconstructions,
                )
        summary = A.summary_by_split(rows)
        for split, judged in J.by_split(rows).items():
            summary[split] = {"judge": judged, **summary[split]}  # first: the figures a person would go by
        return summary, rows
