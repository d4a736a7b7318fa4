"""compose: add attributes to emoji by arithmetic on latent vectors, and score it.

1. Recipes from params ("nerd face - smiling face with open mouth + face with stuck out
   tongue"); a term is an emoji's text or a concept: the mean latent of a list of emoji.
2. An alpha strip (base + alpha * attribute) and a slerp strip between two emoji.
3. A ground-truth analogy benchmark built from the names themselves: when deleting the
   same words turns several names into other names ("crying cat face" -> "crying face",
   "weary cat face" -> "weary face"), each pair predicts the others:
   z(crying cat face) - z(crying face) + z(weary face) should decode to "weary cat face".
   Composites are scored by MSE to the true image against copying the third input and
   against the same arithmetic on pixels, and by nearest-neighbour retrieval of the target.

Both trained models compose, so the report can say whether the classifier's shaping of the
latent helps. Writes reports/compose/ (figures, metrics.json, analogies.json).
"""

import difflib
import math
import re

import numpy as np
import torch
import torch.nn.functional as F

from stages.lib.config import PipelineError, load_params, run_stage
from stages.lib.data import SPLITS, split_tensors
from stages.lib.figures import save_grid
from stages.lib.files import broken, load_torch, read_split, short_reason, write_json
from stages.lib.model import decode_all, load_model
from stages.lib.paths import COMPOSE, MODEL_NAMES, PREPARED, latents_file, model_file, split_file

METHODS = ("single", "family_mean")  # latent arithmetic with one exemplar pair, or all pairs


def parse_recipe(recipe: str) -> list[tuple[float, str]]:
    """'a - b + c' -> [(1, 'a'), (-1, 'b'), (1, 'c')]; names are lower-case words."""
    text = recipe.strip().lower()
    if not text.startswith(("+", "-")):
        text = f"+ {text}"
    parts = re.split(r"(?:^|\s+)([+-])\s+", text)
    terms = [(1.0 if sign == "+" else -1.0, name.strip()) for sign, name in zip(parts[1::2], parts[2::2])]
    if not terms or any(not name or name[0] in "+-" or name[-1] in "+-" for _, name in terms):
        raise PipelineError(f"compose recipe '{recipe}' is malformed: write it as 'name - name + name'")
    return terms


def check_names(names: list[str], known: list[str], where: str) -> None:
    """Fail up front, in one line, on the first name that is not an emoji of the data."""
    for name in names:
        if name not in known:
            close = difflib.get_close_matches(name, known, n=3, cutoff=0.4)
            hint = f"closest: {', '.join(repr(c) for c in close)}" if close else "no close name"
            raise PipelineError(f"{where} names '{name}', which is not in the prepared data ({hint})")


def analogy_families(names: list[str]) -> dict[str, list[tuple[str, str]]]:
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
    return {k: sorted(v) for k, v in sorted(families.items()) if len(v) >= 2}


def analogies(families) -> list[dict]:
    """Every ordered pair of pairs in a family: a1 - b1 + b2 should give a2 (never an input)."""
    out = []
    for family, pairs in families.items():
        for a1, b1 in pairs:
            for a2, b2 in pairs:
                if (a1, b1) != (a2, b2) and a2 not in (a1, b1, b2):
                    others = [(a, b) for a, b in pairs if (a, b) != (a2, b2)]
                    out.append({"family": family, "a": a1, "b": b1, "c": b2, "target": a2, "pairs": others})
    return out


def arithmetic(table, item, method):
    """The analogy's prediction for the target, in whatever space `table` maps names into."""
    if method == "single":
        return table[item["a"]] - table[item["b"]] + table[item["c"]]
    shift = torch.stack([table[a] - table[b] for a, b in item["pairs"]]).mean(0)
    return table[item["c"]] + shift


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: float) -> torch.Tensor:
    # The angle's trigonometry in Python floats: torch's vectorised arccos and sin round
    # differently from one CPU vendor to another.
    omega = math.acos(min(1.0, max(-1.0, F.cosine_similarity(z0, z1, dim=0).item())))
    if omega < 1e-6:
        return (1 - t) * z0 + t * z1
    return (math.sin((1 - t) * omega) * z0 + math.sin(t * omega) * z1) / math.sin(omega)


