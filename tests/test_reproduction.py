"""A fresh clone reproduces the committed results: data hashes exactly, trained metrics closely.

Runs the default pipeline (a few minutes on 2 cores) on the committed params, started when the
tests are collected and run beside them (tests/conftest.py: `Reproduction`). The data stages
are bitwise reproducible on any x86_64 CPU (stages/__init__.py pins the kernels). Training is
bitwise reproducible on one machine, but on another CPU the last bits differ (oneDNN picks
its convolution blocking from the cache sizes) and 80 epochs amplify them: the Intel Xeon with
AVX-512 and AMX that retrained the committed models moved the test MSEs by up to 0.7% and the
aux accuracy by half a point (docs/findings.md). The tolerances are several times that. The
composition scores swing by several points between CPUs; only their baselines, which no model
computes, are compared.
"""

import json

import pytest
import yaml

from tests.conftest import git

pytestmark = pytest.mark.e2e

MSE_RELATIVE = 0.05   # test MSEs and the aux/ae ratio
PSNR_DB = 0.25        # about what 5% of MSE is
ACCURACY = 0.075      # two emoji's worth: an emoji's 7 test images are right or wrong together


def leaves(tree, prefix=""):
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from leaves(value, f"{prefix}{key}.")
    else:
        yield prefix.rstrip("."), tree


def outs_of(lock: dict, stage: str) -> dict:
    return {out["path"]: out["md5"] for out in lock["stages"][stage]["outs"]}


def close_to(key: str, value: float):
    if key.endswith("accuracy"):
        return pytest.approx(value, abs=ACCURACY)
    if key.endswith("psnr"):
        return pytest.approx(value, abs=PSNR_DB)
    return pytest.approx(value, rel=MSE_RELATIVE)


def test_a_fresh_clone_reproduces_the_committed_data_and_metrics(reproduced):
    repo = reproduced
    committed_lock = yaml.safe_load(git(repo, "show", "HEAD:dvc.lock"))
    committed = dict(leaves(json.loads(git(repo, "show", "HEAD:reports/metrics.json"))))
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    for stage in ("prepare", "augment", "extra"):
        assert outs_of(lock, stage) == outs_of(committed_lock, stage), f"{stage} outputs differ"
    reproduced = dict(leaves(json.loads((repo / "reports/metrics.json").read_text())))
    assert reproduced.keys() == committed.keys()
    trained = [key for key in committed if key.startswith(("ae.", "aux.", "reference."))]
    assert len(trained) >= 20
    for key in trained:
        assert reproduced[key] == close_to(key, committed[key]), key
    # What no model computes: the pixel baselines of the analogies, and how many there are.
    baselines = [key for key in committed if key.endswith(("pixel_mse", "copy_mse", ".n")) or key.startswith("compose.n_")]
    assert len(baselines) >= 30
    for key in baselines:
        assert reproduced[key] == pytest.approx(committed[key], rel=1e-6), key
