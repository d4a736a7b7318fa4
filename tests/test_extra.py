"""The extra stage: more emoji to learn from, never one the models are scored on."""

import json

import pandas as pd
import torch

from emoji_ae.config import load_params
from emoji_ae.data import SPLITS, base_emoji
from emoji_ae.files import read_split
from emoji_ae.model import build_autoencoder, load_model, seed_everything
from stages import augment, extra, prepare, pretrain
from tests.conftest import NAMES, default_params, synthetic_params, write_params, write_valhalla_parquet

VARIANTS = default_params()["data"]["variants"]


def with_other_set(tmp_path, names, held_out=0.0, share=1.0, mirror=False) -> dict:
    """Tiny params on the synthetic subset, with another set of these names as `extra.sources`."""
    params = synthetic_params(write_valhalla_parquet(tmp_path / "subset.parquet"))
    params["extra"] = {
        "sources": [str(write_valhalla_parquet(tmp_path / "other.parquet", names=names))],
        "mirror": mirror,
        "held_out": {"val": held_out, "test": held_out},
        "share": share,
    }
    return params


def test_extra_learns_from_other_emoji_but_never_a_validation_or_test_emoji_or_a_variant_of_one(workdir, tmp_path):
    # Another set: the subset's emoji in its own drawing, a variant of each, and emoji beyond the subset.
    others = [*NAMES, *[f"man {n} type 3" for n in NAMES], "rocket", "red apple", "sun with face"]
    other = tmp_path / "other.parquet"
    params = with_other_set(tmp_path, others, mirror=True)
    write_params(workdir, params)
    prepare.main()
    extra.main()

    split_of = {b: s for s in SPLITS for b in pd.read_parquet(workdir / f"data/prepared/{s}.parquet")["base"]}
    learn = pd.read_parquet(workdir / "data/extra/pretrain.parquet")
    assert {split_of.get(base_emoji(t, VARIANTS)) for t in learn["text"]} <= {None, "train"}
    held_out = {b for b, s in split_of.items() if s in ("val", "test")}
    assert held_out and not held_out & set(learn["base"])
    assert {"rocket", "red apple", "alarm clock face", "grinning cat"} <= set(
        learn["text"]
    )  # beyond the subset, unfiltered
    assert (learn["label"] == -1).all() and learn["augmented"].sum() == len(learn) // 2  # each glyph and its mirror

    styles = pd.read_parquet(workdir / "data/extra/styles.parquet")
    assert sorted(styles["text"]) == sorted(split_of)  # the subset's emoji, as the other set draws them
    assert all(split_of[b] == s for b, s in zip(styles["base"], styles["split"]))
    summary = json.loads((workdir / "reports/extra/summary.json").read_text())
    counts = summary["glyphs"][str(other)]
    assert counts["glyphs"] == len(others) and counts["styles"] == len(styles)
    assert counts["pretrain"] == len(learn) // 2 and summary["pretrain_images"] == len(learn)
    assert counts["validation or test emoji"] == 2 * len(held_out)  # each held-out emoji and its variant


def test_a_share_of_the_other_emoji_is_held_out_with_all_its_variants_and_never_pretrained_on(workdir, tmp_path):
    bases = [f"thing number {i}" for i in range(40)]
    others = [*bases, *[f"{b} dark skin tone" for b in bases], *[f"woman {b}" for b in bases]]
    params = with_other_set(tmp_path, others, held_out=0.25)
    write_params(workdir, params)
    prepare.main()
    extra.main()

    learn = pd.read_parquet(workdir / "data/extra/pretrain.parquet")
    held = pd.read_parquet(workdir / "data/extra/held_out.parquet")
    assert set(held["split"]) == {"val", "test"} and 5 < held["base"].nunique() < 35  # a seeded share of the 40 bases
    assert not set(held["base"]) & set(learn["base"])
    assert all((held["base"] == b).sum() == 3 for b in held["base"].unique())  # each base with its skin tone and gender
    first = held.drop(columns="image")
    extra.main()
    assert (
        pd.read_parquet(workdir / "data/extra/held_out.parquet").drop(columns="image").equals(first)
    )  # the same share again


def test_a_share_of_the_other_emoji_is_read_whole_and_the_subsets_always(workdir, tmp_path):
    bases = [f"thing number {i}" for i in range(40)]
    others = [*NAMES, *bases, *[f"{b} dark skin tone" for b in bases], *[f"woman {b}" for b in bases]]
    params = with_other_set(tmp_path, others, held_out=0.25, share=0.5)
    write_params(workdir, params)
    prepare.main()
    extra.main()

    read = pd.concat(
        [pd.read_parquet(workdir / f"data/extra/{name}.parquet") for name in ("pretrain", "held_out", "styles")]
    )
    others_read = set(read["base"]) - set(NAMES)
    assert 5 < len(others_read) < 35  # a seeded share of the 40 other bases...
    assert all((read["base"] == b).sum() == 3 for b in others_read)  # ...each whole: skin tone and gender too
    styles = pd.read_parquet(workdir / "data/extra/styles.parquet")
    subset = {t for s in SPLITS for t in pd.read_parquet(workdir / f"data/prepared/{s}.parquet")["text"]}
    assert sorted(styles["text"]) == sorted(subset)  # the subset's own emoji, every one
    summary = json.loads((workdir / "reports/extra/summary.json").read_text())
    kept = set(read["base"]) | {base_emoji(t, VARIANTS) for t in subset}
    unread = [t for t in others if base_emoji(t, VARIANTS) not in kept]
    assert (
        summary["sources"][str(tmp_path / "other.parquet")]["filtered_out"] == len(unread) >= 3 * 5
    )  # counted, not lost

    held = pd.read_parquet(workdir / "data/extra/held_out.parquet")
    split_at_half = dict(zip(held["base"], held["split"]))
    params["extra"]["share"] = 1.0
    write_params(workdir, params)
    extra.main()
    held = pd.read_parquet(workdir / "data/extra/held_out.parquet")
    assert held["base"].nunique() > len(split_at_half)
    assert {
        b: s for b, s in zip(held["base"], held["split"]) if b in split_at_half
    } == split_at_half  # no emoji changes split


def test_pretrain_with_no_epochs_writes_the_seeded_start_and_a_one_point_curve(workdir, tmp_path):
    params = with_other_set(tmp_path, ["rocket", "sun with face"])
    params["pretrain"]["epochs"] = 0
    write_params(workdir, params)
    for stage in (prepare, augment, extra, pretrain):
        stage.main()

    held = read_split(workdir / "data/extra/held_out.parquet", empty_ok=True)  # nothing held out: empty, every column
    assert len(held) == 0 and "split" in held.columns
    curve = (workdir / "reports/pretrain/plots/metrics/val/mse.tsv").read_text().splitlines()
    assert len(curve) == 2 and float(curve[1].split("\t")[-1]) > 0  # header and the one point
    loaded = load_params()
    seed_everything(loaded.seed, loaded.train.threads)
    fresh = build_autoencoder(loaded, loaded.data.size, 3, classifier=False)
    saved = load_model(workdir / "models/pretrained/model.pt")
    assert all(torch.equal(v, fresh.state_dict()[k]) for k, v in saved.state_dict().items())  # nothing trained
