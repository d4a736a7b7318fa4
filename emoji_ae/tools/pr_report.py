"""pr_report: the pull-request review, step by step, as .github/workflows/pr.yaml runs it.

    python -m emoji_ae.tools.pr_report pull                              # the PR's outputs from the team's remote
    python -m emoji_ae.tools.pr_report check                             # fail if dvc.lock or the metrics are stale
    python -m emoji_ae.tools.pr_report comment --base origin/main > pr_comment.md
    python -m emoji_ae.tools.pr_report post pr_comment.md                # with CML; degrades on a fork's PR

The comment compares what the PR committed with what the base committed: nothing is retrained.
A change no larger than its tolerance (emoji_ae/noise.py, from the runs in reports/noise.json that
`python -m emoji_ae.tools.noise` measured) is shown as within noise, not as better or worse. Figures come before and
after, from `dvc plots diff`. Run it locally to preview a comment; `comment` needs no network.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

from emoji_ae.config import PipelineError, run_stage
from emoji_ae.noise import leaves, tolerance
from emoji_ae.paths import COMPOSE, EVALUATE, HEADLINE, NOISE

LOWER_IS_BETTER = ("mse", "vs_reference", "vs_ae")  # every other headline figure is better higher
FIGURES = [("Reconstructions", EVALUATE / "reconstructions.png"), ("Learning curves", EVALUATE / "learning_curves.png"),
           ("Analogies", COMPOSE / "ae" / "analogies.png")]
FIGURE_DIR = Path("pr_figures")
MISSING_DATA = ("deleted", "not in cache")


def run(*command: str) -> str:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        lines = (result.stderr or result.stdout).strip().splitlines() or ["no output"]
        raise PipelineError(f"{' '.join(command[:3])} failed: {lines[-1]}")
    return result.stdout


# --- pull and check -------------------------------------------------------------------------


def pull() -> None:
    """`dvc pull` from the team's remote: DVC_REMOTE_URL (with DVC_REMOTE_USER and _PASSWORD) when
    set, else the default remote in .dvc/config. Without either (a fork's PR gets no secrets),
    say so and go on: `check` still compares the code and params with dvc.lock."""
    url = os.environ.get("DVC_REMOTE_URL")
    if url:
        run("dvc", "remote", "add", "--local", "--force", "--default", "ci", url)
        for key in ("user", "password"):
            if os.environ.get(f"DVC_REMOTE_{key.upper()}"):
                run("dvc", "remote", "modify", "--local", "ci", key, os.environ[f"DVC_REMOTE_{key.upper()}"])
    elif subprocess.run(["dvc", "remote", "default"], capture_output=True, text=True).returncode:  # none set
        print("pr_report: no DVC remote configured (set DVC_REMOTE_URL); checking without the PR's data")
        return
    result = subprocess.run(["dvc", "pull"], capture_output=True, text=True)
    if result.returncode:
        raise PipelineError(
            "dvc pull failed: the team's remote lacks outputs of this commit, or cannot be reached "
            f"({(result.stderr.strip().splitlines() or ['no output'])[-1]}); run `dvc push` where they were made"
        )


def pipeline_outputs(lock: dict) -> set[str]:
    return {out["path"] for stage in lock.get("stages", {}).values() for out in stage.get("outs", [])}


def is_output(path: str, outputs: set[str]) -> bool:
    return any(path == out or path.startswith(f"{out}/") for out in outputs)


def stale_reasons(status: dict, outputs: set[str]) -> dict[str, list[str]]:
    """What `dvc status --json` says is out of date, per stage, less what only a pull would
    fix: a pipeline output that is missing here is not staleness, an edited one is."""
    reasons = {}
    for stage, entries in status.items():
        for entry in entries:
            if isinstance(entry, str):  # "changed command"
                reasons.setdefault(stage, []).append(entry)
                continue
            for kind, changes in entry.items():
                for path, change in changes.items():
                    if isinstance(change, dict):  # params: {key: "modified"}
                        reasons.setdefault(stage, []).extend(f"param {key} {what}" for key, what in change.items())
                    elif not (change in MISSING_DATA and is_output(path, outputs)):
                        reasons.setdefault(stage, []).append(f"{path} {change}")
    return reasons


def check() -> None:
    """Fail, in one line, when the committed dvc.lock or metrics do not match the PR's code and params."""
    lock = yaml.safe_load(Path("dvc.lock").read_text()) if Path("dvc.lock").exists() else {}
    reasons = stale_reasons(json.loads(run("dvc", "status", "--json") or "{}"), pipeline_outputs(lock))
    if reasons:
        detail = "; ".join(f"{stage}: {', '.join(why)}" for stage, why in reasons.items())
        raise PipelineError(
            f"this commit's dvc.lock and metrics are stale ({detail}): run `dvc repro`, commit dvc.lock "
            "and reports/, and `dvc push`"
        )
    print("pr_report: dvc.lock and the committed metrics match the code and params")


# --- the comment -----------------------------------------------------------------------------


def committed_json(rev: str, path: Path) -> dict:
    result = subprocess.run(["git", "show", f"{rev}:{path}"], capture_output=True, text=True)
    return json.loads(result.stdout) if result.returncode == 0 else {}


def label(old, new, better: str, allowed) -> str:
    """The change column: signed delta, relative change, and better / worse / within noise."""
    if old is None or new is None:
        return "new" if old is None else "removed"
    delta = new - old
    if delta == 0:
        return "no change"
    relative = f" ({delta / old:+.1%})" if old else ""
    if allowed is None:
        verdict = " (noise not measured)"
    elif abs(delta) <= allowed:
        verdict = f" (within noise, ±{allowed:.3g})"
    else:
        verdict = " (better)" if (delta < 0) == (better == "lower") else " (worse)"
    return f"{delta:+.4g}{relative}{verdict}"


def headline_table(base: dict, head: dict, noise: dict) -> str:
    """Every figure of reports/headline.json (the DVC metrics), base against head, with its noise."""
    rows = ["| metric | base | this change | change |", "|---|---:|---:|---|"]
    fmt = lambda v: "-" if v is None else f"{v:.4g}"  # noqa: E731
    old, new = leaves(base), leaves(head)
    for key in [*new, *(k for k in old if k not in new)]:
        better = "lower" if any(word in key for word in LOWER_IS_BETTER) else "higher"
        allowed = tolerance(noise.get("metrics", {}).get(key, {}).get("values", []))
        rows.append(
            f"| {key} | {fmt(old.get(key))} | {fmt(new.get(key))} | "
            f"{label(old.get(key), new.get(key), better, allowed)} |"
        )
    return "\n".join(rows)


def noise_note(noise: dict) -> str:
    if not noise:
        return f"No noise measurement is committed ({NOISE}): `python -m emoji_ae.tools.noise` makes one."
    return (
        f"Within noise: no larger than the tolerance (emoji_ae/noise.py) from {len(noise['runs'])} runs that differ "
        "only "
        f"in training's luck ({NOISE}, measured {noise['date']} on {noise['machine']})."
    )


def figures_before_and_after(base: str, head: str) -> str:
    """`dvc plots diff` writes each figure as base and head committed it; the comment shows both."""
    shutil.rmtree(FIGURE_DIR, ignore_errors=True)
    targets = [str(path) for _, path in FIGURES]
    shown = json.loads(run("dvc", "plots", "diff", base, head, "--json", "-o", str(FIGURE_DIR), "--targets", *targets))[
        "data"
    ]
    rows = ["| figure | base | this change |", "|---|---|---|"]
    for title, path in FIGURES:
        by_rev = {entry["revisions"][0]: os.path.relpath(entry["url"]) for entry in shown.get(str(path), [])}
        cells = [f"![{title}, {rev}]({by_rev[rev]})" if rev in by_rev else "(none)" for rev in (base, head)]
        rows.append(f"| {title} | {cells[0]} | {cells[1]} |")
    return "\n".join(rows)


def build_comment(base: str, head: str) -> str:
    noise = committed_json(head, NOISE)
    metrics_diff = run("dvc", "metrics", "diff", base, head, "--md", "--precision", "5").strip() or "No metric changed."
    params_diff = run("dvc", "params", "diff", base, head, "--md").strip() or "No parameter changed."
    return f"""## Pipeline results: `{head}` against `{base}`

Both sides as committed: nothing was retrained for this comment.

{headline_table(committed_json(base, HEADLINE), committed_json(head, HEADLINE), noise)}

{noise_note(noise)}

<details><summary>All metrics (dvc metrics diff)</summary>

{metrics_diff}

</details>

### Parameters (dvc params diff)

{params_diff}

### Figures, before and after (dvc plots diff)

{figures_before_and_after(base, head)}
"""


# --- posting ----------------------------------------------------------------------------------


def pull_request_from_fork(event_path: str | None) -> bool:
    if not event_path or not Path(event_path).exists():
        return False
    pr = json.loads(Path(event_path).read_text()).get("pull_request") or {}
    head, base = (pr.get(side, {}).get("repo") or {} for side in ("head", "base"))
    return bool(head) and head.get("full_name") != base.get("full_name")


def post(comment: Path) -> None:
    """Post (or update) the PR comment with CML. A fork's PR gets a read-only token, and CML may be
    absent or refused: then the comment goes to the job summary with a warning, and the job passes."""
    why = None
    if pull_request_from_fork(os.environ.get("GITHUB_EVENT_PATH")):
        why = "this pull request comes from a fork, whose token cannot comment"
    elif shutil.which("cml") is None:
        why = "CML is not installed (iterative/setup-cml)"
    else:
        result = subprocess.run(
            ["cml", "comment", "update", "--publish", "--target=pr", str(comment)], capture_output=True, text=True
        )
        if result.returncode == 0:
            print("pr_report: comment posted")
            return
        why = f"cml comment failed: {(result.stderr.strip().splitlines() or ['no output'])[-1]}"
    print(f"::warning::pr_report: not posted, {why}; the comment is in the job summary")
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a") as f:
            f.write(comment.read_text())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("pull", help="dvc pull from the team's remote (DVC_REMOTE_URL, or the default remote)")
    commands.add_parser("check", help="fail if the committed dvc.lock or metrics are stale")
    comment = commands.add_parser("comment", help="the comment's Markdown, on stdout")
    comment.add_argument("--base", required=True, help="the revision to compare against, e.g. origin/main")
    comment.add_argument("--head", default="HEAD", help="the revision to report on (default: HEAD)")
    posting = commands.add_parser("post", help="post the comment with CML, or put it in the job summary")
    posting.add_argument("comment", type=Path)
    args = parser.parse_args()
    if args.command == "pull":
        pull()
    elif args.command == "check":
        check()
    elif args.command == "comment":
        sys.stdout.write(build_comment(args.base, args.head))
    else:
        post(args.comment)


if __name__ == "__main__":
    run_stage(main)
