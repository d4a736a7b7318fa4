"""Every row of a real emoji set is used or accounted for: sources, image modes, damaged rows."""

import io
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from emoji_ae import sources
from emoji_ae.config import PipelineError
from tests.conftest import NAMES, emoji_png, encoded, write_valhalla_parquet


def data(*paths, include=("face",), exclude=("clock",), revision="main"):
    return SimpleNamespace(
        sources=[str(p) for p in paths], include=list(include), exclude=list(exclude), revision=revision
    )


def one(path, **kwargs) -> sources.Intake:
    (intake,) = sources.load_sources(data(path, **kwargs))
    return intake


MODES = ["RGBA", "RGB", "LA", "L", "P", "PA", "1", "CMYK", "I;16", "I", "F", "YCbCr"]


@pytest.mark.parametrize("mode", MODES)
def test_every_image_mode_pillow_reads_becomes_an_rgba_drawing(mode):
    image = sources.decode_image(encoded(mode, index=3, size=40))
    assert image.mode == "RGBA" and image.size == (40, 40)
    assert len(np.unique(np.asarray(image.convert("L")))) >= 2  # the drawing survived, not a flat square


def test_16_bit_greyscale_is_scaled_to_8_bits_not_clipped():
    ramp = np.linspace(0, 65535, 64 * 64).reshape(64, 64).astype(np.uint16)
    buffer = io.BytesIO()
    Image.fromarray(ramp).save(buffer, format="PNG")
    grey = np.asarray(sources.decode_image(buffer.getvalue()).convert("L")).astype(int)
    assert grey.min() == 0 and grey.max() == 255 and abs(grey[32, 0] - 128) <= 2


def test_an_animation_gives_its_first_frame():
    frames = [Image.new("RGB", (24, 24), colour) for colour in ((255, 0, 0), (0, 0, 255))]
    for frame in frames:
        frame.paste((255, 255, 255), (0, 0, 8, 8))
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    pixel = sources.decode_image(buffer.getvalue()).getpixel((16, 16))
    assert pixel[0] > 200 and pixel[2] < 50  # red: the first frame


def test_rows_with_missing_values_damaged_bytes_blank_or_oversized_images_are_counted_by_reason(tmp_path, monkeypatch):
    good = [{"image": {"bytes": emoji_png(i), "path": None}, "text": name} for i, name in enumerate(NAMES[:6])]
    bad = [
        {"image": {"bytes": emoji_png(7), "path": None}, "text": None},
        {"image": {"bytes": emoji_png(8), "path": None}, "text": "   "},
        {"image": None, "text": "sleepy face"},
        {"image": {"bytes": None, "path": None}, "text": "winking face"},
        {"image": {"bytes": b"\x89PNG\r\n\x1a\n truncated", "path": None}, "text": "nerd face"},
        {"image": {"bytes": emoji_png(9)[:200], "path": None}, "text": "pouting face"},
        {"image": {"bytes": encoded("RGBA", blank=True), "path": None}, "text": "blank face"},
        {"image": {"bytes": encoded("RGB", size=300), "path": None}, "text": "huge face"},
        {"image": {"bytes": None, "path": str(tmp_path / "gone.png")}, "text": "lost face"},
        {"image": {"bytes": emoji_png(0), "path": None}, "text": NAMES[0]},  # an exact duplicate of the first row
        {"image": {"bytes": emoji_png(1), "path": None}, "text": "alarm clock face"},  # filtered out by the text rules
    ]
    path = tmp_path / "messy.parquet"
    pd.DataFrame(good + bad).to_parquet(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 200 * 200)  # 300x300 is over it
    intake = one(path)
    assert sorted(r["text"] for r in intake.records) == sorted(NAMES[:6])
    assert all(r["image"].mode == "RGBA" and r["source"] == str(path) for r in intake.records)
    assert intake.summary() == {"rows": 17, "used": 6, "filtered_out": 1, "skipped": {
        sources.BLANK: 1, sources.DUPLICATE: 1, sources.MISSING_IMAGE: 2, sources.MISSING_TEXT: 2,
        sources.TOO_LARGE: 1, sources.UNREADABLE: 3}}


def test_the_same_name_from_two_sources_is_kept_from_both(tmp_path):
    first = write_valhalla_parquet(tmp_path / "a.parquet", names=NAMES[:5])
    second = write_valhalla_parquet(tmp_path / "b.parquet", names=NAMES[3:8])
    a, b = sources.load_sources(data(first, second))
    assert [r["source"] for r in a.records] == [str(first)] * 5 and [r["source"] for r in b.records] == [
        str(second)
    ] * 5
    assert {r["text"] for r in a.records} & {r["text"] for r in b.records} == set(NAMES[3:5])


