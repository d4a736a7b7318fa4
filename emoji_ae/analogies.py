"""Analogies with a known answer, and how latent arithmetic is scored on them.

Three kinds, all built from what the data names:

- **name**: where deleting the same words turns several names into other names of one set
  ("crying cat face" -> "crying face", "weary cat face" -> "weary face"), each pair predicts the
  others: z(crying cat face) - z(crying face) + z(weary face) should decode to "weary cat face".
- **variant**: the same, where the deleted words are a skin tone or a gender (`data.variants`):
  z(waving hand dark skin tone) - z(waving hand) + z(thumbs up) should give thumbs up dark skin tone.
- **style**: the same emoji drawn by two sets is a pair, and every such pair predicts the others:
  z(twemoji: X) - z(openmoji: X) + z(openmoji: Y) should decode to Twemoji's Y.

An analogy belongs to the split of its target's base emoji. Those whose target is a test emoji
are the held-out set: no model trains on their targets, and no design or param choice looks at
them (tune on the validation ones). The *family mean* averages the attribute over every other pair
of the family (the family's sum less the target's own pair), so its composite depends only on the
target: it is scored once per target. The *single* pair is scored for a few pairs per target.
"""

import functools
import re
import sys
from itertools import islice

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from emoji_ae.data import split_tensors

METHODS = ("single", "family_mean")
KINDS = ("name", "variant", "style")


def name_families(names: list[str], variants: list[str] = ()) -> dict[str, list[tuple[str, str]]]:
    """Families of (with, without) name pairs that differ by the same 1-3 deleted words. With
    `variants`, a pair counts only where the deleted words are a whole variant (a skin tone, a
    gender) or leave the variants of the name as they were: "medium" out of "medium dark skin tone"
    is no attribute."""
    known = set(names)
    families: dict[str, list[tuple[str, str]]] = {}
    for name in names:
        words = name.split()
        for length in (1, 2, 3):
            for start in range(len(words) - length + 1):
                rest = " ".join(words[:start] + words[start + length :])
                deleted = " ".join(words[start : start + length])
                if rest in known and rest != name and (kind_of(deleted, variants) == "variant" or
                                                       variant_words(name, variants) == variant_words(rest, variants)):
                    families.setdefault(deleted, []).append((name, rest))
    return {k: sorted(set(v)) for k, v in sorted(families.items()) if len(set(v)) >= 2}


def variant_words(name: str, variants: list[str]) -> list[str]:
    return list(_variant_words(name, tuple(variants)))


@functools.lru_cache(maxsize=65536)  # names and attributes repeat by the thousand: labels ask each pair once
def _variant_words(name: str, variants: tuple) -> tuple:
    return tuple(match.group(0) for pattern in variants for match in re.finditer(pattern, name))


def kind_of(words: str, variants: list[str]) -> str:
    """"variant" when the deleted words are all a skin tone or gender pattern, else "name"."""
    return _kind_of(words, tuple(variants))


@functools.lru_cache(maxsize=4096)
def _kind_of(words: str, variants: tuple) -> str:
    rest = words
    for pattern in variants:
        rest = re.sub(pattern, " ", rest)
    return "variant" if variants and not rest.strip() else "name"


def carries(key: tuple, attribute: str, variants: list[str]) -> bool:
    """Whether the drawing (source, name) has the attribute: its set, a whole variant of its name
    ("dark skin tone" is not in "medium dark skin tone"), or the words anywhere in its name."""
    source, name = key
    if attribute.startswith("set "):
        return source == attribute[4:]
    if kind_of(attribute, variants) == "variant":
        return attribute in variant_words(name, variants)
    return re.search(rf"(?:^| ){re.escape(attribute)}(?: |$)", name) is not None


def families(pool, variants: list[str] = ()) -> dict[str, dict]:
    """Every family of the pool ({(source, name): ...}): name and variant families within each
    source, and a style family for each ordered pair of sources. Members are (source, name) keys."""
    sources = sorted({source for source, _ in pool})
    names = {source: sorted(name for s, name in pool if s == source) for source in sources}
    found = {}
    for source in sources:
        for family, pairs in name_families(names[source], variants).items():
            found[f"{source}: {family}"] = {
                "kind": kind_of(family, variants),
                "pairs": [((source, a), (source, b)) for a, b in pairs],
            }
    for a in sources:
        for b in sources:
            shared = sorted(set(names[a]) & set(names[b]))
            if a != b and len(shared) >= 2:
                found[f"{b} -> {a}"] = {"kind": "style", "pairs": [((a, name), (b, name)) for name in shared]}
    return found


