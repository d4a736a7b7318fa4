"""The report's and the model cards' Markdown: their shared tables, and the rendering of their
Jinja2 templates (emoji_ae/templates) with a flat context of figures."""

import jinja2
import pandas as pd

from emoji_ae.results import IMAGES, KINDS, Composition, composition


def render(template: str, context: dict) -> str:
    """emoji_ae/templates/<template> with `context`; a name the template uses and the context lacks is an error."""
    environment = jinja2.Environment(loader=jinja2.PackageLoader("emoji_ae"), undefined=jinja2.StrictUndefined,
                                     keep_trailing_newline=True, autoescape=False)
    return environment.get_template(template).render(context)


def table(frame: pd.DataFrame, floatfmt: str = ".4f") -> str:
    """A DataFrame as a Markdown table, its index as the first column."""
    header = "| " + " | ".join([frame.index.name or "", *map(str, frame.columns)]) + " |"
    rule = "|" + "---|" * (len(frame.columns) + 1)
    rows = ["| " + " | ".join([str(i), *[format(v, floatfmt) if isinstance(v, float) else str(v) for v in row]]) + " |"
            for i, row in zip(frame.index, frame.itertuples(index=False))]
    return "\n".join([header, rule, *rows])


def images_cell(scores: Composition, key: str, fmt: str = ".0%") -> str:
    """'composite / pixel arithmetic / reconstruction' of one judge figure; '-' where none was judged."""
    values = [getattr(getattr(scores, image), key) if getattr(scores, image) else None for image in IMAGES]
    return " / ".join("-" if v is None else format(v, fmt) for v in values) if scores.n else "-"


JUDGE_ROWS = (
    ("true emoji is the nearest drawing (top-1)", "top1", ".0%"),
    ("true emoji among the 5 nearest (top-5)", "top5", ".0%"),
    ("SSIM to the true emoji", "ssim", ".2f"),
    ("attribute read by the judge's classifier", "attribute", ".0%"),
)


def judge_table(metrics: dict, model: str, split: str = "test") -> str:
    """The judge's figures per kind of family-mean analogy (composite / pixel arithmetic /
    reconstruction), and where the latent arithmetic lands (the target's latent is the nearest)."""
    scores = {kind: composition(metrics, model, split, kind) for kind in KINDS}
    header = (
        "| composite / pixel arithmetic / reconstruction | " + " | ".join(f"{k} ({scores[k].n})" for k in KINDS) + " |"
    )
    rows = [
        f"| {label} | " + " | ".join(images_cell(scores[k], key, fmt) for k in KINDS) + " |"
        for label, key, fmt in JUDGE_ROWS
    ]
    target = "| attribute read from the real target | " + " | ".join(
        "-" if scores[k].target_attribute is None else format(scores[k].target_attribute, ".0%") for k in KINDS) + " |"
    latent = "| latent arithmetic: the target's own latent is the nearest | " + " | ".join(
        format(scores[k].latent_top1, ".0%") if scores[k].n else "-" for k in KINDS) + " |"
    return "\n".join([header, "|---" * (len(KINDS) + 1) + "|", *rows, target, latent])


MSE_ROWS = (
    ("analogies (one per family and target)", "n", "d"),
    ("composite MSE / pixel arithmetic's", "vs_pixel", ".2f"),
    ("composite beats pixel arithmetic by MSE", "beats_pixel", ".0%"),
    ("target's latent in the 5 nearest", "latent_top5", ".0%"),
    ("arithmetic gap (composite MSE / reconstruction MSE)", "gap", ".2f"),
)


def mse_table(metrics: dict, models=("ae", "aux")) -> str:
    """The held-out family-mean analogies by MSE, per model and kind, both pools: the breakdown behind the judge."""
    columns = [
        (model, pool, kind)
        for model in models
        for pool, kinds in (("all", KINDS), ("subset", ("all",)))
        for kind in kinds
    ]
    scores = {column: composition(metrics, column[0], "test", column[2], column[1]) for column in columns}
    header = "| | " + " | ".join(f"{m}, {k}" + (" (subset)" if p == "subset" else "") for m, p, k in columns) + " |"
    rows = [
        f"| {label} | "
        + " | ".join(format(getattr(scores[c], key), fmt) if scores[c].n else "-" for c in columns)
        + " |"
        for label, key, fmt in MSE_ROWS
    ]
    return "\n".join([header, "|---" * (len(columns) + 1) + "|", *rows])
