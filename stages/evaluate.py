"""evaluate: score both models on the test split and write the metrics and figures.

Test MSE is the mean over images and pixels (values in [0, 1]) of the reconstruction from the
refined latent (params' `refine`; the encoder-only figure is kept beside it); PSNR is the mean
over images of 10 * log10(1 / MSE). Writes reports/metrics.json (headline metrics, with the
compose scores under `compose`) and reports/evaluate/ (reconstructions, confusion matrix,
learning curves). The report stage turns them into reports/report.md.
"""

import math
import statistics

import numpy as np
import pandas as pd
import torch

from stages.lib.config import load_params, run_stage
from stages.lib.data import split_tensors
from stages.lib.figures import save_curves, save_grid
from stages.lib.files import missing, read_json, read_split, read_tsv, write_json
from stages.lib.metrics import confusion_records
from stages.lib.model import class_probabilities, decode_all, encode_all, load_model
from stages.lib.paths import AUGMENTED, COMPOSE, EVALUATE, METRICS, MODEL_NAMES, model_file, split_file, train_reports

CURVES = {"ae": ("train/mse", "val/mse"), "aux": ("train/mse", "val/mse", "train/acc", "val/acc")}  # what the figure draws


def score(model, x: torch.Tensor, labels: np.ndarray, class_names: list[str], refine) -> tuple[dict, torch.Tensor, np.ndarray | None]:
    """Test metrics of one model. The headline MSE decodes the refined latent; the encoder's
    single pass is kept beside it, so the refinement's share of the result is visible."""
    z = encode_all(model, x)
    recon = decode_all(model, encode_all(model, x, refine))
    per_image = (recon - x).pow(2).flatten(1).mean(1).numpy()
    metrics = {
        "test_mse": float(per_image.mean()),
        # Python's scalar log10: NumPy's vectorised one rounds differently on AVX-512 CPUs.
        "test_psnr": statistics.fmean(10 * math.log10(1 / max(m, 1e-10)) for m in per_image.tolist()),
        "test_mse_encoder_only": float((decode_all(model, z) - x).pow(2).mean()),
        "test_mse_per_class": {name: float(per_image[labels == k].mean()) for k, name in enumerate(class_names)},
    }
    predicted = None
    if model.classifier is not None:
        predicted = class_probabilities(model, x, z).argmax(1).numpy()
        metrics["test_accuracy"] = float((predicted == labels).mean())
    return metrics, recon, predicted


def learning_curves(name: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """DVCLive's per-epoch TSVs, as {metric: (epochs, values)}."""
    curves = {}
    for tsv in sorted((train_reports(name) / "plots" / "metrics").rglob("*.tsv")):
        table = read_tsv(tsv)
        curves[f"{tsv.parent.name}/{tsv.stem}"] = (table["step"].to_numpy() + 1, table.iloc[:, -1].to_numpy())
    return curves


def draw_reconstructions(test: pd.DataFrame, x: torch.Tensor, recons: dict, metrics: dict) -> None:
    """Originals above their reconstructions: the first unaugmented test images."""
    shown = np.flatnonzero(~test["augmented"].to_numpy())[:10]
    save_grid(EVALUATE / "reconstructions.png", [[x[i] for i in shown], *[[recons[m][i] for i in shown] for m in MODEL_NAMES]],
              row_titles=["original", *[f"{m} ({metrics[m]['test_mse']:.4f})" for m in MODEL_NAMES]],
              col_titles=[test["text"].iloc[i] for i in shown], title="Test images and their reconstructions (test MSE)")


def draw_learning_curves(curves: dict) -> None:
    panels = [{"title": f"{name}: reconstruction MSE", "ylabel": "MSE", "log": True,
               "series": {split: curves[name][f"{split}/mse"] for split in ("train", "val")}} for name in MODEL_NAMES]
    panels.append({"title": "aux: classification accuracy", "ylabel": "accuracy",
                   "series": {split: curves["aux"][f"{split}/acc"] for split in ("train", "val")}})
    save_curves(EVALUATE / "learning_curves.png", panels, "Learning curves per epoch")


def main():
    params = load_params()
    class_names = [rule.name for rule in params.data.classes]
    test = read_split(split_file(AUGMENTED, "test"))
    x, labels = split_tensors(test), test["label"].to_numpy()

    # Every input is read before anything is written.
    models = {name: load_model(model_file(name)) for name in MODEL_NAMES}
    compose, curves = read_json(COMPOSE / "metrics.json"), {name: learning_curves(name) for name in MODEL_NAMES}
    for name, keys in CURVES.items():
        for key in sorted(set(keys) - set(curves[name])):
            raise missing(train_reports(name) / "plots" / "metrics" / f"{key}.tsv")
    metrics, recons, predictions = {}, {}, {}
    for name, model in models.items():
        metrics[name], recons[name], predictions[name] = score(model, x, labels, class_names, params.refine)
    metrics["aux"]["mse_vs_ae"] = metrics["aux"]["test_mse"] / metrics["ae"]["test_mse"]
    metrics["compose"] = compose
    write_json(METRICS, metrics)
    write_json(EVALUATE / "confusion.json", confusion_records(labels, predictions["aux"], test["text"], class_names), indent=1)
    draw_reconstructions(test, x, recons, metrics)
    draw_learning_curves(curves)
    print(f"evaluate: ae test mse {metrics['ae']['test_mse']:.4f} psnr {metrics['ae']['test_psnr']:.2f}; "
          f"aux test mse {metrics['aux']['test_mse']:.4f} accuracy {metrics['aux']['test_accuracy']:.3f}")


if __name__ == "__main__":
    run_stage(main)
