"""How the models are scored: reconstruction error over a split, the classifier's accuracy and
its errors by emoji, and a bootstrap interval over emoji."""

import math
import statistics

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from emoji_ae.model import class_probabilities, decode_all, encode_all


def evaluate(model, x, y=None, refine=None) -> dict:
    """Mean per-pixel MSE (and cross-entropy and accuracy when labelled) over a split.

    The reconstruction decodes the refined latent when `refine` (params' refine section) is
    given; the classifier's figures come from class_probabilities.
    """
    z = encode_all(model, x)
    recon = decode_all(model, encode_all(model, x, refine) if refine is not None and refine.steps else z)
    result = {"mse": F.mse_loss(recon, x).item()}
    if model.classifier is not None and y is not None:
        probabilities = class_probabilities(model, x, z)
        result.update(
            ce=F.nll_loss(probabilities.log(), y).item(), acc=(probabilities.argmax(1) == y).float().mean().item()
        )
    return result


def reconstruction_scores(model, x: torch.Tensor, refine) -> tuple[dict, dict, np.ndarray]:
    """MSE, PSNR and SSIM of a split's reconstructions, refined (params' refine) and from the
    encoder's single pass; the reconstructions both ways; the refined per-image MSE."""
    # Imported here: torchmetrics pulls in torchvision's models, seconds that every stage
    # importing this module would pay at start-up for a score only evaluation computes.
    from torchmetrics.functional.image import structural_similarity_index_measure as ssim

    z = encode_all(model, x)
    one_pass = decode_all(model, z)
    recon = decode_all(model, encode_all(model, x, refine))
    per_image = (recon - x).pow(2).flatten(1).mean(1)
    scores = {
        "test_mse": float(per_image.mean()),
        # Python's scalar log10: NumPy's vectorised one rounds differently on AVX-512 CPUs.
        "test_psnr": statistics.fmean(10 * math.log10(1 / max(m, 1e-10)) for m in per_image.tolist()),
        "test_ssim": float(ssim(recon, x, data_range=1.0)),
        "test_mse_one_pass": float((one_pass - x).pow(2).mean()),
        "test_ssim_one_pass": float(ssim(one_pass, x, data_range=1.0)),
    }
    return scores, {"refined": recon, "one pass": one_pass}, per_image.numpy()


def confusion_records(labels, predicted, emoji, class_names: list[str]) -> list[dict]:
    """One {"actual", "predicted", "emoji"} per image: the layout of DVC's `confusion` plot
    template, with each image's emoji."""
    return [{"actual": class_names[a], "predicted": class_names[p], "emoji": text}
            for a, p, text in zip(labels, predicted, emoji)]


def wrong_emoji(confusion: list[dict]) -> str:
    """The emoji a classifier gets wrong, most wrong images first: "dog face 7 of 7 (animal,
    read as face); ..."; empty when every image is right."""
    images = pd.DataFrame(confusion)
    wrong = images[images["actual"] != images["predicted"]]
    per_emoji = images.groupby("emoji").size()
    runs = wrong.groupby("emoji").agg(n=("predicted", "size"), actual=("actual", "first"),
                                      predicted=("predicted", lambda p: p.mode()[0]))
    runs = runs.sort_values("n", ascending=False, kind="stable")
    return "; ".join(
        f"{emoji} {r.n} of {per_emoji[emoji]} ({r.actual}, read as {r.predicted})" for emoji, r in runs.iterrows()
    )


def accuracy_interval(
    confusion: list[dict], seed: int, draws: int = 10_000, level: float = 0.95
) -> tuple[float, float]:
    """A bootstrap interval for the accuracy on emoji the model has never seen.

    It resamples whole emoji, not images: an emoji's images are copies of one design and are
    right or wrong together, so resampling images would claim far more certainty than there is.
    """
    images = pd.DataFrame(confusion)
    per_emoji = (images["actual"] == images["predicted"]).groupby(images["emoji"]).agg(["sum", "size"])
    picks = np.random.default_rng(seed).integers(0, len(per_emoji), (draws, len(per_emoji)))
    accuracies = per_emoji["sum"].to_numpy()[picks].sum(1) / per_emoji["size"].to_numpy()[picks].sum(1)
    low, high = np.quantile(accuracies, [(1 - level) / 2, (1 + level) / 2])
    return float(low), float(high)
