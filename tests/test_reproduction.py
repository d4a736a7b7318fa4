"""A fresh clone reproduces the committed results: data hashes exactly, trained figures within noise.

The full-size reproduction, a command of its own: `pytest -m reproduction` (the README's team
section; `.ci/run` runs it after the README's test command). It runs the default pipeline on the
committed params (tests/conftest.py: `Reproduction`) and reports each figure it compares: the
committed value, this machine's and the tolerance. The data stages
are bitwise reproducible on any x86_64 CPU (emoji_ae/__init__.py pins the kernels). Training is
bitwise reproducible on one machine, but on another CPU the last bits differ (oneDNN picks its
convolution blocking from the cache sizes) and training carries them as far as a change of seed.
So each trained figure, and each figure of the composition judge, may move by its tolerance
(emoji_ae/noise.py), derived from the spread over seeds committed in reports/noise.json; what no
model computes must match exactly. tests/test_noise.py shows that a real change of training fails it.
"""

import json

import pytest
import yaml

from emoji_ae.noise import beyond_noise, compared_keys, leaves, tolerance
from emoji_ae.tools.app_benchmark import start_app
from tests import hostile
from tests.conftest import emoji_ae, emoji_png, git

pytestmark = pytest.mark.reproduction


def outs_of(lock: dict, stage: str) -> dict:
    return {out["path"]: out["md5"] for out in lock["stages"][stage]["outs"]}


def report_lines(committed: dict, reproduced: dict, noise: dict, keys: list[str]) -> list[str]:
    """One line per compared figure: committed, this machine, the tolerance, and whether it is within."""
    lines = [f"{'figure':<58} {'committed':>11} {'here':>11} {'tolerance':>10}  within"]
    for key in keys:
        values = noise.get("metrics", {}).get(key, {}).get("values", [])
        allowed = tolerance(values)
        bound = "exact" if allowed is not None and allowed == 0 else ("none" if allowed is None else f"{allowed:.3g}")
        ok = not beyond_noise(committed, reproduced, noise, [key])
        lines.append(f"{key:<58} {committed[key]:>11.5g} {reproduced[key]:>11.5g} {bound:>10}  {'yes' if ok else 'NO'}")
    return lines


def test_a_fresh_clone_reproduces_the_committed_data_and_metrics(reproduced, reproduction_report):
    repo = reproduced
    committed_lock = yaml.safe_load(git(repo, "show", "HEAD:dvc.lock"))
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    for stage in ("prepare", "augment", "extra"):
        assert outs_of(lock, stage) == outs_of(committed_lock, stage), f"{stage} outputs differ"
    committed = leaves(json.loads(git(repo, "show", "HEAD:reports/metrics.json")))
    reproduced = leaves(json.loads((repo / "reports/metrics.json").read_text()))
    assert reproduced.keys() == committed.keys()
    keys = compared_keys(committed)
    assert len([k for k in keys if k.startswith(("ae.", "aux.", "reference."))]) >= 20 and len(keys) >= 40
    noise = json.loads(git(repo, "show", "HEAD:reports/noise.json"))
    reproduction_report += report_lines(committed, reproduced, noise, keys)
    assert not beyond_noise(committed, reproduced, noise, keys), "\n".join(
        beyond_noise(committed, reproduced, noise, keys)
    )
    # What no model computes: the pixel baselines of the analogies, and how many there are.
    baselines = [
        key for key in committed if key.endswith(("pixel_mse", "copy_mse", ".n")) or key.startswith("compose.n_")
    ]
    assert len(baselines) >= 30
    for key in baselines:
        assert reproduced[key] == pytest.approx(committed[key], rel=1e-6), key


VARIANT_RECIPE = [
    "waving hand dark skin tone",
    "waving hand sign",
    "thumbs up sign",
]  # as the package spells the CLDR names


def test_the_default_package_composes_every_drawing_by_name_and_its_page_is_safe(reproduced, tmp_path):
    listed = emoji_ae("names", "thumbs", cwd=reproduced).stdout.splitlines()
    assert {"thumbs up sign", "thumbs up dark skin tone", "twemoji: thumbs up sign", "thumbs down sign"} <= set(
        listed
    ), listed
    assert (
        len([n for n in listed if n.startswith("thumbs up ") and n.endswith(" skin tone")]) == 5
    )  # CLDR names, both sets
    composed = emoji_ae("compose", " - ".join(VARIANT_RECIPE[:2]) + " + " + VARIANT_RECIPE[2], cwd=reproduced)
    assert composed.returncode == 0 and "base: thumbs up sign" in composed.stdout, composed.stderr
    secret = tmp_path / "secret.png"
    secret.write_bytes(emoji_png(1))
    app, url, _ = start_app(reproduced / "models/release/ae")
    try:
        status, value = hostile.request(url, "POST", "/api/compose", hostile.compose_body(VARIANT_RECIPE))
        assert status == 200 and value["base"] == "thumbs up sign"
        hostile.assert_safe(url, VARIANT_RECIPE, str(secret))
    finally:
        app.terminate()
        app.wait(timeout=10)
