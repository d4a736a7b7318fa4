"""The documents a user follows: every command that README.md and docs/ quote is one this checkout
has, or is marked as of its dated entry in docs/findings.md; findings open with what is known now."""

import re

import pytest

from tests.conftest import REPO

DOCS = ["README.md", *sorted(str(p.relative_to(REPO)) for p in (REPO / "docs").glob("*.md"))]
COMMAND = re.compile(r"`(?:python -m|python3 -m) ([\w.]+)[^`]*`( \(as of [^)]*\))?")


def module_exists(name: str) -> bool:
    path = REPO.joinpath(*name.split("."))
    return (
        path.with_suffix(".py").is_file()
        or (path / "__init__.py").is_file()
        or name in ("pytest", "venv", "pip", "ruff")
    )


@pytest.mark.parametrize("doc", DOCS)
def test_every_quoted_python_command_runs_today_or_is_marked_as_of_its_entry(doc):
    stale = [
        m.group(0)
        for m in COMMAND.finditer((REPO / doc).read_text())
        if not module_exists(m.group(1)) and not m.group(2)
    ]
    assert not stale, f"{doc} quotes commands this checkout lacks: {stale}"


def test_findings_open_with_a_summary_whose_rows_link_to_dated_entries():
    text = (REPO / "docs/findings.md").read_text()
    summary = text.split("\n## ")[1]
    assert summary.startswith("What is known now")
    links = re.findall(r"\]\(#([\w-]+)\)", summary)
    anchors = set(re.findall(r'<a id="([\w-]+)"></a>', text))
    assert len(links) >= 8 and set(links) <= anchors, set(links) - anchors
