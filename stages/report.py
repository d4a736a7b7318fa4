"""report: reports/report.md, the assignment answered from this run's files.

Builds a flat context of this run's figures (metrics, summaries, the torchinfo table, params) and
renders emoji_ae/templates/report.md.j2 with it. The committed artefacts of the tools and the
benchmark pipeline (the frontier figure, the benchmark table) are linked, never quoted, with the
commit they were made at and whether their code is this run's. Why the design is as it is lives in
docs/design.md, which the report links to. Also copies the run's every figure to reports/metrics.json
(in Git). Paths inside the report are relative to reports/.
"""

import pandas as pd
import yaml

from emoji_ae.config import load_params, run_stage
from emoji_ae.files import read_json, read_text, write_json, write_text
from emoji_ae.markdown import judge_table, mse_table, render, table
from emoji_ae.metrics import accuracy_interval, wrong_emoji
from emoji_ae.paths import (
    BENCHMARK,
    BENCHMARK_LOCK,
    BENCHMARK_SPEC,
    EVALUATE,
    EXTRA_SUMMARY,
    FIGURES,
    FRONTIER,
    METRICS,
    PARAMS,
    REPORT,
    SUMMARY,
    train_reports,
)
from emoji_ae.provenance import stale_lock, stale_record
from emoji_ae.results import recipe_scores

DESIGN = "../docs/design.md"  # relative to reports/
# The assignment's own recipe, shown first when params list it.
RECIPE = "crying cat face - crying face + face with tears of joy"


def frame(rows: dict, index: str) -> pd.DataFrame:
    table = pd.DataFrame(rows).T
    table.index.name = index
    return table


def when_made(record: dict, stale: list[str], path: str) -> str:
    """When a committed measurement was made, and whether its code and params are this run's."""
    if not record.get("commit"):
        return f"{path} is not committed yet"
    state = (
        f"**its code or params differ from this run's**: {stale[0]}" if stale else "its code and params are this run's"
    )
    return f"made on {record['date']} at `{record['commit']}`; {state}"


def committed_measurements() -> dict:
    raw = yaml.safe_load(PARAMS.read_text())
    benchmark = read_json(BENCHMARK) if BENCHMARK.exists() else {}
    frontier = read_json(FRONTIER) if FRONTIER.exists() else {}
    stale_frontier = (
        stale_record(frontier["made_with"], raw, str(FRONTIER)) if "made_with" in frontier else ["it records none"]
    )
    return {
        "benchmark_made": when_made(
            benchmark, stale_lock(BENCHMARK_LOCK, BENCHMARK_SPEC, raw) if benchmark else [], str(BENCHMARK)
        ),
        "frontier_made": when_made(frontier, stale_frontier, str(FRONTIER)),
    }


def data_context(params, summary: dict, extra: dict) -> dict:
    data = params.data
    reasons = sorted({reason for account in summary["sources"].values() for reason in account["skipped"]})
    intake = {
        source: {
            "rows": a["rows"],
            "used": a["used"],
            "filtered out": a["filtered_out"],
            **{f"skipped: {r}": a["skipped"].get(r, 0) for r in reasons},
        }
        for source, a in summary["sources"].items()
    }
    return {
        "sources": ", ".join(f"`{s}`" for s in data.sources),
        "intake": table(frame(intake, "source"), "d"),
        "images": summary["images"],
        "emoji": summary["emoji"],
        "per_source": table(frame(summary["per_source"], "source"), "d"),
        "counts": table(frame(summary["per_split"], "split"), "d"),
        "test_emoji": summary["emoji_per_split"]["test"],
        "test_originals": sum(summary["per_split"]["test"].values()),
        "pretrain_images": extra["pretrain_images"],
        "extra_sources": ", ".join(f"`{s}`" for s in params.extra.sources),
        "style_images": ", ".join(f"{n} {s}" for s, n in extra["style_images"].items()),
        "glyphs": table(frame(extra["glyphs"], "source"), "d"),
    }


