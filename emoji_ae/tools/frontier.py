"""frontier: reconstruction against composition, across the designs tried, each a measured run.

    python -m emoji_ae.tools.frontier              # every design of DESIGNS, one `dvc exp run --temp` each
    python -m emoji_ae.tools.frontier --only "beta 1" "64 global values"   # these designs; the other points stay
    python -m emoji_ae.tools.frontier --redraw     # the figure again from reports/frontier.json
    python -m emoji_ae.tools.frontier --reuse      # designs already run as experiments are read, not run again

Each design is params.yaml with a few values replaced, run through the whole pipeline as a
temporary DVC experiment (the workspace stays as it is). Every point is scored on the validation
split, which is what designs are chosen by: one-pass reconstruction MSE, and the family-mean
composites on analogies whose target is a validation emoji: the judge's recognition (top-1 per
kind, beside pixel arithmetic's and the reconstruction's; emoji_ae/judge.py) and the MSE figures.
The workspace's own run (params.yaml as it is) is the default's point. Writes reports/frontier.json
(with the code and params it was made with, which a fast test compares with the repository's) and
reports/frontier.png; commit both, then `dvc repro` puts them in the report.
"""

import argparse
import json
import statistics
import subprocess

from emoji_ae.config import PipelineError, load_params, run_stage
from emoji_ae.figures import save_scatter
from emoji_ae.files import read_json, write_json
from emoji_ae.paths import FRONTIER, FRONTIER_FIGURE, METRICS
from emoji_ae.provenance import made_with, provenance
from emoji_ae.results import KINDS, composition

# Designs that trade reconstruction for composition, by family, each (family, params overrides). The
# earlier families (a variational latent, a two-level latent, critics, a test-time projection) were
# dominated and their code has left the training loop: reports/frontier.json keeps their points,
# each with the commit that measured it, and the figure still shows them.
CODE, SLOTS = "attribute code", "attribute slots"
DESIGNS = {  # the default (params.yaml) is the attribute code, classify 0.03, variant swaps and their reader
    "slots, teacher-forced labels": (SLOTS, ["attribute.slots=true"]),
    "slots, + adversary ramped over half of training": (
        SLOTS, ["attribute.slots=true", "attribute.adversary=0.01", "attribute.ramp=0.5"]
    ),
    "slots, + name words": (SLOTS, ["attribute.slots=true", "attribute.words=true"]),
}


# The stages whose code computes a point's figures (reports/metrics.json is evaluate's, copied by
# the report stage): what the frontier records as made with, and a fast test compares.
MEASURED_BY = (
    "prepare",
    "augment",
    "extra",
    "pretrain",
    "train_reference",
    "train_ae",
    "train_aux",
    "compose",
    "evaluate",
)


def point(design: str, family: str, overrides: list[str], metrics: dict) -> dict:
    """A design's validation figures: one-pass MSE, the latent arithmetic's, and the judge's per kind."""
    every = composition(metrics, "ae", "val")
    out = {
        "design": design,
        "family": family,
        "overrides": overrides,
        "val_mse_one_pass": metrics["ae"]["val_mse_one_pass"],
        "val_latent_top1": every.latent_top1,
        "val_beats_pixel": every.beats_pixel,
        "val_top5": every.latent_top5,
        "val_vs_pixel": every.vs_pixel,
        "val_gap": every.gap,
        "val_analogies": every.n,
    }
    if every.composite is None:
        return out
    out["judge"] = {}
    for kind in KINDS:  # recognition of the composite, by the picture (emoji_ae/judge.py)
        scores = composition(metrics, "ae", "val", kind)
        out["judge"][kind] = {"composite_top1": scores.composite.top1, "pixel_top1": scores.pixel.top1,
                              "reconstruction_top1": scores.reconstruction.top1, "latent_top1": scores.latent_top1}
    out["judge"]["all"].update(composite_top5=every.composite.top5, composite_ssim=every.composite.ssim,
                               composite_attribute=every.composite.attribute, target_attribute=every.target_attribute)
    return out


def family_of_default() -> str:
    """The family params.yaml's own design belongs to."""
    params = load_params()
    if params.shape.attribute:
        return SLOTS if params.attribute.slots else CODE
    return "analogy objective" if params.train.analogy else "spatial grid"


def run_design(design: str, overrides: list[str]) -> dict:
    """The pipeline with `overrides`, as a temporary experiment; its metrics."""
    name = experiment_name(design)
    subprocess.run(["dvc", "exp", "remove", name], capture_output=True)  # a previous run's point, if any
    # No --force: stages whose params and inputs were run before come back from the run-cache.
    command = ["dvc", "exp", "run", "--temp", "--name", name, *[a for o in overrides for a in ("-S", o)]]
    print(f"frontier: {design}: {' '.join(command)}", flush=True)
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise PipelineError(f"{' '.join(command)} failed: {(result.stderr.strip().splitlines() or ['no output'])[-1]}")
    ref = experiment_ref(name)
    if ref is None:
        raise PipelineError(f"no experiment named {name}")
    return experiment_metrics(ref)


def experiment_metrics(ref: str) -> dict:
    shown = subprocess.run(["git", "show", f"refs/exps/{ref}:{METRICS}"], capture_output=True, text=True)
    if shown.returncode:
        raise PipelineError(f"experiment {ref.rsplit('/', 1)[-1]} has no {METRICS}: {shown.stderr.strip()}")
    return json.loads(shown.stdout)


