"""The locks that the README's commands and .ci/run install from agree with pyproject.toml."""

import re

import pytest
import tomllib
from packaging.requirements import Requirement

from emoji_ae.tools.lock import LOCKS, digest
from tests.conftest import REPO


def pins(lock: str) -> dict[str, tuple[str, int]]:
    """{normalised name: (version, number of hashes)} of a lock."""
    text = (REPO / lock).read_text()
    found = {}
    for block in re.split(r"\n(?=\S)", text):
        match = re.match(r"([A-Za-z0-9_.\-]+)(\[[^\]]*\])?==([^\s;\\]+)", block)
        if match:
            found[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = (match.group(3), block.count("--hash=sha256:"))
    return found


def requirements(extras: list[str]) -> list[Requirement]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    return [
        Requirement(r)
        for r in project["dependencies"] + [r for e in extras for r in project["optional-dependencies"][e]]
    ]


@pytest.mark.parametrize("lock", LOCKS)
def test_each_lock_was_compiled_from_the_committed_pyproject(lock):
    first = (REPO / lock).read_text().splitlines()[0]
    assert first == f"# pyproject.toml: {digest(REPO / 'pyproject.toml', LOCKS[lock])}", (
        f"pyproject.toml changed since {lock} was compiled: run `pip install uv && python -m emoji_ae.tools.lock` "
        "and commit both locks"
    )


@pytest.mark.parametrize("lock", LOCKS)
def test_every_requirement_is_pinned_within_its_bounds_with_hashes(lock):
    pinned = pins(lock)
    assert len(pinned) > 100
    for requirement in requirements(LOCKS[lock]):
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        assert name in pinned, f"{requirement} is not in {lock}"
        assert requirement.specifier.contains(pinned[name][0], prereleases=True), (
            f"{lock} pins {name}=={pinned[name][0]}, outside {requirement}"
        )
    assert all(hashes > 0 for _, hashes in pinned.values())


def test_the_test_lock_keeps_the_pipelines_pins():
    pipeline, test = pins("requirements.lock"), pins("requirements-test.lock")
    assert {name: version for name, (version, _) in pipeline.items()} == {name: test[name][0] for name in pipeline}


def test_a_bound_changed_without_a_new_lock_is_caught(tmp_path):
    pyproject = (REPO / "pyproject.toml").read_text()
    for old, new in (('"pillow>=10.1"', '"pillow>=10.2"'), ('"pytest>=8"', '"pytest>=9"')):
        assert old in pyproject
        changed = tmp_path / "pyproject.toml"
        changed.write_text(pyproject.replace(old, new))
        extras = ["test"] if "pytest" in old else []
        assert digest(changed, extras) != digest(REPO / "pyproject.toml", extras)
    spaced = tmp_path / "pyproject.toml"  # a cosmetic edit is no change
    spaced.write_text(pyproject.replace('"pillow>=10.1"', '"pillow >=10.1"'))
    assert digest(spaced, []) == digest(REPO / "pyproject.toml", [])
