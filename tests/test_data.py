import numpy as np
import pytest
from PIL import Image

from emoji_ae import data, files
from emoji_ae.config import parse_params
from tests.conftest import default_params, tiny_params

VARIANTS = default_params()["data"]["variants"]


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


@pytest.mark.parametrize("raw, expected", [
    ("Grinning Face", "grinning face"), ("  face-with_tears   of joy ", "face with tears of joy"),
    ("", None), ("   ", None), (None, None), (float("nan"), None), (42, "42"),
])
def test_names_are_normalised_and_missing_ones_are_none(raw, expected):
    assert data.normalise_text(raw) == expected


@pytest.mark.parametrize("name, base", [
    ("man getting face massage type 1 2", "getting face massage"),
    ("woman getting face massage type 3", "getting face massage"),
    ("person getting face massage", "getting face massage"),
    ("thumbs up sign medium light skin tone", "thumbs up sign"),
    ("grinning face", "grinning face"),
    ("snowman without snow", "snowman without snow"),  # whole words only
    ("man", "man"),  # a name the patterns would delete entirely is its own base
])
def test_the_default_variant_rules_find_the_base_emoji(name, base):
    assert data.base_emoji(name, VARIANTS) == base


def test_the_grouped_split_keeps_every_group_whole_and_stratifies_groups_by_class():
    rng = np.random.default_rng(0)
    groups = rng.integers(0, 60, 300)  # 60 emoji, several records each
    labels = (groups >= 45).astype(int)  # 45 faces, 15 animals
    present = np.unique(groups)
    parts = data.grouped_split(groups, labels, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=3)
    assert sorted(np.concatenate(list(parts.values()))) == list(range(300))
    in_split = {name: set(groups[index]) for name, index in parts.items()}
    assert (
        not (in_split["train"] & in_split["val"])
        and not (in_split["train"] & in_split["test"])
        and not (in_split["val"] & in_split["test"])
    )
    animals = {g for g in present if g >= 45}
    assert [len(in_split[s] & animals) for s in data.SPLITS] == [
        round(len(animals) * 0.6),
        round(len(animals) * 0.2),
        len(animals) - round(len(animals) * 0.6) - round(len(animals) * 0.2),
    ]
    again = data.grouped_split(groups, labels, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=3)
    assert all((parts[s] == again[s]).all() for s in data.SPLITS)


def test_with_one_record_per_emoji_the_split_is_the_classic_stratified_split():
    labels = np.array([0] * 50 + [1] * 10)
    parts = data.grouped_split(np.arange(60), labels, {"train": 0.6, "val": 0.2, "test": 0.2}, seed=3)
    rng = np.random.default_rng(3)
    expected = {s: [] for s in data.SPLITS}
    for label in (0, 1):
        members = rng.permutation(np.flatnonzero(labels == label))
        cut = [round(len(members) * 0.6), round(len(members) * 0.6) + round(len(members) * 0.2)]
        for split, chunk in zip(data.SPLITS, np.split(members, cut)):
            expected[split].append(chunk)
    assert all((parts[s] == np.sort(np.concatenate(expected[s]))).all() for s in data.SPLITS)


def test_to_square_composites_onto_white_or_keeps_alpha():
    image = Image.new("RGBA", (40, 20), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (0, 0, 40, 20))
    rgb = np.asarray(data.to_square(image, 16, rgba=False))
    assert rgb.shape == (16, 16, 3)
    assert (rgb[0, 0] == 255).all() and rgb[8, 8, 0] == 255 and rgb[8, 8, 1] == 0  # white pad, red centre
    assert np.asarray(data.to_square(image, 16, rgba=True)).shape == (16, 16, 4)


def test_atomic_path_leaves_the_old_file_when_writing_fails(tmp_path):
    target = tmp_path / "out.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with files.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]
