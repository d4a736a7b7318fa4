import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from stages import prepare
from stages.lib import data, files, sources
from stages.lib.config import PipelineError, parse_params
from tests.conftest import NAMES, emoji_png, synthetic_params, tiny_params, write_params, write_valhalla_parquet


def source(path, include=("face",), exclude=("clock",), revision="main"):
    return SimpleNamespace(source=str(path), include=list(include), exclude=list(exclude), revision=revision)


def test_text_filter_matches_whole_words():
    keep = data.text_filter(["face"], ["clock"])
    assert keep("grinning face") and keep("face with tears of joy")
    assert not keep("alarm clock face") and not keep("facepalm") and not keep("grinning cat")


def test_class_rules_are_ordered_and_the_last_catches_the_rest():
    classes = [{"name": "animal", "words": ["cat", "moon"]}, {"name": "sky", "words": ["moon", "sun"]},
               {"name": "face", "words": []}]
    rules = parse_params(tiny_params(classes=classes)).data.classes
    names = [r.name for r in rules]
    assert names[data.assign_class("crying cat face", rules)] == "animal"
    assert names[data.assign_class("full moon with face", rules)] == "animal"  # first match wins
    assert names[data.assign_class("sun with face", rules)] == "sky"
    assert names[data.assign_class("nerd face", rules)] == "face"


def test_stratified_split_keeps_class_ratios_and_is_seeded():
    labels = np.array([0] * 50 + [1] * 10)
    parts = data.stratified_split(labels, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=3)
    assert [len(parts[s]) for s in data.SPLITS] == [36, 12, 12]
    assert [(labels[parts[s]] == 1).sum() for s in data.SPLITS] == [6, 2, 2]
    assert sorted(np.concatenate(list(parts.values()))) == list(range(60))
    again = data.stratified_split(labels, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=3)
    assert all((parts[s] == again[s]).all() for s in data.SPLITS)


def test_to_square_composites_onto_white_or_keeps_alpha():
    image = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (0, 0, 40, 20))
    rgb = np.asarray(data.to_square(image, 16, rgba=False))
    assert rgb.shape == (16, 16, 3)
    assert (rgb[0, 0] == 255).all() and rgb[8, 8, 0] == 255 and rgb[8, 8, 1] == 0  # white pad, red centre
    assert np.asarray(data.to_square(image, 16, rgba=True)).shape == (16, 16, 4)


def test_local_parquet_in_the_datasets_layout_loads_and_filters(valhalla_parquet):
    records, corrupt = sources.load_source(source(valhalla_parquet))
    texts = [r["text"] for r in records]
    assert corrupt == 0 and "alarm clock face" not in texts and "grinning cat" not in texts
    assert len(records) == len(NAMES) - 2 and all(isinstance(r["image"], Image.Image) for r in records)


def test_hub_route_goes_through_datasets_load_dataset_with_the_pinned_revision(valhalla_parquet, monkeypatch):
    import datasets

    calls = []
    real_load = datasets.load_dataset

    def fake_hub(name, revision=None, split=None, **kwargs):
        calls.append((name, revision, split))
        return real_load("parquet", data_files=str(valhalla_parquet), split="train")

    monkeypatch.setattr(datasets, "load_dataset", fake_hub)
    records, _ = sources.load_source(source("valhalla/emoji-dataset", revision="abc123"))
    assert calls == [("valhalla/emoji-dataset", "abc123", "train")] and len(records) == len(NAMES) - 2


def test_unreachable_hub_says_to_use_the_embedded_or_a_local_source(monkeypatch):
    import datasets
    import huggingface_hub

    # As on a machine without network: the libraries read these flags at import time.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PipelineError, match="data.source=openmoji") as caught:
        sources.load_source(source("someone/no-such-emoji-dataset"))
    assert "\n" not in str(caught.value)


def test_image_folder_with_metadata_loads(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, name in enumerate(NAMES[:6]):
        (folder / f"{i}.png").write_bytes(emoji_png(i))
    pd.DataFrame({"file_name": [f"{i}.png" for i in range(6)], "text": NAMES[:6]}).to_csv(folder / "metadata.csv", index=False)
    records, corrupt = sources.load_source(source(folder))
    assert sorted(r["text"] for r in records) == sorted(NAMES[:6]) and corrupt == 0


def test_corrupt_images_are_skipped_and_counted(tmp_path):
    path = write_valhalla_parquet(tmp_path / "e.parquet", corrupt=3)
    records, corrupt = sources.load_source(source(path))
    assert corrupt == 3 and len(records) == len(NAMES) - 2


def test_missing_columns_and_missing_paths_are_clear_errors(tmp_path):
    path = tmp_path / "wrong.parquet"
    pd.DataFrame({"picture": [b""], "caption": ["x"]}).to_parquet(path)
    with pytest.raises(PipelineError, match="no image or text column"):
        sources.load_source(source(path))
    with pytest.raises(PipelineError, match="does not exist"):
        sources.load_source(source(tmp_path / "nowhere.parquet"))


def test_openmoji_renders_named_faces():
    records = sources.openmoji_records(data.text_filter(["nerd"], []))
    assert [r["text"] for r in records] == ["nerd face"]
    pixels = np.asarray(records[0]["image"])
    assert pixels[..., 3].max() == 255 and len(np.unique(pixels[..., 0])) > 10  # drawn, in colour


def test_prepare_writes_stratified_splits_and_a_summary(workdir, valhalla_parquet):
    write_params(workdir, synthetic_params(valhalla_parquet))
    prepare.main()
    frames = {s: pd.read_parquet(f"data/prepared/{s}.parquet") for s in data.SPLITS}
    assert sum(len(f) for f in frames.values()) == len(NAMES) - 2
    assert all(set(f["class_name"]) == {"animal", "face"} for f in frames.values())
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
    with pytest.raises(PipelineError, match="class tiger has no image in the val split"):
        prepare.main()
    assert not (workdir / "data").exists()


def test_atomic_path_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with files.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
