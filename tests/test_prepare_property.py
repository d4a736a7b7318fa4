"""A property test of prepare on generated emoji sets: random names, duplicates, variants, image
modes and sizes, damaged rows, one or two sources. Whatever the data, prepare ends in a result or
in one PipelineError line (never a traceback), no emoji or variant of one is in two splits, and
every row is counted exactly once."""

import json
import os
import tempfile
from pathlib import Path

import pandas as pd
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from emoji_ae import data
from emoji_ae.config import PipelineError
from stages import prepare
from tests.conftest import encoded, synthetic_params, write_params

FACES = ["grinning face", "crying face", "weary face", "pouting face", "nerd face", "sleepy face", "winking face",
         "neutral face", "face with tears of joy", "smiling face with open mouth"]
ANIMALS = ["crying cat face", "dog face", "tiger face", "monkey face", "fox face", "pig face"]
DECORATIONS = ["{}", "{} type 1 2", "{} type 4", "man {}", "woman {}", "{} medium dark skin tone"]
SPELLINGS = [str, str.upper, lambda name: name.replace(" ", "-"), lambda name: f"  {name}  "]
MODES = ["RGBA", "RGB", "LA", "L", "P", "1", "CMYK", "I;16", "I", "F"]

emoji_names = st.builds(lambda base, decoration, spelling: spelling(decoration.format(base)),
                        st.sampled_from(FACES + ANIMALS), st.sampled_from(DECORATIONS), st.sampled_from(SPELLINGS))
names = st.one_of(emoji_names, emoji_names, emoji_names,
                  st.sampled_from([None, "", "   ", "alarm clock face", "spaceship"]),  # missing, empty, filtered out
                  st.text(min_size=1, max_size=12))
drawings = st.builds(lambda mode, index, size: {"bytes": encoded(mode, index, size), "path": None},
                     st.sampled_from(MODES), st.integers(0, 30), st.integers(4, 90))
images = st.one_of(
    drawings,
    drawings,
    drawings,
    st.just(None),
    st.just({"bytes": b"\x89PNG\r\n\x1a\n cut short", "path": None}),
    st.builds(lambda size: {"bytes": encoded("RGBA", 0, size, blank=True), "path": None}, st.integers(4, 40)),
)
rows = st.lists(st.fixed_dictionaries({"image": images, "text": names}), max_size=40)


OUTCOMES = []


@st.composite
def emoji_sets(draw):
    """One or two sources. Each holds drawings of at least four animal and four face emoji (in
    any spelling, variant and image mode) among rows of anything, and repeats some rows exactly."""
    sets = []
    for _ in range(draw(st.integers(1, 2))):
        core = [
            draw(st.lists(st.sampled_from(group), min_size=4, max_size=len(group), unique=True))
            for group in (ANIMALS, FACES)
        ]
        table = [
            {
                "image": draw(drawings),
                "text": draw(st.sampled_from(SPELLINGS))(draw(st.sampled_from(DECORATIONS)).format(name)),
            }
            for name in core[0] + core[1]
        ]
        table += draw(rows)
        table = draw(st.permutations(table))
        repeats = draw(st.lists(st.integers(0, len(table) - 1), max_size=5))
        sets.append(table + [table[i] for i in repeats])
    return sets


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(emoji_sets())
# nothing usable:
@example([[{"image": None, "text": None}, {"image": {"bytes": b"junk", "path": None}, "text": "nerd face"}]])
def test_prepare_on_any_emoji_set_splits_by_emoji_and_accounts_for_every_row(sets):
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, table in enumerate(sets):
            paths.append(Path(tmp) / f"set{i}.parquet")
            pd.DataFrame(table).to_parquet(paths[-1])
        work = Path(tmp) / "work"
        work.mkdir()
        params = synthetic_params(paths[0])
        params["data"]["source"] = [str(p) for p in paths]
        write_params(work, params)
        cwd = os.getcwd()
        os.chdir(work)
        try:
            prepare.main()
        except PipelineError as e:  # a clear refusal (too few emoji for a class, say) is a valid outcome
            assert "\n" not in str(e)
            OUTCOMES.append("refused")
            assert not (work / "data").exists()
            return
        finally:
            os.chdir(cwd)
        check_outputs(work, sets, paths)
        OUTCOMES.append("prepared")


def check_outputs(work, sets, paths):
    frames = {s: pd.read_parquet(work / f"data/prepared/{s}.parquet") for s in data.SPLITS}
    for column in ("base", "text"):
        seen = [set(frames[s][column]) for s in data.SPLITS]
        assert not (seen[0] & seen[1]) and not (seen[0] & seen[2]) and not (seen[1] & seen[2]), column
    summary = json.loads((work / "reports/prepare/summary.json").read_text())
    for path, table in zip(paths, sets):
        account = summary["sources"][str(path)]
        assert account["rows"] == len(table)
        assert account["rows"] == account["used"] + account["filtered_out"] + sum(account["skipped"].values())
    used = sum(account["used"] for account in summary["sources"].values())
    assert used == summary["images"] == sum(len(f) for f in frames.values())
    assert sum(sum(c.values()) for c in summary["per_split"].values()) == used


def test_the_generated_sets_reach_both_outcomes():
    """Runs after the property test in this module: it must have exercised real splits, not only refusals."""
    assert OUTCOMES.count("prepared") >= 5 and "refused" in OUTCOMES, OUTCOMES
