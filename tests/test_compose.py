import pytest
import torch

from stages import compose
from stages.lib.config import PipelineError
from tests.conftest import NAMES


def test_recipes_parse_into_signed_terms():
    assert compose.parse_recipe("nerd face - smiling face with open mouth + face with stuck out tongue") == [
        (1.0, "nerd face"), (-1.0, "smiling face with open mouth"), (1.0, "face with stuck out tongue")]
    assert compose.parse_recipe("- cat + dog") == [(-1.0, "cat"), (1.0, "dog")]
    with pytest.raises(PipelineError, match="malformed"):
        compose.parse_recipe("nerd face - ")


def test_unknown_names_fail_with_the_closest_names():
    with pytest.raises(PipelineError) as caught:
        compose.check_names(["nerd fac"], NAMES, "compose recipe 'x'")
    message = str(caught.value)
    assert "'nerd fac'" in message and "closest: 'nerd face'" in message and "\n" not in message


def test_analogy_families_come_from_the_names_and_never_use_the_target():
    families = compose.analogy_families(NAMES)
    assert families["cat"] == sorted([
        ("cat face with tears of joy", "face with tears of joy"), ("crying cat face", "crying face"),
        ("pouting cat face", "pouting face"), ("smiling cat face with open mouth", "smiling face with open mouth"),
        ("weary cat face", "weary face")])
    items = compose.analogies({"cat": families["cat"]})
    assert len(items) == 5 * 4
    for item in items:
        assert item["target"] not in (item["a"], item["b"], item["c"])
        assert all(item["target"] not in pair for pair in item["pairs"])


def test_arithmetic_single_and_family_mean():
    table = {"a1": torch.tensor([3.0]), "b1": torch.tensor([1.0]), "a2": torch.tensor([4.0]),
             "b2": torch.tensor([2.0]), "a3": torch.tensor([9.0]), "b3": torch.tensor([5.0])}
    item = {"a": "a1", "b": "b1", "c": "b2", "pairs": [("a1", "b1"), ("a3", "b3")]}
    assert compose.arithmetic(table, item, "single").item() == 4.0
    assert compose.arithmetic(table, item, "family_mean").item() == 2.0 + (2.0 + 4.0) / 2


def test_slerp_keeps_endpoints_and_norm():
    z0, z1 = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert torch.allclose(compose.slerp(z0, z1, 0.0), z0) and torch.allclose(compose.slerp(z0, z1, 1.0), z1)
    assert torch.isclose(compose.slerp(z0, z1, 0.5).norm(), torch.tensor(1.0))
