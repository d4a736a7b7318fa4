"""compose: add attributes to emoji by arithmetic on latent vectors, and score it.

1. Recipes from params ("nerd face - smiling face with open mouth + face with stuck out
   tongue"); a term is an emoji's name or a concept: the mean latent of a list of emoji.
2. An alpha strip (base + alpha * attribute) and a slerp strip between two emoji.
3. Analogies with a known answer (emoji_ae/analogies.py): name and variant (skin tone, gender)
   families within each set, and the same emoji drawn by two sets. Two benchmarks: *subset*, the
   prepared originals and data/extra/styles.parquet (the assignment's part 3), and *all*, every
   glyph of the sets (data/extra: pretraining glyphs as inputs, held-out glyphs as targets), whose
   figures are the headline. Composites are scored by MSE to the true image, against pixel
   arithmetic and copying the third input, by retrieval of the target among every latent, and by
   the arithmetic gap (their MSE over the model's own reconstruction of the target), per split of
   the target: the test split's are the held-out set.
4. Every recipe whose answer is an emoji of the data is drawn beside it and scored the same way.

Both trained models compose, so the report can say whether the classifier's shaping of the
latent helps. Writes reports/compose/ (figures, metrics.json, analogies.json).
"""

import sys

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from emoji_ae import analogies as A
from emoji_ae import judge as J
from emoji_ae.config import load_params, run_stage
from emoji_ae.data import SPLITS, split_tensors
from emoji_ae.figures import save_grid
from emoji_ae.files import read_split, write_json
from emoji_ae.model import decode_all, encode_all, load_model, refine_latents
from emoji_ae.recipes import answer, check_names, concept_vector, parse_recipe, slerp
from emoji_ae.paths import COMPOSE, EXTRA, MODEL_NAMES, PREPARED, model_file, split_file

# Single-pair analogies scored per target and family (every pair of pairs would be millions): a
# few for the subset's few targets, one for every glyph's thousands.
SINGLE_PER_TARGET = {"subset": 3, "all": 1}


def drawings(frame, splits) -> tuple[dict, dict]:
    """{(source, name): image} and {(source, name): split} of a split file's records."""
    keys = list(zip(frame["source"], frame["text"]))
    if not keys:  # a small set may hold out none of its glyphs, or draw none of the subset's emoji
        return {}, {}
    return dict(zip(keys, split_tensors(frame))), dict(zip(keys, splits))


def pool_of(sources: list[str]) -> tuple[dict, dict, dict]:
    """Every original drawing of the subset, keyed (source, name), the split of each, and the key
    that stands for each name (the record of the source listed first in data.source)."""
    pixels, split_of = {}, {}
    for split in SPLITS:
        frame = read_split(split_file(PREPARED, split))
        images, where = drawings(frame, [split] * len(frame))
        pixels, split_of = {**images, **pixels}, {**where, **split_of}
    rank = {source: i for i, source in enumerate(sources)}
    named = {}
    for source, name in sorted(pixels, key=lambda key: rank.get(key[0], len(rank))):
        named.setdefault(name, (source, name))
    return pixels, split_of, named


def with_styles(pixels: dict, split_of: dict) -> tuple[dict, dict]:
    """The pool with the other sets' drawings of the same emoji (data/extra/styles.parquet)."""
    frame = read_split(EXTRA / "styles.parquet", empty_ok=True)
    images, where = drawings(frame, frame["split"])
    return {**images, **pixels}, {**where, **split_of}


def with_others(pixels: dict, split_of: dict) -> tuple[dict, dict, set]:
    """The pool with every other glyph of the sets: the pretraining glyphs (train, inputs only) and
    the held-out ones (val, test); and the keys that may be targets (all but the pretraining ones)."""
    frame = read_split(EXTRA / "pretrain.parquet")
    frame = frame[~frame["augmented"]].reset_index(drop=True)  # without mirror images
    learn, learn_split = drawings(frame, ["train"] * len(frame))
    frame = read_split(EXTRA / "held_out.parquet", empty_ok=True)
    held, held_split = drawings(frame, frame["split"])
    return {**learn, **held, **pixels}, {**learn_split, **held_split, **split_of}, set(held) | set(pixels)


