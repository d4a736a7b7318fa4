"""What DVC shows a reviewer: the headline figures first, and each training curve once, with every
Git-tracked output of a costly stage declared as metrics or plots (DVC leaves a stage with any
other uncached output out of its run-cache)."""

import json

import yaml

from tests.conftest import REPO

PIPELINES = ("dvc.yaml", "benchmark/dvc.yaml")


def stages():
    return [
        stage for pipeline in PIPELINES for stage in yaml.safe_load((REPO / pipeline).read_text())["stages"].values()
    ]


def name_of(out) -> str:
    return out if isinstance(out, str) else next(iter(out))


def leaves(tree: dict, prefix: str = "") -> list[str]:
    return [name for key, value in tree.items()
            for name in (leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"])]


def test_the_committed_headline_holds_at_most_40_figures_led_by_the_test_mse():
    names = leaves(json.loads((REPO / "reports/headline.json").read_text()))
    assert len(names) <= 40 and names[0] == "ae.test_mse"
    assert {"judge_ae.top1", "judge_ae.pixel_top1", "aux.test_accuracy", "reference.test_mse"} <= set(names)
    assert (
        name_of(yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]["evaluate"]["metrics"][0])
        == "reports/headline.json"
    )


def test_each_curve_is_declared_once_and_every_uncached_output_keeps_the_run_cache():
    assert "plots" not in yaml.safe_load(
        (REPO / "dvc.yaml").read_text()
    )  # no top-level plot draws a stage's curves again
    for stage in stages():
        uncached = [
            name_of(out)
            for out in stage.get("outs", [])
            if isinstance(out, dict) and not next(iter(out.values())).get("cache", True)
        ]
        # None, or the two stages that run nothing costly and put the run's figures in Git for review
        assert uncached in (
            [],
            ["reports/report.md", "reports/metrics.json"],
            ["reports/benchmark.md", "reports/benchmark.json"],
        ), uncached


def test_what_dvc_shows_as_metrics_is_the_headline_at_most_40_figures():
    """`dvc exp show` and `dvc metrics diff` read every declared metrics file: the headlines only."""
    declared = [name_of(m) for stage in stages() for m in stage.get("metrics", [])]
    assert declared == ["reports/headline.json", "reports/benchmark/headline.json"]
    assert sum(len(leaves(json.loads((REPO / path).read_text()))) for path in declared) <= 40