def score_analogies(model, items, latents, pixels, names) -> tuple[dict, list[dict], dict]:
    """Composite MSE to the true target per method and baseline, and latent retrieval ranks."""
    all_z = torch.stack([latents[n] for n in names])
    rows, composites = [], {}
    for item in items:
        target = pixels[item["target"]]
        row = {k: item[k] for k in ("family", "a", "b", "c", "target")}
        row["copy_mse"] = F.mse_loss(pixels[item["c"]], target).item()
        for method in METHODS:
            z = arithmetic(latents, item, method)
            image = decode_all(model, z[None])[0]
            composites[(item["target"], item["a"], method)] = image
            row[f"{method}_mse"] = F.mse_loss(image, target).item()
            pixel_guess = arithmetic(pixels, item, method).clamp(0, 1)
            row[f"pixel_{method}_mse"] = F.mse_loss(pixel_guess, target).item()
            distances = torch.cdist(z[None], all_z)[0]
            for excluded in (item["a"], item["b"], item["c"]):
                distances[names.index(excluded)] = float("inf")
            row[f"{method}_rank"] = int((distances < distances[names.index(item["target"])]).sum()) + 1
        rows.append(row)

    summary = {}
    for method in METHODS:
        mse = np.array([r[f"{method}_mse"] for r in rows])
        pixel = np.array([r[f"pixel_{method}_mse"] for r in rows])
        copy = np.array([r["copy_mse"] for r in rows])
        ranks = np.array([r[f"{method}_rank"] for r in rows])
        summary[method] = {
            "mse": float(mse.mean()),
            "pixel_mse": float(pixel.mean()),
            "beats_pixel": float((mse < pixel).mean()),
            "beats_copy": float((mse < copy).mean()),
            "top1": float((ranks <= 1).mean()),
            "top5": float((ranks <= 5).mean()),
        }
    summary["copy_mse"] = float(np.mean([r["copy_mse"] for r in rows]))
    best = min(METHODS, key=lambda m: summary[m]["mse"])
    summary["best_method"] = best
    return summary, rows, composites


def concept_vector(term: str, latents, concepts) -> torch.Tensor:
    members = concepts.get(term, [term])
    return torch.stack([latents[n] for n in members]).mean(0)


def one_record_per_name(frames: dict, sources: list[str]) -> dict[str, tuple[str, int]]:
    """Each emoji name's (split, row) among the prepared originals: where several sources show
    the same name, the record of the source listed first in data.source."""
    chosen, rank = {}, {source: i for i, source in enumerate(sources)}
    for split in SPLITS:
        for row, (text, source) in enumerate(zip(frames[split]["text"], frames[split]["source"])):
            if text not in chosen or rank.get(source, len(rank)) < chosen[text][0]:
                chosen[text] = (rank.get(source, len(rank)), split, row)
    return {text: (split, row) for text, (_, split, row) in chosen.items()}


def original_latents(name: str, frames: dict, chosen: dict) -> dict[str, torch.Tensor]:
    """The encoder's latent of each chosen original image (not its augmented copies). The train
    stage saves originals first in each split, in data/prepared's order."""
    path = latents_file(name)
    saved = load_torch(path)
    try:
        originals = {split: saved[split]["z"][~saved[split]["augmented"]] for split in SPLITS}
    except (KeyError, TypeError, IndexError) as e:
        raise broken(path, f"not a latents file: {short_reason(e)}") from None
    if any(len(originals[split]) != len(frames[split]) for split in SPLITS):
        raise broken(path, f"its latents do not match {PREPARED}")
    return {text: originals[split][row] for text, (split, row) in chosen.items()}


def check_compose_params(cfg, names: list[str]) -> list[list[tuple[float, str]]]:
    """Every name and concept checked before any work, so a typo costs seconds, not a run;
    returns the parsed recipes."""
    for concept, members in cfg.concepts.items():
        check_names(members, names, f"compose.concepts.{concept}")
    recipes = [parse_recipe(r) for r in cfg.recipes]
    for recipe, terms in zip(cfg.recipes, recipes):
        check_names([n for _, n in terms if n not in cfg.concepts], names, f"compose recipe '{recipe}'")
    strip_terms = parse_recipe(cfg.strip.attribute)
    check_names([cfg.strip.base, *[n for _, n in strip_terms if n not in cfg.concepts]], names, "compose.strip")
    check_names(list(cfg.slerp), names, "compose.slerp")
    return recipes