def test_local_parquet_in_the_datasets_layout_loads_and_filters(valhalla_parquet):
    intake = one(valhalla_parquet)
    texts = [r["text"] for r in intake.records]
    assert "alarm clock face" not in texts and "grinning cat" not in texts
    assert intake.summary() == {"rows": len(NAMES), "used": len(NAMES) - 2, "filtered_out": 2, "skipped": {}}


def test_hub_route_goes_through_datasets_load_dataset_with_the_pinned_revision(valhalla_parquet, monkeypatch):
    import datasets

    calls = []
    real_load = datasets.load_dataset

    def hub_stand_in(name, revision=None, split=None, **kwargs):  # the hub is out of reach: serve the local copy
        calls.append((name, revision, split))
        return real_load("parquet", data_files=str(valhalla_parquet), split="train")

    monkeypatch.setattr(datasets, "load_dataset", hub_stand_in)
    assert len(one("valhalla/emoji-dataset", revision="abc123").records) == len(NAMES) - 2
    assert len(one("valhalla/emoji-dataset@def456", revision="abc123").records) == len(NAMES) - 2
    assert calls == [("valhalla/emoji-dataset", "abc123", "train"), ("valhalla/emoji-dataset", "def456", "train")]


def test_unreachable_hub_says_to_use_the_embedded_or_a_local_source(monkeypatch):
    import datasets
    import huggingface_hub

    # As on a machine without network: the libraries read these flags at import time.
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PipelineError, match="data.source=openmoji") as caught:
        one("someone/no-such-emoji-dataset")
    assert "\n" not in str(caught.value)


def test_image_folder_with_metadata_loads(tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i, name in enumerate(NAMES[:6]):
        (folder / f"{i}.png").write_bytes(emoji_png(i))
    pd.DataFrame({"file_name": [f"{i}.png" for i in range(6)], "text": NAMES[:6]}).to_csv(
        folder / "metadata.csv", index=False
    )
    intake = one(folder)
    assert sorted(r["text"] for r in intake.records) == sorted(NAMES[:6]) and intake.skipped == {}


@pytest.mark.parametrize("columns, message", [({"picture": [b""], "caption": ["x"]}, "has no image or text column"),
                                              ({"image": [b""], "caption": ["x"]}, "has no text column")])
def test_missing_columns_are_a_clear_error(tmp_path, columns, message):
    path = tmp_path / "wrong.parquet"
    pd.DataFrame(columns).to_parquet(path)
    with pytest.raises(PipelineError, match=message):
        one(path)


def test_missing_and_unreadable_local_sources_are_clear_errors(tmp_path):
    with pytest.raises(PipelineError, match="does not exist"):
        one(tmp_path / "nowhere.parquet")
    (tmp_path / "notes.parquet").write_text("not parquet")
    with pytest.raises(PipelineError, match="could not be read as a parquet file or image folder"):
        one(tmp_path / "notes.parquet")


@pytest.mark.parametrize("name", sources.BUILT_IN)
def test_the_built_in_sets_give_named_colour_faces_and_account_for_every_glyph(name):
    intake = one(name, include=("nerd",))
    assert [r["text"] for r in intake.records] == ["nerd face"]
    pixels = np.asarray(intake.records[0]["image"])
    assert pixels[..., 3].max() == 255 and len(np.unique(pixels[..., 0])) > 10  # drawn, in colour
    account = intake.summary()
    assert account["rows"] > 1000 and account["rows"] == account["used"] + account["filtered_out"] + sum(
        account["skipped"].values()
    )
    assert set(account["skipped"]) <= {
        sources.NO_NAME,
        sources.NAME_TAKEN,
    }  # glyphs beyond Unicode and CLDR (flags of the set's own)
    assert account["skipped"][sources.NO_NAME] < account["rows"] // 5


def test_sequences_are_named_by_their_cldr_short_names_in_the_vocabulary_of_unicode_names():
    assert sources.emoji_name("\U0001F44B\U0001F3FF") == "waving hand dark skin tone"
    assert sources.emoji_name("\U0001F469\u200d\U0001F373") == "woman cook"
    assert sources.emoji_name("\U0001F602") == "face with tears of joy"  # one code point: its Unicode name, as before
    assert sources.emoji_name("\U0001F602\U0001F602") is None
