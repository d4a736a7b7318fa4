import pytest
import torch

from emoji_ae import analogies as A
from emoji_ae import recipes
from emoji_ae.config import PipelineError
from tests.conftest import NAMES, default_params


def test_recipes_parse_into_signed_terms():
    assert recipes.parse_recipe("nerd face - smiling face with open mouth + face with stuck out tongue") == [
        (1.0, "nerd face"), (-1.0, "smiling face with open mouth"), (1.0, "face with stuck out tongue")]
    assert recipes.parse_recipe("- cat + dog") == [(-1.0, "cat"), (1.0, "dog")]
    with pytest.raises(PipelineError, match="malformed"):
        recipes.parse_recipe("nerd face - ")


def test_unknown_names_fail_with_the_closest_names():
    with pytest.raises(PipelineError) as caught:
        recipes.check_names(["nerd fac"], NAMES, "compose recipe 'x'")
    message = str(caught.value)
    assert "'nerd fac'" in message and "closest: 'nerd face'" in message and "\n" not in message


def test_name_families_come_from_the_names():
    families = A.name_families(NAMES)
    assert families["cat"] == sorted([
        ("cat face with tears of joy", "face with tears of joy"), ("crying cat face", "crying face"),
        ("pouting cat face", "pouting face"), ("smiling cat face with open mouth", "smiling face with open mouth"),
        ("weary cat face", "weary face")])


def pool(names, sources=("openmoji", "twemoji")):
    return {
        (source, name): torch.full((3, 2, 2), float(i + 10 * j))
        for j, source in enumerate(sources)
        for i, name in enumerate(names)
    }


def test_families_hold_name_analogies_within_a_set_and_style_analogies_between_sets():
    names = ["crying face", "crying cat face", "weary face", "weary cat face", "grinning face"]
    found = A.families(pool(names))
    assert found["openmoji: cat"]["kind"] == "name" and found["twemoji: cat"]["kind"] == "name"
    assert found["openmoji -> twemoji"]["kind"] == "style"
    assert found["openmoji -> twemoji"]["pairs"] == [(("twemoji", n), ("openmoji", n)) for n in sorted(names)]
    assert found["twemoji -> openmoji"]["pairs"][0] == (("openmoji", "crying cat face"), ("twemoji", "crying cat face"))


def test_analogies_never_use_the_target_and_belong_to_the_split_of_their_target():
    names = [
        "crying face",
        "crying cat face",
        "weary face",
        "weary cat face",
        "grinning face",
        "pouting face",
        "pouting cat face",
    ]
    keys = pool(names)
    split_of = {key: ("test" if key[1] == "weary cat face" else "train") for key in keys}
    items = A.analogies(A.families(keys), split_of)
    for item in items:
        assert item["target"] not in (item["a"], item["b"], item["c"])
        assert item["split"] == split_of[item["target"]]
    held_out = [i for i in A.per_target(items) if i["split"] == "test"]
    # weary cat face is the target of the name family in each set and of the style family into each set
    assert sorted((i["kind"], i["family"]) for i in held_out) == [
        ("name", "openmoji: cat"),
        ("name", "twemoji: cat"),
        ("style", "openmoji -> twemoji"),
        ("style", "twemoji -> openmoji"),
    ]


def test_arithmetic_single_and_family_mean_of_every_other_pair():
    table = {"a1": torch.tensor([3.0]), "b1": torch.tensor([1.0]), "a2": torch.tensor([4.0]),
             "b2": torch.tensor([2.0]), "a3": torch.tensor([9.0]), "b3": torch.tensor([5.0])}
    found = {"f": {"kind": "name", "pairs": [("a1", "b1"), ("a2", "b2"), ("a3", "b3")]}}
    item = {"family": "f", "a": "a1", "b": "b1", "c": "b2", "target": "a2"}
    assert A.arithmetic(table, item, "single").item() == 4.0
    assert (
        A.arithmetic(table, item, "family_mean", A.family_sums(table, found)).item() == 2.0 + (2.0 + 4.0) / 2
    )  # a2's own pair left out


