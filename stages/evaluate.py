"""evaluate: score both models on the test split and write the metrics, figures and report.

Test MSE is the mean over images and pixels (values in [0, 1]) of the reconstruction from the
refined latent (params' `refine`; the encoder-only figure is kept beside it); PSNR is the mean
over images of 10 * log10(1 / MSE). Writes reports/metrics.json (headline metrics, with the compose
scores under `compose`), reports/evaluate/ (reconstructions, confusion matrix, learning
curves, per-class table) and reports/report.md.
"""

import json
import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from stages.config import load_params, run_stage
from stages.data import read_split, split_tensors, write_text
from stages.figures import save_curves, save_grid
from stages.model import class_probabilities, decode_all, encode_all, load_model
from stages.report import confusion_records, render_report

MODELS = ("ae", "aux")
OUT = Path("reports/evaluate")


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
    for tsv in sorted((Path("reports") / f"train_{name}" / "plots" / "metrics").rglob("*.tsv")):
        table = pd.read_csv(tsv, sep="\t")
        curves[f"{tsv.parent.name}/{tsv.stem}"] = (table["step"].to_numpy() + 1, table.iloc[:, -1].to_numpy())
    return curves


def main():
    params = load_params()
    class_names = [rule.name for rule in params.data.classes]
    test = read_split("data/augmented/test.parquet")
    x = split_tensors(test)
    labels = test["label"].to_numpy()

    metrics, recons, predictions = {}, {}, {}
    for name in MODELS:
        metrics[name], recons[name], predictions[name] = score(load_model(Path("models") / name / "model.pt"), x, labels, class_names, params.refine)
    metrics["aux"]["mse_vs_ae"] = metrics["aux"]["test_mse"] / metrics["ae"]["test_mse"]
    metrics["compose"] = json.loads(Path("reports/compose/metrics.json").read_text())
    write_text("reports/metrics.json", json.dumps(metrics, indent=2) + "\n")

    confusion = confusion_records(labels, predictions["aux"], test["text"], class_names)
    write_text(OUT / "confusion.json", json.dumps(confusion, indent=1) + "\n")

    # Originals above their reconstructions: the first unaugmented test image of each kind.
    shown = np.flatnonzero(~test["augmented"].to_numpy())[:10]
    save_grid(OUT / "reconstructions.png", [[x[i] for i in shown], *[[recons[m][i] for i in shown] for m in MODELS]],
              row_titles=["original", *[f"{m} ({metrics[m]['test_mse']:.4f})" for m in MODELS]],
              col_titles=[test["text"].iloc[i] for i in shown], title="Test images and their reconstructions (test MSE)")

    curves = {name: learning_curves(name) for name in MODELS}
    panels = [
        {"title": f"{name}: reconstruction MSE", "ylabel": "MSE", "log": True,
         "series": {split: curves[name][f"{split}/mse"] for split in ("train", "val")}}
        for name in MODELS
    ]
    panels.append({"title": "aux: classification accuracy", "ylabel": "accuracy",
                   "series": {split: curves["aux"][f"{split}/acc"] for split in ("train", "val")}})
    save_curves(OUT / "learning_curves.png", panels, "Learning curves per epoch")

    per_class = pd.DataFrame({m: metrics[m]["test_mse_per_class"] for m in MODELS})
    write_text("reports/report.md", render_report(params, metrics, per_class, confusion))
    print(f"evaluate: ae test mse {metrics['ae']['test_mse']:.4f} psnr {metrics['ae']['test_psnr']:.2f}; "
          f"aux test mse {metrics['aux']['test_mse']:.4f} accuracy {metrics['aux']['test_accuracy']:.3f}")


if __name__ == "__main__":
    run_stage(main)
