"""The pull-request comment: what a change did to the metrics, params and figures.

    python -m stages.tools.pr_report --base origin/main [--head HEAD] > pr_comment.md

Not a pipeline stage: CI runs it after `dvc repro` (see .github/workflows/pr.yaml) and posts
the Markdown with CML, which uploads the figures it links. Everything it reads is in Git or
the workspace, so it needs no network.
"""

import argparse
import json
import subprocess

from stages.lib.config import PipelineError, run_stage
from stages.lib.paths import COMPOSE, EVALUATE, METRICS

HEADLINE = [
    ("ae.test_mse", "ae test MSE", "lower"),
    ("ae.test_psnr", "ae test PSNR (dB)", "higher"),
    ("aux.test_mse", "aux test MSE", "lower"),
    ("aux.test_accuracy", "aux test accuracy", "higher"),
    ("compose.ae.family_mean.beats_pixel", "composites beating pixel arithmetic (ae)", "higher"),
    ("compose.ae.family_mean.top5", "analogy target in top 5 (ae)", "higher"),
]
FIGURES = [
    ("Learning curves", EVALUATE / "learning_curves.png"),
    ("Reconstructions", EVALUATE / "reconstructions.png"),
    ("Analogies", COMPOSE / "ae" / "analogies.png"),
]


def git(*args: str) -> str:
    result = subprocess.run(["git", *args], capture_output=True, text=True)
    if result.returncode:
        raise PipelineError(f"git {' '.join(args)} failed: {result.stderr.strip().splitlines()[-1]}")
    return result.stdout


def dvc(*args: str) -> str:
    result = subprocess.run(["dvc", *args], capture_output=True, text=True)
    if result.returncode:
        raise PipelineError(f"dvc {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout.strip()


def metrics_at(rev: str | None) -> dict:
    text = git("show", f"{rev}:{METRICS}") if rev else METRICS.read_text()
    return json.loads(text)


def lookup(metrics: dict, dotted: str):
    for key in dotted.split("."):
        if not isinstance(metrics, dict) or key not in metrics:
            return None
        metrics = metrics[key]
    return metrics


def headline_table(base: dict, head: dict) -> str:
    rows = ["| metric | base | this change | change |", "|---|---:|---:|---|"]
    for key, label, better in HEADLINE:
        old, new = lookup(base, key), lookup(head, key)
        if old is None or new is None:
            change = "new" if old is None else "removed"
        else:
            delta = new - old
            relative = f" ({delta / old:+.1%})" if old else ""
            improved = (delta < 0) == (better == "lower")
            mark = "" if delta == 0 else (" (better)" if improved else " (worse)")
            change = f"{delta:+.4g}{relative}{mark}"
        fmt = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
        rows.append(f"| {label} | {fmt(old)} | {fmt(new)} | {change} |")
    return "\n".join(rows)


def build_report(base: str, head: str | None) -> str:
    revs = [base] + ([head] if head else [])
    shown_head = head or "workspace"
    metrics_diff = dvc("metrics", "diff", *revs, "--md", "--precision", "5") or "No metric changed."
    params_diff = dvc("params", "diff", *revs, "--md") or "No parameter changed."
    figures = "\n\n".join(f"**{title}**\n\n![{title}]({path})" for title, path in FIGURES)
    return f"""## Pipeline results: `{shown_head}` against `{base}`

{headline_table(metrics_at(base), metrics_at(head))}

<details><summary>All metrics (dvc metrics diff)</summary>

{metrics_diff}

</details>

### Parameters (dvc params diff)

{params_diff}

### Figures ({shown_head})

{figures}
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base", required=True, help="the revision to compare against, e.g. origin/main")
    parser.add_argument("--head", help="the revision to report on (default: the workspace)")
    args = parser.parse_args()
    print(build_report(args.base, args.head))


if __name__ == "__main__":
    run_stage(main)