def analogies(found: dict, split_of: dict, per_target: int | None = None, targets=None) -> list[dict]:
    """Ordered pairs of pairs of a family: a1 - b1 + b2 should give a2 (never an input); for each
    target (of `targets` when given), every other pair as (a1, b1), or only the first `per_target`."""
    out = []
    for family, spec in found.items():
        pairs = spec["pairs"]
        for a2, b2 in pairs:
            if targets is not None and a2 not in targets:
                continue
            others = ((a1, b1) for a1, b1 in pairs if a2 not in (a1, b1) and (a1, b1) != (a2, b2))
            sources = list(islice(others, per_target))  # lazily: a style family has thousands of pairs
            out += [{"family": family, "kind": spec["kind"], "a": a1, "b": b1, "c": b2, "target": a2,
                     "split": split_of[a2]} for a1, b1 in sources]
    return out


def family_sums(table, found: dict) -> dict:
    """{family: (sum of a - b over its pairs, number of pairs)} in the space `table` maps keys into."""
    return {family: (torch.stack([table[a] - table[b] for a, b in spec["pairs"]]).sum(0), len(spec["pairs"]))
            for family, spec in found.items()}


def arithmetic(table, item, method, sums=None):
    """The analogy's prediction for the target, in whatever space `table` maps keys into; the family
    mean needs that space's `family_sums`."""
    if method == "single":
        return table[item["a"]] - table[item["b"]] + table[item["c"]]
    total, n = sums[item["family"]]
    return table[item["c"]] + (total - (table[item["target"]] - table[item["c"]])) / (n - 1)


def per_target(items: list[dict]) -> list[dict]:
    """One item per (family, target): the family mean's composite depends on nothing else."""
    return list({(i["family"], i["target"]): i for i in items}.values())


def score(
    items, method, decode, latents, pixels, recon_mse, sums=(None, None), judge=None, reconstructions=None
) -> list[dict]:
    """Per analogy: the composite's MSE to the target, pixel arithmetic's and copying's, the
    target's rank among every latent of the pool (inputs excluded), and the model's own one-pass
    reconstruction MSE of the target (the arithmetic gap's denominator). `sums`: the family sums
    of the latents and of the pixels, for the family mean. With a `judge` (emoji_ae.judge), its
    figures for the composite, pixel arithmetic and the model's reconstruction of the target (from
    `reconstructions` when given, {target: image}, else decoded here)."""
    position = {key: i for i, key in enumerate(latents)}
    all_z = torch.stack(list(latents.values()))
    z = torch.stack([arithmetic(latents, item, method, sums[0]) for item in items])
    predicted = torch.stack([arithmetic(pixels, item, method, sums[1]) for item in items]).clamp(
        0, 1
    )  # pixel arithmetic
    composites = decode(z)
    distances = torch.cdist(z, all_z)
    rows = []
    for item, image, pixel, row in zip(items, composites, predicted, distances):
        target = pixels[item["target"]]
        for excluded in (item["a"], item["b"], item["c"]) if method == "single" else (item["c"],):
            row[position[excluded]] = float("inf")
        rows.append(
            {
                "family": item["family"],
                "kind": item["kind"],
                "split": item["split"],
                "method": method,
                "a": list(item["a"]),
                "b": list(item["b"]),
                "c": list(item["c"]),
                "target": list(item["target"]),
                "mse": F.mse_loss(image, target).item(),
                "pixel_mse": F.mse_loss(pixel, target).item(),
                "copy_mse": F.mse_loss(pixels[item["c"]], target).item(),
                "recon_mse": recon_mse[item["target"]],
                "rank": int((row < row[position[item["target"]]]).sum()) + 1,
            }
        )
    if judge is not None:
        images = {
            "composite": composites,
            "pixel": predicted,
            "reconstruction": torch.stack([reconstructions[i["target"]] for i in items])
            if reconstructions
            else decode(torch.stack([latents[i["target"]] for i in items])),
        }
        for row, judged in zip(rows, judge.score(images, torch.stack([pixels[i["target"]] for i in items]), items)):
            row.update(judged)
    return rows