def draw_recipes(name, model, cfg, recipes, latents, pixels) -> None:
    """One figure per recipe: its inputs and the composite."""
    for index, (recipe, terms) in enumerate(zip(cfg.recipes, recipes), start=1):
        z = sum(sign * concept_vector(term, latents, cfg.concepts) for sign, term in terms)
        row = [pixels[t] if t in pixels else decode_all(model, concept_vector(t, latents, cfg.concepts)[None])[0]
               for _, t in terms]
        titles = [("" if i == 0 else ("- " if s < 0 else "+ ")) + t for i, (s, t) in enumerate(terms)]
        save_grid(COMPOSE / name / f"recipe_{index}.png", [row + [decode_all(model, z[None])[0]]],
                  col_titles=titles + ["= composite"], title=f"{name}: {recipe}", cell=1.4)


def draw_strips(name, model, cfg, latents, pixels) -> None:
    """The attribute-strength strip (base + alpha * attribute) and the slerp strip."""
    strip_terms = parse_recipe(cfg.strip.attribute)
    attribute = sum(sign * concept_vector(t, latents, cfg.concepts) for sign, t in strip_terms)
    strip = torch.stack([latents[cfg.strip.base] + a * attribute for a in cfg.strip.alphas])
    save_grid(COMPOSE / name / "alpha_strip.png", [list(decode_all(model, strip))],
              col_titles=[f"alpha={a:g}" for a in cfg.strip.alphas],
              title=f"{name}: {cfg.strip.base} + alpha * ({cfg.strip.attribute})", cell=1.2)
    start, end = (latents[n] for n in cfg.slerp)
    steps = np.linspace(0, 1, cfg.slerp_steps)
    path = torch.stack([slerp(start, end, float(t)) for t in steps])
    save_grid(COMPOSE / name / "slerp_strip.png", [[pixels[cfg.slerp[0]], *decode_all(model, path), pixels[cfg.slerp[1]]]],
              col_titles=["start"] + [f"t={t:.2f}" for t in steps] + ["end"],
              title=f"{name}: slerp from {cfg.slerp[0]} to {cfg.slerp[1]}", cell=1.2)


def draw_analogies(name, items, composites, best, pixels) -> None:
    """The first analogy of each target, up to ten: inputs, composite, target, pixel arithmetic."""
    shown = list({i["target"]: i for i in reversed(items)}.values())[::-1][:10]
    grid = [[pixels[i["a"]], pixels[i["b"]], pixels[i["c"]], composites[(i["target"], i["a"], best)],
             pixels[i["target"]], arithmetic(pixels, i, best).clamp(0, 1)] for i in shown]
    save_grid(COMPOSE / name / "analogies.png", grid, row_titles=[f"{i['target']}" for i in shown],
              col_titles=["a", "- b", "+ c", f"= composite ({best})", "true target", "pixel arithmetic"],
              title=f"{name}: analogies a - b + c scored against the true emoji", cell=1.2)


def main():
    params = load_params()
    cfg = params.compose
    # One original image and latent per emoji name; every input is read before anything is written.
    frames = {s: read_split(split_file(PREPARED, s)) for s in SPLITS}
    chosen = one_record_per_name(frames, params.data.sources)
    images = {s: split_tensors(frames[s]) for s in SPLITS}
    pixels = {text: images[split][row] for text, (split, row) in chosen.items()}
    names = sorted(pixels)
    recipes = check_compose_params(cfg, names)
    models = {name: (load_model(model_file(name)), original_latents(name, frames, chosen)) for name in MODEL_NAMES}

    items = analogies(analogy_families(names))
    metrics = {"n_analogies": len(items), "n_families": len({i["family"] for i in items})}
    per_analogy = {}
    for name, (model, latents) in models.items():
        draw_recipes(name, model, cfg, recipes, latents, pixels)
        draw_strips(name, model, cfg, latents, pixels)
        metrics[name], per_analogy[name], composites = score_analogies(model, items, latents, pixels, names)
        draw_analogies(name, items, composites, metrics[name]["best_method"], pixels)

    write_json(COMPOSE / "metrics.json", metrics)
    write_json(COMPOSE / "analogies.json", per_analogy, indent=1)
    for name in MODEL_NAMES:
        m = metrics[name][metrics[name]["best_method"]]
        print(f"compose[{name}]: {len(items)} analogies, {metrics[name]['best_method']}: mse {m['mse']:.4f}, "
              f"beats pixel {m['beats_pixel']:.0%}, beats copy {m['beats_copy']:.0%}, top-5 {m['top5']:.0%}")


if __name__ == "__main__":
    run_stage(main)