class Benchmark:
    """A pool of drawings, its families, and the analogies scored on it."""

    def __init__(self, pixels: dict, split_of: dict, variants: list[str], singles: int, targets=None):
        self.pixels, self.found = pixels, A.families(pixels, variants)
        self.family_items = A.analogies(self.found, split_of, per_target=1, targets=targets)
        self.single_items = A.analogies(self.found, split_of, per_target=singles, targets=targets)
        self.pixel_sums = A.family_sums(pixels, self.found)

    def counts(self) -> dict:
        return {"n_families": len({i["family"] for i in self.family_items}),
                "n_analogies": {split: {kind: sum(i["split"] == split and i["kind"] == kind for i in self.family_items)
                                        for kind in A.KINDS} for split in SPLITS}}

    def score(self, model, latents: dict, recon_mse: dict, judge: J.Judge, project=None) -> tuple[dict, list]:
        """Every analogy scored with this model's latents (of at least the pool's keys); the family
        mean's also by the judge of this pool. `project`: see projector()."""
        latents = {key: latents[key] for key in self.pixels}
        sums = (A.family_sums(latents, self.found), self.pixel_sums)
        decode = lambda batch: decode_all(model, batch)  # noqa: E731
        rows = []
        for method, items in (("family_mean", self.family_items), ("single", self.single_items)):
            for start in range(0, len(items), 512):  # chunks, so composites never fill memory
                rows += A.score(items[start : start + 512], method, decode, latents, self.pixels, recon_mse, sums,
                                judge if method == "family_mean" else None, project)
        summary = A.summary_by_split(rows)
        for split, judged in J.by_split(rows).items():
            summary[split] = {"judge": judged, **summary[split]}  # first: the figures a person would go by
        return summary, rows


def projector(model, cfg):
    """compose.project: Adam steps on each composite's latent, fitting its decoding to pixel
    arithmetic of the analogy's own inputs (nothing else of the pool), from the latent arithmetic's
    code: the decoder draws the double image as the one emoji it can draw. None when off."""
    if not cfg.project.steps:
        return None
    return lambda z, pixels: encode_refined(model, pixels, z, cfg.project)


def encode_refined(model, x: torch.Tensor, z: torch.Tensor, cfg) -> torch.Tensor:
    dev = next(model.parameters()).device
    return refine_latents(model, x.to(dev), z.to(dev), cfg.steps, cfg.lr).cpu()


def judge_classifier(bench: Benchmark, split_of: dict, variants: list[str]):
    """The judge's attribute classifier, trained on the pool's real train-split drawings only (never
    a model's output); None, with a warning, where no attribute has enough drawings to learn from."""
    keys = [key for key in bench.pixels if split_of[key] == "train"]
    attributes = J.attributes_to_learn(bench.family_items, keys, variants, J.LEAST)
    if not attributes:
        print("warning: no analogy attribute has enough training drawings, so the judge reads no attributes", file=sys.stderr)
        return None
    x, y = torch.stack([bench.pixels[k] for k in keys]), J.labels_of(keys, attributes, variants)
    cfg = J.CLASSIFIER
    with tqdm(total=cfg.epochs, desc="judge", unit="epoch") as bar:
        net = J.train_attributes(x, y, attributes, cfg, cfg.seed, progress=lambda epoch, loss: bar.update(1) or bar.set_postfix(loss=f"{loss:.3f}"))
    return net


def encode_pool(model, pixels: dict, targets: set) -> tuple[dict, dict]:
    """Each drawing's latent, and the model's one-pass reconstruction MSE of each of `targets`
    (only a target's is read; the pretraining glyphs, most of the pool, are inputs only)."""
    keys = list(pixels)
    z = encode_all(model, torch.stack([pixels[k] for k in keys]))
    latents = dict(zip(keys, z))
    scored = [k for k in keys if k in targets]
    images = torch.stack([pixels[k] for k in scored])
    errors = ((decode_all(model, torch.stack([latents[k] for k in scored])) - images) ** 2).flatten(1).mean(1)
    return latents, dict(zip(scored, errors.tolist()))


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


def draw_recipes(name, model, cfg, recipes, latents, pixels, project=None) -> list[dict]:
    """One figure per recipe: its inputs and the composite, and where the recipe names an emoji of
    the data, that emoji and pixel arithmetic beside it; returns the scores of those."""
    scores = []
    for index, (recipe, terms) in enumerate(zip(cfg.recipes, recipes), start=1):
        z = sum(sign * concept_vector(term, latents, cfg.concepts) for sign, term in terms)
        if project is not None:
            z = project(z[None], sum(sign * concept_vector(t, pixels, cfg.concepts) for sign, t in terms).clamp(0, 1)[None])[0]
        composite = decode_all(model, z[None])[0]
        row = [pixels[t] if t in pixels else decode_all(model, concept_vector(t, latents, cfg.concepts)[None])[0]
               for _, t in terms]
        titles = [("" if i == 0 else ("- " if s < 0 else "+ ")) + t for i, (s, t) in enumerate(terms)] + ["= composite"]
        real = answer(terms, pixels) if all(t in pixels for _, t in terms) else None
        if real is not None:
            pixel = sum(sign * pixels[t] for sign, t in terms).clamp(0, 1)
            row += [pixels[real], pixel]
            titles += ["real answer", "pixel arithmetic"]
            target = pixels[real]
            scores.append({"recipe": recipe, "answer": real, "mse": F.mse_loss(composite, target).item(),
                           "pixel_mse": F.mse_loss(pixel, target).item(), "copy_mse": F.mse_loss(row[len(terms) - 1], target).item()})
        save_grid(COMPOSE / name / f"recipe_{index}.png", [row[: len(terms)] + [composite] + row[len(terms) :]],
                  col_titles=titles, title=f"{name}: {recipe}" + (f" = {real}" if real else ""), cell=1.4)
    return scores


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


