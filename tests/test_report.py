"""What the report and the model cards are made of: the metrics helpers, the shared Markdown tables
and the templates' strictness (the rendered report itself: tests/test_pipeline.py)."""

import jinja2
import pandas as pd
import pytest

from emoji_ae.markdown import judge_table, mse_table, render, table
from emoji_ae.metrics import accuracy_interval, confusion_records, wrong_emoji
from emoji_ae.results import composition


def image(emoji: str, actual: str, predicted: str) -> dict:
    return {"actual": actual, "predicted": predicted, "emoji": emoji}


def judged_scores(top1: float) -> dict:
    figures = {"top1": top1, "top5": 0.5, "ssim": 0.4, "attribute": None}
    return {
        "n": 4,
        "target": {"attribute": 0.8},
        "composite": figures,
        "pixel": {**figures, "top1": 0.25},
        "reconstruction": {**figures, "top1": 0.75},
    }


def metrics_tree() -> dict:
    """A metrics tree as evaluate writes it, small: one model's held-out family-mean analogies."""
    mse = {"n": 4, "top1": 0.5, "top5": 1.0, "beats_pixel": 0.75, "vs_pixel": 0.9, "gap": 3.0}
    split = {"family_mean": mse, "family_mean_by_kind": {"name": mse, "variant": {"n": 0}, "style": mse},
             "judge": {"all": judged_scores(0.5), "name": judged_scores(1.0), "style": judged_scores(0.0)}}
    return {"compose": {"ae": {"test": split}, "subset": {"ae": {"test": split}}}}


def test_the_judge_table_gives_composite_pixel_and_reconstruction_per_kind_and_the_latent_rank():
    table = judge_table(metrics_tree(), "ae").splitlines()
    assert (
        table[0] == "| composite / pixel arithmetic / reconstruction | all (4) | name (4) | variant (0) | style (4) |"
    )
    assert (
        table[2]
        == "| true emoji is the nearest drawing (top-1) | 50% / 25% / 75% | 100% / 25% / 75% | - | 0% / 25% / 75% |"
    )
    assert table[5] == "| attribute read by the judge's classifier | - / - / - | - / - / - | - | - / - / - |"
    assert table[-1] == "| latent arithmetic: the target's own latent is the nearest | 50% | 50% | - | 50% |"
    assert composition(metrics_tree(), "ae", "test", "style").composite.top1 == 0.0


def test_the_mse_breakdown_is_one_table_of_both_pools():
    lines = mse_table(metrics_tree(), models=("ae",)).splitlines()
    assert lines[0] == "| | ae, all | ae, name | ae, variant | ae, style | ae, all (subset) |"
    assert lines[3] == "| composite MSE / pixel arithmetic's | 0.90 | 0.90 | - | 0.90 | 0.90 |"


def test_a_template_that_names_a_figure_the_context_lacks_fails_instead_of_writing_a_blank(monkeypatch):
    from tests.conftest import REPO

    monkeypatch.chdir(REPO)
    with pytest.raises(jinja2.UndefinedError, match="'license' is undefined"):
        render("card.md.j2", {})


def test_markdown_tables_format_floats_and_keep_the_index():
    frame = pd.DataFrame({"mse": [0.012345, 0.5], "n": [3, 4]}, index=pd.Index(["ae", "aux"], name="model"))
    assert table(frame).splitlines() == [
        "| model | mse | n |",
        "|---|---|---|",
        "| ae | 0.0123 | 3 |",
        "| aux | 0.5000 | 4 |",
    ]


def test_confusion_records_name_the_classes_and_only_wrong_emoji_are_listed():
    confusion = confusion_records([0, 1, 1], [0, 1, 0], ["dog face", "grinning face", "devil face"], ["animal", "face"])
    assert confusion == [image("dog face", "animal", "animal"), image("grinning face", "face", "face"),
                         image("devil face", "face", "animal")]
    assert wrong_emoji(confusion) == "devil face 1 of 1 (face, read as animal)"
    assert wrong_emoji(confusion[:2]) == ""


def test_the_accuracy_interval_resamples_whole_emoji():
    # 10 emoji of 5 images each; one is wrong on every image: 90% accuracy.
    confusion = [image(f"emoji {i}", "face", "animal" if i == 0 else "face") for i in range(10) for _ in range(5)]
    low, high = accuracy_interval(confusion, seed=0)
    # Resampling emoji, the wrong one appears 0 to 3+ times in a draw of 10; resampling the 50 images
    # independently would give a much narrower interval.
    assert low <= 0.7 and high == 1.0
    assert accuracy_interval(confusion, seed=0) == (low, high)


def test_a_classifier_right_on_every_emoji_gets_a_point_interval():
    confusion = [image(f"emoji {i}", "face", "face") for i in range(4) for _ in range(3)]
    assert accuracy_interval(confusion, seed=0) == (1.0, 1.0)
