"""What DVC shows a reviewer: only the headline figures as metrics (a table a person can read),
the most important first, and each training curve once."""

import json

import yaml

from tests.conftest import REPO

PIPELINES = ("dvc.yaml", "benchmark/dvc.yaml")


def declared(kind: str) -> list[str]:
    return [out if isinstance(out, str) else next(iter(out)) for pipeline in PIPELINES
            for stage in yaml.safe_load((REPO / pipeline).read_text())["stages"].values() for out in stage.get(kind, [])]


def leaves(tree: dict, prefix: str = "") -> list[str]:
    return [name for key, value in tree.items()
            for name in (leaves(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"])]


def test_only_the_headline_is_declared_as_metrics():
    assert declared("metrics") == ["reports/headline.json"]


def test_the_committed_headline_holds_at_most_40_figures_led_by_the_test_mse():
    names = leaves(json.loads((REPO / "reports/headline.json").read_text()))
    assert len(names) <= 40 and names[0] == "ae.test_mse"
    assert {"judge_ae.top1", "judge_ae.top5", "aux.test_accuracy", "reference.test_mse"} <= set(names)


def test_each_curve_is_declared_once():
    drawn = {path for plot in yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"] for spec in plot.values() for path in spec["y"]}
    stage_plots = declared("plots")
    assert drawn and not [path for path in drawn if any(path == p or path.startswith(f"{p}/") for p in stage_plots)]
