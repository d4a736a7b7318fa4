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

import numpy as np
import torch
import torch.nn.functional as F

from emoji_ae import analogies as A
from emoji_ae import judge as J
from emoji_ae.config import load_params, run_stage
from emoji_ae.figures import save_grid
from emoji_ae.files import write_json
from emoji_ae.model import decode_all, load_model
from emoji_ae.paths import COMPOSE, MODEL_NAMES, model_file
from emoji_ae.pool import AnalogySet, encode_drawings, every_glyph_pool, subset_originals, subset_pool
from emoji_ae.recipes import answer, check_names, concept_vector, parse_recipe, slerp
from emoji_ae.results import composition

# Single-pair analogies scored per target and family (every pair of pairs would be millions): a
# few for the subset's few targets; none for every glyph's thousands, where the family mean is the
# method (docs/design.md) and scoring a single pair per target would cost a fifth of the stage.
SINGLE_PER_TARGET = {"subset": 3, "all": 0}


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


def draw_recipes(name, model, cfg, recipes, latents, pixels) -> list[dict]:
    """One figure per recipe: its inputs and the composite, and where the recipe names an emoji of
    the data, that emoji and pixel arithmetic beside it; returns the scores of those."""
    scores = []
    for index, (recipe, terms) in enumerate(zip(cfg.recipes, recipes), start=1):
        z = sum(sign * concept_vector(term, latents, cfg.concepts) for sign, term in terms)
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
            scores.append(
                {
                    "recipe": recipe,
                    "answer": real,
                    "mse": F.mse_loss(composite, target).item(),
                    "pixel_mse": F.mse_loss(pixel, target).item(),
                    "copy_mse": F.mse_loss(row[len(terms) - 1], target).item(),
                }
            )
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
    save_grid(
        COMPOSE / name / "slerp_strip.png",
        [[pixels[cfg.slerp[0]], *decode_all(model, path), pixels[cfg.slerp[1]]]],
        col_titles=["start"] + [f"t={t:.2f}" for t in steps] + ["end"],
        title=f"{name}: slerp from {cfg.slerp[0]} to {cfg.slerp[1]}",
        cell=1.2,
    )


def draw_analogies(path, title: str, model, bench: AnalogySet, rows: list[dict], latents: dict, per_kind: int) -> None:
    """Held-out analogies (test targets), family mean: up to `per_kind` of each kind, with the
    composite beside the true target and pixel arithmetic."""
    items = {(i["family"], tuple(i["target"])): i for i in bench.family_items}
    shown = []
    for kind in A.KINDS:
        chosen = [r for r in rows if r["method"] == "family_mean" and r["split"] == "test" and r["kind"] == kind]
        shown += [
            items[(r["family"], tuple(r["target"]))] for r in chosen[:: max(1, len(chosen) // per_kind)][:per_kind]
        ]
    if not shown:
        return
    latents = {key: latents[key] for key in bench.pixels}
    sums = A.family_sums(latents, bench.found)
    pixels = bench.pixels
    z = torch.stack([A.arithmetic(latents, i, "family_mean", sums) for i in shown])
    arithmetic = [A.arithmetic(pixels, i, "family_mean", bench.pixel_sums).clamp(0, 1) for i in shown]
    composites = decode_all(model, z)
    grid = [[pixels[i["a"]], pixels[i["b"]], pixels[i["c"]], image, pixels[i["target"]], pixel]
            for i, image, pixel in zip(shown, composites, arithmetic)]
    save_grid(
        path,
        grid,
        row_titles=[f"{i['family']}: {i['target'][1]}"[:48] for i in shown],
        col_titles=["a (one pair shown)", "- b", "+ c", "= composite (family mean)", "true target", "pixel arithmetic"],
        title=title,
        cell=1.2,
    )


def main():
    params = load_params()
    cfg, variants = params.compose, params.data.variants
    # Every input is read and every name checked before anything is written.
    originals = subset_originals(params.data.sources)
    recipes = check_compose_params(cfg, sorted(originals.named))
    subset = subset_pool(originals)
    everything = every_glyph_pool(subset)
    models = {name: load_model(model_file(name)) for name in MODEL_NAMES}
    benches = {"all": AnalogySet(everything, variants, SINGLE_PER_TARGET["all"]),
               "subset": AnalogySet(subset, variants, SINGLE_PER_TARGET["subset"])}

    net = J.train_judge(benches["all"], everything.split_of, variants)
    judges = {name: J.Judge(bench.pixels, net) for name, bench in benches.items()}  # one per pool, for both models

    metrics = {**benches["all"].counts(), "subset": benches["subset"].counts(), "recipes": {}}
    per_analogy = {}
    for name, model in models.items():
        latents, recon_mse, reconstructions = encode_drawings(model, everything)
        metrics[name], rows = benches["all"].score(model, latents, recon_mse, judges["all"], reconstructions)
        metrics["subset"][name], subset_rows = benches["subset"].score(model, latents, recon_mse, judges["subset"],
                                                                       reconstructions)
        per_analogy[name] = {"all": rows, "subset": subset_rows}
        by_name = {text: latents[key] for text, key in subset.named.items()}
        images = {text: subset.pixels[key] for text, key in subset.named.items()}
        metrics["recipes"][name] = draw_recipes(name, model, cfg, recipes, by_name, images)
        draw_strips(name, model, cfg, by_name, images)
        draw_analogies(COMPOSE / name / "analogies.png", f"{name}: held-out analogies of the subset (test targets)",
                       model, benches["subset"], subset_rows, latents, per_kind=6)
        draw_analogies(COMPOSE / name / "benchmark.png", f"{name}: held-out analogies of every glyph (test targets)",
                       model, benches["all"], rows, latents, per_kind=4)

    write_json(COMPOSE / "metrics.json", metrics)
    write_json(COMPOSE / "analogies.json", per_analogy, indent=1)
    for name in MODEL_NAMES:
        held_out = composition({"compose": metrics}, name)
        judged = " / ".join(f"{x.top1:.0%}" for x in (held_out.composite, held_out.pixel, held_out.reconstruction) if x)
        print(
            f"compose[{name}]: {held_out.n} held-out analogies (test targets), family mean: the target's latent is the "
            f"nearest in {held_out.latent_top1:.0%}; judge top-1 composite / pixel / reconstruction {judged}"
        )


if __name__ == "__main__":
    run_stage(main)
