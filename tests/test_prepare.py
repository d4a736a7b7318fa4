"""The prepare stage on real-world mixes: several sources, duplicates, variants, damaged rows."""

import json

import pandas as pd
import pytest

from emoji_ae import data, sources
from emoji_ae.config import PipelineError
from stages import prepare
from tests.conftest import NAMES, emoji_png, synthetic_params, tiny_params, write_params, write_valhalla_parquet

# Variants of base emoji as valhalla names them, and damaged rows, beside a second set.
VARIANT_NAMES = [
    "man getting face massage type 1 2",
    "woman getting face massage type 3",
    "person getting face massage",
    "man facepalming face type 4",
    "woman facepalming face",
    "face with medium skin tone",
]


def read_splits(workdir) -> dict[str, pd.DataFrame]:
    return {s: pd.read_parquet(workdir / f"data/prepared/{s}.parquet") for s in data.SPLITS}


def mixed_sources(tmp_path):
    """Two sets that share names, one with variants, a duplicate row and damaged rows."""
    first = write_valhalla_parquet(tmp_path / "vendor_a.parquet", names=NAMES + VARIANT_NAMES)
    rows = [{"image": {"bytes": emoji_png(i + 40), "path": None}, "text": name} for i, name in enumerate(NAMES[:15])]
    rows += [
        rows[0],
        {"image": None, "text": "ghost face"},
        {"image": {"bytes": b"junk", "path": None}, "text": "junk face"},
        {"image": {"bytes": emoji_png(3), "path": None}, "text": None},
    ]
    second = tmp_path / "vendor_b.parquet"
    pd.DataFrame(rows).to_parquet(second)
    return first, second


def test_prepare_splits_by_emoji_across_sources_and_accounts_for_every_row(workdir, tmp_path, capsys):
    first, second = mixed_sources(tmp_path)
    params = synthetic_params(first)
    params["data"]["source"] = [str(first), str(second)]
    write_params(workdir, params)
    prepare.main()

    frames = read_splits(workdir)
    bases = {split: set(frame["base"]) for split, frame in frames.items()}
    texts = {split: set(frame["text"]) for split, frame in frames.items()}
    for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
        assert not bases[a] & bases[b] and not texts[a] & texts[b]  # no emoji, and no variant of one, in two splits
    pooled = pd.concat(frames.values())
    assert set(pooled["source"]) == {str(first), str(second)}
    assert (pooled[pooled["text"].str.contains("face massage")]["base"] == "getting face massage").all()
    assert all(frame["base"].nunique() for frame in frames.values())

    summary = json.loads((workdir / "reports/prepare/summary.json").read_text())
    a, b = summary["sources"][str(first)], summary["sources"][str(second)]
    assert a == {
        "rows": len(NAMES) + len(VARIANT_NAMES),
        "used": len(NAMES) + len(VARIANT_NAMES) - 2,
        "filtered_out": 2,
        "skipped": {},
    }
    assert b == {
        "rows": 19,
        "used": 15,
        "filtered_out": 0,
        "skipped": {sources.DUPLICATE: 1, sources.MISSING_IMAGE: 1, sources.MISSING_TEXT: 1, sources.UNREADABLE: 1},
    }
    assert summary["images"] == len(pooled) == a["used"] + b["used"]
    assert summary["emoji"] == pooled["base"].nunique()
    assert sum(summary["per_source"][str(second)].values()) == 15
    assert sum(sum(counts.values()) for counts in summary["per_split"].values()) == len(pooled)

    out = capsys.readouterr().out
    assert f"{second}: 19 rows, 15 used" in out and "1 duplicate row" in out and "1 unreadable image" in out


def test_prepare_writes_stratified_splits_and_a_summary(workdir, valhalla_parquet):
    write_params(workdir, synthetic_params(valhalla_parquet))
    prepare.main()
    frames = read_splits(workdir)
    assert sum(len(f) for f in frames.values()) == len(NAMES) - 2
    assert all(set(f["class_name"]) == {"animal", "face"} for f in frames.values())
    assert list(frames["train"].columns) == ["image", "text", "base", "source", "label", "class_name", "augmented"]
    assert data.decode_png(frames["train"]["image"][0]["bytes"]).shape == (16, 16, 3)
    summary = json.loads((workdir / "reports/prepare/summary.json").read_text())
    assert summary["images"] == len(NAMES) - 2 and summary["per_split"]["test"]["animal"] >= 1
    assert (workdir / "reports/prepare/samples.png").stat().st_size > 0


def test_prepare_fails_cleanly_when_the_filter_selects_nothing(workdir, valhalla_parquet):
    write_params(workdir, tiny_params(source=str(valhalla_parquet), include=["spaceship"]))
    with pytest.raises(PipelineError, match="widen data.include"):
        prepare.main()
    assert not (workdir / "data").exists()


def test_prepare_fails_cleanly_when_a_class_is_empty_in_a_split(workdir, valhalla_parquet):
    classes = [{"name": "tiger", "words": ["tiger"]}, {"name": "face", "words": []}]
    write_params(workdir, tiny_params(source=str(valhalla_parquet), classes=classes))
    with pytest.raises(PipelineError, match="class tiger has no emoji in the val split"):
        prepare.main()
    assert not (workdir / "data").exists()
