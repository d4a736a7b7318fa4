"""Run-to-run noise: how far a figure may move between runs that differ only in training's luck.

Training is bit for bit the same on one machine, but on another CPU its last bits differ (oneDNN
blocks its sums by the cache sizes) and training carries that as far as a change of seed does. So
`python -m emoji_ae.tools.noise` retrains with other seeds and commits each figure's values in
reports/noise.json, and a figure's **tolerance** is derived from them: the half-width of a two-sided
prediction interval, at confidence 1 - ALPHA, for the difference between two runs,

    t(n - 1) * s * sqrt(2)

where s is the figures' standard deviation over the n recorded runs and t Student's quantile
(few runs give a wide quantile, so an unlucky small spread does not make a brittle test). The
fresh clone's reproduction (tests/test_reproduction.py) and the pull-request comment (emoji_ae/tools/
pr_report.py) both judge a change by it. A figure whose runs all agree (what no training computes)
must agree exactly.
"""

import math
import statistics

ALPHA = 0.001  # per figure: a few dozen figures are compared, and a red test must mean a real change
# Student's t quantile 1 - ALPHA / 2 by degrees of freedom (n - 1 runs); beyond the table, the normal one.
T_QUANTILE = {1: 636.6, 2: 31.60, 3: 12.92, 4: 8.610, 5: 6.869, 6: 5.959, 7: 5.408, 8: 5.041, 9: 4.781, 10: 4.587,
              12: 4.318, 15: 4.073, 20: 3.850, 30: 3.646}
EXACT = 1e-6  # relative: figures no training computes


def leaves(tree: dict, prefix: str = "") -> dict[str, float]:
    """Every number of a metrics tree, by its dotted name."""
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(leaves(value, f"{prefix}{key}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[f"{prefix}{key}"] = float(value)
    return out


def t_quantile(dof: int) -> float:
    known = [d for d in T_QUANTILE if d <= dof]
    return T_QUANTILE[max(known)] if dof <= max(T_QUANTILE) else 3.291


def tolerance(values: list[float]) -> float | None:
    """How far a figure may move between two runs, from its values over the recorded runs; None
    with fewer than two runs (no spread measured)."""
    if len(values) < 2:
        return None
    return t_quantile(len(values) - 1) * statistics.stdev(values) * math.sqrt(2)


def within(committed: float, other: float, values: list[float]) -> bool:
    """Whether `other` is `committed` up to run-to-run noise (exactly, where every run agreed)."""
    allowed = tolerance(values)
    if allowed is None:
        return False
    return abs(other - committed) <= max(allowed, EXACT * abs(committed))


def beyond_noise(committed: dict, other: dict, noise: dict, keys: list[str]) -> list[str]:
    """Of `keys` (dotted names in both flat dicts), those where `other` is not `committed` up to
    noise, each as one line that names the figure, both values and the tolerance; a key that
    reports/noise.json lacks counts as beyond it."""
    problems = []
    for key in keys:
        values = noise.get("metrics", {}).get(key, {}).get("values", [])
        if not within(committed[key], other[key], values):
            allowed = tolerance(values)
            bound = "no noise measured" if allowed is None else f"tolerance {allowed:.3g} from {len(values)} runs"
            problems.append(f"{key}: {other[key]:.6g} against {committed[key]:.6g} ({bound})")
    return problems


def compared_keys(flat: dict) -> list[str]:
    """The figures a reproduction compares (dotted names of reports/metrics.json): every figure of
    the trained models and the reference, and the composition judge's held-out summaries (top-1 of
    the composite, pixel arithmetic and the reconstruction per kind, and the latent rank). The
    reference's figures are its seeds' medians; each seed's own (named by the seed, which other runs
    do not share) is not compared."""
    trained = [k for k in flat if k.startswith(("ae.", "aux.", "reference.")) and not k.startswith("reference.seeds.")]
    judged = [k for k in flat if k.startswith(("compose.ae.test.", "compose.aux.test."))
              and (k.endswith(".top1") and ".judge." in k or k.endswith("family_mean.top1"))]
    return trained + judged
