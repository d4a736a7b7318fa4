"""Analogies with a known answer, and how latent arithmetic is scored on them.

Two kinds, both built from what the data names:

- **name**: where deleting the same words turns several names into other names of one set
  ("crying cat face" -> "crying face", "weary cat face" -> "weary face"), each pair predicts the
  others: z(crying cat face) - z(crying face) + z(weary face) should decode to "weary cat face".
- **style**: the same emoji drawn by two sets is a pair, and every such pair predicts the others:
  z(twemoji: X) - z(openmoji: X) + z(openmoji: Y) should decode to Twemoji's Y.

An analogy belongs to the split of its target's base emoji. Those whose target is a test emoji
are the held-out set: no model trains on their targets, and no design or param choice looks at
them (tune on the validation ones). The *family mean* averages the attribute over every other pair
of the family, so its composite depends only on the target: it is scored once per target. The
*single* pair is scored for every ordered pair of pairs.
"""

import numpy as np
import torch
import torch.nn.functional as F

METHODS = ("single", "family_mean")


def name_families(names: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Families of (with, without) name pairs that differ by the same 1-3 deleted words."""
    known = set(names)
    families: dict[str, list[tuple[str, str]]] = {}
    for name in names:
        words = name.split()
        for length in (1, 2, 3):
            for start in range(len(words) - length + 1):
                rest = " ".join(words[:start] + words[start + length :])
                if rest in known and rest != name:
                    families.setdefault(" ".join(words[start : start + length]), []).append((name, rest))
    return {k: sorted(set(v)) for k, v in sorted(families.items()) if len(set(v)) >= 2}


def families(pool: dict) -> dict[str, dict]:
    """Every family of the pool ({(source, name): ...}): name families within each source, and a
    style family for each ordered pair of sources. Members are (source, name) keys."""
    sources = sorted({source for source, _ in pool})
    found = {}
    for source in sources:
        for family, pairs in name_families(sorted(name for s, name in pool if s == source)).items():
            found[f"{source}: {family}"] = {"kind": "name", "pairs": [((source, a), (source, b)) for a, b in pairs]}
    for a in sources:
        for b in sources:
            shared = sorted({name for s, name in pool if s == a} & {name for s, name in pool if s == b})
            if a != b and len(shared) >= 2:
                found[f"{b} -> {a}"] = {"kind": "style", "pairs": [((a, name), (b, name)) for name in shared]}
    return found


def analogies(found: dict, split_of: dict, per_target: int | None = None) -> list[dict]:
    """Ordered pairs of pairs of a family: a1 - b1 + b2 should give a2 (never an input); for each
    target, every other pair as (a1, b1), or only the first `per_target` of them."""
    out = []
    for family, spec in found.items():
        pairs = spec["pairs"]
        for a2, b2 in pairs:
            others = [p for p in pairs if p != (a2, b2)]
            sources = [(a1, b1) for a1, b1 in others if a2 not in (a1, b1)][:per_target]
            out += [{"family": family, "kind": spec["kind"], "a": a1, "b": b1, "c": b2, "target": a2,
                     "split": split_of[a2], "pairs": others} for a1, b1 in sources]
    return out


def arithmetic(table, item, method):
    """The analogy's prediction for the target, in whatever space `table` maps keys into."""
    if method == "single":
        return table[item["a"]] - table[item["b"]] + table[item["c"]]
    shift = torch.stack([table[a] - table[b] for a, b in item["pairs"]]).mean(0)
    return table[item["c"]] + shift


def per_target(items: list[dict]) -> list[dict]:
    """One item per (family, target): the family mean's composite depends on nothing else."""
    return list({(i["family"], i["target"]): i for i in items}.values())


def score(items, method, decode, latents, pixels, recon_mse) -> list[dict]:
    """Per analogy: the composite's MSE to the target, pixel arithmetic's and copying's, the
    target's rank among every latent of the pool (inputs excluded), and the model's own one-pass
    reconstruction MSE of the target (the arithmetic gap's denominator)."""
    position = {key: i for i, key in enumerate(latents)}
    all_z = torch.stack(list(latents.values()))
    z = torch.stack([arithmetic(latents, item, method) for item in items])
    composites = decode(z)
    rows = []
    for item, zi, image in zip(items, z, composites):
        target = pixels[item["target"]]
        distances = torch.cdist(zi[None], all_z)[0]
        for excluded in ((item["a"], item["b"], item["c"]) if method == "single" else (item["c"],)):
            distances[position[excluded]] = float("inf")
        rows.append({"family": item["family"], "kind": item["kind"], "split": item["split"], "method": method,
                     "a": list(item["a"]), "b": list(item["b"]), "c": list(item["c"]), "target": list(item["target"]),
                     "mse": F.mse_loss(image, target).item(),
                     "pixel_mse": F.mse_loss(arithmetic(pixels, item, method).clamp(0, 1), target).item(),
                     "copy_mse": F.mse_loss(pixels[item["c"]], target).item(),
                     "recon_mse": recon_mse[item["target"]],
                     "rank": int((distances < distances[position[item["target"]]]).sum()) + 1})
    return rows


def summarise(rows: list[dict]) -> dict:
    if not rows:
        return {"n": 0}
    mse, pixel, copy, recon = (np.array([r[k] for r in rows]) for k in ("mse", "pixel_mse", "copy_mse", "recon_mse"))
    ranks = np.array([r["rank"] for r in rows])
    return {"n": len(rows), "mse": float(mse.mean()), "pixel_mse": float(pixel.mean()), "copy_mse": float(copy.mean()),
            "recon_mse": float(recon.mean()), "gap": float(mse.mean() / recon.mean()),
            "beats_pixel": float((mse < pixel).mean()), "beats_copy": float((mse < copy).mean()),
            "top1": float((ranks <= 1).mean()), "top5": float((ranks <= 5).mean())}


def summary_by_split(rows: list[dict]) -> dict:
    """{split: {method: summary, and per kind for the family mean}} over the scored rows."""
    out = {}
    for split in ("train", "val", "test"):
        chosen = [r for r in rows if r["split"] == split]
        out[split] = {method: summarise([r for r in chosen if r["method"] == method]) for method in METHODS}
        out[split]["family_mean_by_kind"] = {kind: summarise([r for r in chosen if r["method"] == "family_mean" and r["kind"] == kind])
                                             for kind in ("name", "style")}
    return out