def measured_metrics(design: str, overrides: list[str], path: str | None, reuse: bool) -> tuple[dict, str | None]:
    """A design's reports/metrics.json: from `path`, from its experiment (with `reuse`), or from a new
    run; and, for a reused experiment, the commit it was run from (its point is that commit's)."""
    if path:
        return read_json(path), None
    ref = experiment_ref(experiment_name(design)) if reuse else None
    if ref is not None:
        first, rest, _ = ref.split("/", 2)  # DVC files an experiment under refs/exps/ab/cdef.../name
        return experiment_metrics(ref), (first + rest)[:7]
    return run_design(design, overrides), None


def experiment_name(design: str) -> str:
    return "frontier-" + "".join(c if c.isalnum() else "-" for c in design.lower()).strip("-")


def experiment_ref(name: str) -> str | None:
    """The Git ref DVC keeps an experiment under (refs/exps/<baseline>/<name>, less refs/exps/); None if none."""
    refs = subprocess.run(
        ["git", "for-each-ref", "--format=%(refname)", "refs/exps/"], capture_output=True, text=True
    ).stdout.split()
    return next((ref.removeprefix("refs/exps/") for ref in refs if ref.endswith(f"/{name}")), None)


def draw(points: list[dict]) -> None:
    """One-pass reconstruction against the judge's top-1 of composites, and against the latent
    arithmetic's rank (the target's latent is the nearest), coloured by family. Points measured
    before the judge have no such figure: reports/frontier.json keeps them, the figure cannot place them."""
    judged = [p for p in points if "judge" in p]
    pixel = statistics.median(p["judge"]["all"]["pixel_top1"] for p in judged) if judged else None
    rows = [
        {
            "mse": p["val_mse_one_pass"],
            "top1": p["judge"]["all"]["composite_top1"],
            "group": p["family"],
            "latent": p.get("val_latent_top1"),
            "label": f"{p['family']}: {p['design']} ({p['commit']})",
        }
        for p in judged
    ]
    panels = [{"x": "mse", "y": "top1", "xlabel": "validation MSE, one encoder pass (lower: reconstructs better)",
               "ylabel": "val analogies: composite recognised (judge top-1)",
               "reference": (pixel, "pixel arithmetic") if pixel is not None else None}]
    if any(r["latent"] is not None for r in rows):
        panels.append({"x": "mse", "y": "latent", "xlabel": "validation MSE, one encoder pass",
                       "ylabel": "val analogies: the target's latent is the nearest"})
        rows = [{**r, "latent": r["latent"] if r["latent"] is not None else float("nan")} for r in rows]
    save_scatter(FRONTIER_FIGURE, panels, rows, title="Reconstruction against composition, by design")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only", nargs="+", metavar="DESIGN", help="run only these designs (names of DESIGNS); keep the other points"
    )
    parser.add_argument(
        "--redraw", action="store_true", help="redraw reports/frontier.png from reports/frontier.json; run nothing"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="read a design's experiment where one exists (refs/exps), run only the others",
    )
    parser.add_argument(
        "--metrics",
        nargs="+",
        default=[],
        metavar="DESIGN=PATH",
        help="take a design's point from reports/metrics.json of a run made elsewhere (another workspace or machine)",
    )
    args = parser.parse_args()
    if args.redraw:
        return draw(read_json(FRONTIER)["points"])
    unknown = [name for name in args.only or [] if name not in DESIGNS]
    if unknown:
        raise PipelineError(f"--only: no design named {unknown[0]!r} (designs: {', '.join(repr(d) for d in DESIGNS)})")
    chosen = {name: design for name, design in DESIGNS.items() if not args.only or name in args.only}
    points = [point("default (params.yaml)", family_of_default(), [], read_json(METRICS))]
    given = dict(item.split("=", 1) for item in args.metrics)
    for name, (family, overrides) in chosen.items():
        metrics, commit = measured_metrics(name, overrides, given.get(name), args.reuse)
        points.append({**point(name, family, overrides, metrics), **({"commit": commit} if commit else {})})
    if FRONTIER.exists():  # every design not run this time keeps its recorded point, with the commit that measured it
        kept = read_json(FRONTIER)
        points += [{"commit": kept["commit"], **p} for p in kept["points"]
                   if p["design"] not in chosen and p["design"] != "default (params.yaml)"]
    command = " ".join(
        [
            "python -m emoji_ae.tools.frontier",
            *(["--only", *(f'"{n}"' for n in args.only)] if args.only else []),
            *(["--reuse"] if args.reuse else []),
            *(["--metrics", *(f'"{m}"' for m in args.metrics)] if args.metrics else []),
        ]
    )
    measured = provenance()
    for p in points:  # this run's points; a kept or reused point carries the commit it was measured at
        p.setdefault("commit", measured["commit"])
    write_json(FRONTIER, {**measured, "made_with": made_with(MEASURED_BY), "command": command, "points": points})
    draw(points)
    for p in points:
        judged = " ".join(
            f"{kind} {v['composite_top1']:.0%}/{v['pixel_top1']:.0%}" for kind, v in p.get("judge", {}).items()
        )
        print(
            f"frontier: {p['family']}: {p['design']}: val MSE {p['val_mse_one_pass']:.4f}, beats pixel "
            f"{p['val_beats_pixel']:.0%}, "
            f"MSE {p['val_vs_pixel']:.2f}x pixel arithmetic's; judge top-1 composite/pixel: {judged or 'not judged'}"
        )


if __name__ == "__main__":
    run_stage(main)