def summarise(rows: list[dict]) -> dict:
    if not rows:
        return {"n": 0}
    mse, pixel, copy, recon = (np.array([r[k] for r in rows]) for k in ("mse", "pixel_mse", "copy_mse", "recon_mse"))
    ranks = np.array([r["rank"] for r in rows])
    return {"n": len(rows), "mse": float(mse.mean()), "pixel_mse": float(pixel.mean()), "copy_mse": float(copy.mean()),
            "recon_mse": float(recon.mean()), "gap": float(mse.mean() / recon.mean()),
            "vs_pixel": float(mse.mean() / max(pixel.mean(), 1e-12)),
            "beats_pixel": float((mse < pixel).mean()), "beats_copy": float((mse < copy).mean()),
            # The most a composite could beat pixel arithmetic at this reconstruction: where even the
            # model's own one-pass reconstruction of the target beats it.
            "recon_beats_pixel": float((recon < pixel).mean()),
            "top1": float((ranks <= 1).mean()), "top5": float((ranks <= 5).mean())}


def summary_by_split(rows: list[dict]) -> dict:
    """{split: {method: summary, and per kind for the family mean}} over the scored rows."""
    out = {}
    for split in ("train", "val", "test"):
        chosen = [r for r in rows if r["split"] == split]
        out[split] = {method: summarise([r for r in chosen if r["method"] == method]) for method in METHODS}
        out[split]["family_mean_by_kind"] = {
            kind: summarise([r for r in chosen if r["method"] == "family_mean" and r["kind"] == kind]) for kind in KINDS
        }
    return out


class TrainingAnalogies:
    """Every family of a pool of training drawings, as pairs of indices into it, to draw analogies
    from while training (the analogy objective of Reed et al. 2015: decode(z(a) - z(b) + z(c))
    should be d, and the attribute code's teachers, emoji_ae/attributes.py). All pairs of one family
    sit together, so a target pair and another pair of its family are drawn without building the
    millions of pairs of pairs. `images`: the drawings of `keys`, (N, C, H, W), when given."""

    def __init__(self, keys: list, variants: list[str], images: torch.Tensor | None = None):
        self.keys, self.variants, self.images = list(keys), list(variants), images
        index = {key: i for i, key in enumerate(self.keys)}
        self.found = families(dict.fromkeys(self.keys), variants)
        pairs, starts, sizes = [], [], []
        for spec in self.found.values():
            start = len(pairs)
            pairs += [(index[a], index[b]) for a, b in spec["pairs"]]
            starts += [start] * len(spec["pairs"])
            sizes += [len(spec["pairs"])] * len(spec["pairs"])
        self.pairs, self.starts, self.sizes = torch.tensor(pairs).view(-1, 2), torch.tensor(starts), torch.tensor(sizes)

    def __len__(self) -> int:
        return len(self.pairs)

    def sample(self, n: int, generator) -> torch.Tensor:
        """(n, 4) indices a, b, c, d: a target pair (d, c) and another pair (a, b) of its family."""
        target = torch.randint(len(self.pairs), (n,), generator=generator)
        start, size = self.starts[target], self.sizes[target]
        offset = (target - start + 1 + (torch.rand(n, generator=generator) * (size - 1)).long()) % size
        source = start + offset
        return torch.stack(
            [self.pairs[source, 0], self.pairs[source, 1], self.pairs[target, 1], self.pairs[target, 0]], 1
        )


def training_analogies(frames: list[pd.DataFrame], variants: list[str]) -> TrainingAnalogies | None:
    """The original drawings of training splits (no augmented copies or mirror images), and
    their families: what the analogy objective and the attribute code's teachers draw from. Never a
    validation or test emoji. None, with a warning, where the names hold no family (a small data set
    of one's own)."""
    frame = pd.concat([f[~f["augmented"].astype(bool)] for f in frames], ignore_index=True)
    frame = frame.drop_duplicates(["source", "text"], ignore_index=True)
    found = TrainingAnalogies(list(zip(frame["source"], frame["text"])), variants)
    if not len(found):
        print(
            "warning: the training emoji's names form no analogy family (two or more pairs that differ by the same "
            "words), so this stage trains without the analogy loss and the attribute code's teachers",
            file=sys.stderr,
        )
        return None
    found.images = split_tensors(frame)
    return found