def test_variant_families_are_whole_skin_tones_and_genders_and_never_part_of_one():
    variants = default_params()["data"]["variants"]
    names = [
        "waving hand",
        "waving hand dark skin tone",
        "waving hand medium dark skin tone",
        "thumbs up",
        "thumbs up dark skin tone",
        "thumbs up medium dark skin tone",
        "cook",
        "woman cook",
        "farmer",
        "woman farmer",
        "crying face",
        "crying cat face",
        "weary face",
        "weary cat face",
    ]
    found = A.families({("openmoji", n): None for n in names}, variants)
    assert found["openmoji: dark skin tone"]["kind"] == "variant" and found["openmoji: woman"]["kind"] == "variant"
    assert found["openmoji: cat"]["kind"] == "name"
    assert "openmoji: medium" not in found  # "medium dark skin tone" less "medium" is another tone, not an attribute
    assert (("openmoji", "woman farmer"), ("openmoji", "farmer")) in found["openmoji: woman"]["pairs"]


def test_a_recipe_of_a_family_names_its_real_answer():
    names = [
        "cat face with tears of joy",
        "crying cat face",
        "crying face",
        "face with tears of joy",
        "woman cook",
        "man cook",
        "man farmer",
        "woman farmer",
        "nerd face",
    ]
    assert (
        recipes.answer(recipes.parse_recipe("crying cat face - crying face + face with tears of joy"), names)
        == "cat face with tears of joy"
    )
    assert recipes.answer(recipes.parse_recipe("woman cook - man cook + man farmer"), names) == "woman farmer"
    assert recipes.answer(recipes.parse_recipe("nerd face - crying face + man cook"), names) is None
    assert recipes.answer(recipes.parse_recipe("nerd face + crying face"), names) is None


def test_training_analogies_pair_a_target_with_another_pair_of_its_family():
    names = [
        "crying face",
        "crying cat face",
        "weary face",
        "weary cat face",
        "pouting face",
        "pouting cat face",
        "rocket",
    ]
    keys = [("openmoji", n) for n in names]
    found = A.TrainingAnalogies(keys, [])
    quads = found.sample(200, torch.Generator().manual_seed(0))
    for a, b, c, d in quads.tolist():
        assert names[a] == names[b].replace("face", "cat face") and names[d] == names[c].replace("face", "cat face")
        assert (a, b) != (d, c)
    assert len({tuple(q) for q in quads.tolist()}) == 6  # every ordered pair of the family's three pairs


def test_scoring_an_exact_latent_space_gives_perfect_composites_and_a_gap_of_one():
    """Latents that hold the attribute as an exact offset decode every analogy to its target."""
    names = ["crying face", "crying cat face", "weary face", "weary cat face", "grinning face", "grinning cat face"]
    latents = {("openmoji", n): torch.tensor([float(i // 2), 5.0 if "cat" in n else 0.0]) for i, n in enumerate(names)}
    pixels = {key: torch.full((3, 2, 2), z.sum().item() / 20) for key, z in latents.items()}
    decode = lambda z: torch.stack([torch.full((3, 2, 2), v.sum().item() / 20) for v in z])  # noqa: E731
    found = A.families(pixels)
    items = A.per_target(A.analogies(found, {k: "test" for k in pixels}))
    rows = A.score(items, "family_mean", decode, latents, pixels, {k: 0.01 for k in pixels},
                   (A.family_sums(latents, found), A.family_sums(pixels, found)))
    summary = A.summarise(rows)
    assert summary["n"] == 3 and summary["mse"] == 0 and summary["top1"] == 1.0 and summary["gap"] == 0
    assert A.summary_by_split(rows)["test"]["family_mean_by_kind"]["name"]["n"] == 3


def test_slerp_keeps_endpoints_and_norm():
    z0, z1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert torch.allclose(recipes.slerp(z0, z1, 0.0), z0) and torch.allclose(recipes.slerp(z0, z1, 1.0), z1)
    assert torch.isclose(recipes.slerp(z0, z1, 0.5).norm(), torch.tensor(1.0))


def test_training_without_any_analogy_family_goes_on_without_the_loss_and_says_so(capsys):
    import pandas as pd

    frame = pd.DataFrame({"source": ["set", "set"], "text": ["rocket", "sun with face"], "augmented": [False, False],
                          "image": [None, None]})
    assert A.training_analogies([frame], []) is None
    assert "no analogy family" in capsys.readouterr().err