def training_context(params, metrics: dict, final: dict) -> dict:
    ae = metrics["ae"]
    per_class = pd.DataFrame({m: metrics[m]["test_mse_per_class"] for m in ("ae", "aux")}).rename_axis("class")
    hardest = per_class["ae"].idxmax()
    taught = [
        name for name in ("classify", "adversary", "invariance", "swap", "reader") if getattr(params.attribute, name)
    ]
    return {
        "shape": metrics["shape"],
        "shape_source": "by the rule from `latent`" if "auto" in (params.model.grid, params.model.attribute)
        else "as model.grid and model.attribute set it",
        "reference_seeds": metrics["reference"]["seeds"],
        "teachers": ", ".join(f"`attribute.{n}`" for n in taught) or "none of its teachers (all weights 0)",
        "final_train_mse": final["ae"]["train"]["mse"],
        "final_val_mse": final["ae"]["val"]["mse"],
        "per_class": table(per_class),
        "hardest": hardest,
        "hardest_mse": per_class["ae"][hardest],
        "val_over_train": final["ae"]["val"]["mse"] / final["ae"]["train"]["mse"],
        "refine_change": 100 * (ae["test_mse"] / ae["test_mse_one_pass"] - 1),
    }


def aux_context(params, final: dict, confusion: list) -> dict:
    names = [rule.name for rule in params.data.classes]
    low, high = accuracy_interval(confusion, params.seed)
    counts = pd.crosstab(
        pd.Categorical([c["actual"] for c in confusion], names),
        pd.Categorical([c["predicted"] for c in confusion], names),
        dropna=False,
    ).rename_axis("true \\ predicted")
    rules = "\n".join(
        f"{i}. **{r.name}**: " + (f"the name holds any of *{', '.join(r.words)}*" if r.words else "everything else")
        for i, r in enumerate(params.data.classes, start=1)
    )
    return {
        "class_rules": rules,
        "n_classes": len(names),
        "aux_final_train_acc": final["aux"]["train"]["acc"],
        "aux_final_val_acc": final["aux"]["val"]["acc"],
        "accuracy_low": low,
        "accuracy_high": high,
        "confusion": table(counts),
        "wrong_emoji": wrong_emoji(confusion) or "none",
    }


def composition_context(params, metrics: dict) -> dict:
    cfg = params.compose
    scored = recipe_scores(metrics, "ae")
    rows = {
        recipe: {
            "real answer": r["answer"],
            "composite MSE (ae)": r["mse"],
            "composite MSE (aux)": recipe_scores(metrics, "aux")[recipe]["mse"],
            "pixel arithmetic": r["pixel_mse"],
            "copying the last input": r["copy_mse"],
        }
        for recipe, r in scored.items()
    }
    recipes = list(cfg.recipes)
    return {
        "recipes": recipes,
        "recipe": RECIPE if RECIPE in recipes else recipes[0],
        "recipe_index": recipes.index(RECIPE) + 1 if RECIPE in recipes else 1,
        "concepts": "\n".join(f"- **{k}** = mean of {', '.join(v)}" for k, v in cfg.concepts.items()),
        "recipe_scores": table(frame(rows, "recipe (scored where its answer is an emoji of the data)")) if rows else "",
        "judge_ae": judge_table(metrics, "ae"),
        "judge_aux": judge_table(metrics, "aux"),
        "judge_ae_val": judge_table(metrics, "ae", "val"),
        "mse_table": mse_table(metrics),
    }


def main():
    params, metrics = load_params(), read_json(FIGURES)
    summary, extra = read_json(SUMMARY), read_json(EXTRA_SUMMARY)
    final = {name: read_json(train_reports(name) / "metrics.json") for name in ("ae", "aux")}
    context = {
        "p": params,
        "design": DESIGN,
        "ae": metrics["ae"],
        "aux": metrics["aux"],
        "reference": metrics["reference"],
        "architecture": read_text(train_reports("ae") / "architecture.txt").strip(),
        **data_context(params, summary, extra),
        **training_context(params, metrics, final),
        **aux_context(params, final, read_json(EVALUATE / "confusion.json")),
        **composition_context(params, metrics),
        **committed_measurements(),
    }
    write_text(REPORT, render("report.md.j2", context))
    write_json(METRICS, metrics)  # the run's every figure in Git, beside the report that quotes them
    print(f"report: {REPORT}, {METRICS}")


if __name__ == "__main__":
    run_stage(main)