def draw_analogies(path, title: str, model, bench: Benchmark, rows: list[dict], latents: dict, per_kind: int, project=None) -> None:
    """Held-out analogies (test targets), family mean: up to `per_kind` of each kind, with the
    composite beside the true target and pixel arithmetic."""
    items = {(i["family"], tuple(i["target"])): i for i in bench.family_items}
    shown = []
    for kind in A.KINDS:
        chosen = [r for r in rows if r["method"] == "family_mean" and r["split"] == "test" and r["kind"] == kind]
        shown += [items[(r["family"], tuple(r["target"]))] for r in chosen[:: max(1, len(chosen) // per_kind)][:per_kind]]
    if not shown:
        return
    latents = {key: latents[key] for key in bench.pixels}
    sums = A.family_sums(latents, bench.found)
    pixels = bench.pixels
    z = torch.stack([A.arithmetic(latents, i, "family_mean", sums) for i in shown])
    arithmetic = [A.arithmetic(pixels, i, "family_mean", bench.pixel_sums).clamp(0, 1) for i in shown]
    composites = decode_all(model, z if project is None else project(z, torch.stack(arithmetic)))
    grid = [[pixels[i["a"]], pixels[i["b"]], pixels[i["c"]], image, pixels[i["target"]], pixel]
            for i, image, pixel in zip(shown, composites, arithmetic)]
    save_grid(path, grid, row_titles=[f"{i['family']}: {i['target'][1]}"[:48] for i in shown],
              col_titles=["a (one pair shown)", "- b", "+ c", "= composite (family mean)", "true target", "pixel arithmetic"],
              title=title, cell=1.2)


def main():
    params = load_params()
    cfg, variants = params.compose, params.data.variants
    # Every input is read and every name checked before anything is written.
    pixels, split_of, named = pool_of(params.data.sources)
    recipes = check_compose_params(cfg, sorted(named))
    pixels, split_of = with_styles(pixels, split_of)
    everything, everything_split, targets = with_others(pixels, split_of)
    models = {name: load_model(model_file(name)) for name in MODEL_NAMES}
    benches = {"all": Benchmark(everything, everything_split, variants, SINGLE_PER_TARGET["all"], targets),
               "subset": Benchmark(pixels, split_of, variants, SINGLE_PER_TARGET["subset"])}

    net = judge_classifier(benches["all"], everything_split, variants)
    judges = {name: J.Judge(bench.pixels, net) for name, bench in benches.items()}  # one per pool, for both models

    metrics = {**benches["all"].counts(), "subset": benches["subset"].counts(), "recipes": {}}
    per_analogy = {}
    for name, model in models.items():
        latents, recon_mse = encode_pool(model, everything, targets)
        project = projector(model, cfg)
        metrics[name], rows = benches["all"].score(model, latents, recon_mse, judges["all"], project)
        metrics["subset"][name], subset_rows = benches["subset"].score(model, latents, recon_mse, judges["subset"], project)
        per_analogy[name] = {"all": rows, "subset": subset_rows}
        by_name = {text: latents[key] for text, key in named.items()}
        images = {text: pixels[key] for text, key in named.items()}
        metrics["recipes"][name] = draw_recipes(name, model, cfg, recipes, by_name, images, project)
        draw_strips(name, model, cfg, by_name, images)
        draw_analogies(COMPOSE / name / "analogies.png", f"{name}: held-out analogies of the subset (test targets)",
                       model, benches["subset"], subset_rows, latents, per_kind=6, project=project)
        draw_analogies(COMPOSE / name / "benchmark.png", f"{name}: held-out analogies of every glyph (test targets)",
                       model, benches["all"], rows, latents, per_kind=4, project=project)

    write_json(COMPOSE / "metrics.json", metrics)
    write_json(COMPOSE / "analogies.json", per_analogy, indent=1)
    for name in MODEL_NAMES:
        held_out, judged = metrics[name]["test"]["family_mean"], metrics[name]["test"].get("judge", {}).get("all", {})
        print(f"compose[{name}]: {held_out['n']} held-out analogies (test targets), family mean: beats pixel "
              f"{held_out['beats_pixel']:.0%}, MSE {held_out['vs_pixel']:.2f}x pixel arithmetic's; judge top-1 composite / pixel / "
              "reconstruction " + " / ".join(f"{judged[k]['top1']:.0%}" for k in J.IMAGES if k in judged))


if __name__ == "__main__":
    run_stage(main)
