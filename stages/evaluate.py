"""evaluate: score both models on the test split and write the metrics and figures.

Test MSE is the mean over images and pixels (values in [0, 1]) of the reconstruction from the
refined latent (params' `refine`; the encoder-only figure is kept beside it); PSNR is the mean
over images of 10 * log10(1 / MSE). Writes reports/evaluate/metrics.json (every figure, with the
compose scores under `compose`), reports/headline.json (the few that DVC shows as metrics) and
reports/evaluate/ (reconstructions, confusion matrix, learning curves). The report stage turns them
into reports/report.md.
"""

import numpy as np
import pandas as pd
import torch

from emoji_ae.config import load_params, run_stage
from emoji_ae.data import split_tensors
from emoji_ae.figures import save_curves, save_grid
from emoji_ae.files import missing, read_json, read_split, read_tsv, write_json
from emoji_ae.metrics import confusion_records, evaluate, reconstruction_scores
from emoji_ae.model import class_probabilities, load_model, shape_of
from emoji_ae.paths import (
    AUGMENTED,
    COMPOSE,
    EVALUATE,
    FIGURES,
    HEADLINE,
    MODEL_NAMES,
    model_file,
    reference_file,
    split_file,
    train_reports,
)
from emoji_ae.reference import median_and_range, reference_seeds
from emoji_ae.results import headline

CURVES = {
    "ae": ("train/mse", "val/mse"),
    "aux": ("train/mse", "val/mse", "train/acc", "val/acc"),
}  # what the figure draws


def score(
    model, x, labels: np.ndarray, class_names: list[str], refine, val: torch.Tensor
) -> tuple[dict, dict, np.ndarray | None]:
    """Test metrics of one model (the headline MSE decodes the refined latent; the encoder's
    single pass is kept beside it), its one-pass validation MSE, and the classifier's accuracy."""
    metrics, recon, per_image = reconstruction_scores(model, x, refine)
    metrics["test_mse_per_class"] = {name: float(per_image[labels == k].mean()) for k, name in enumerate(class_names)}
    metrics["val_mse_one_pass"] = evaluate(model, val)["mse"]
    predicted = None
    if model.classifier is not None:
        predicted = class_probabilities(model, x).argmax(1).numpy()
        metrics["test_accuracy"] = float((predicted == labels).mean())
    return metrics, recon, predicted


def score_references(references: dict, x, val, refine) -> tuple[dict, dict]:
    """Each seed's reference scored as ours is; its figures are the seeds' medians, with each seed's
    (`seeds`) and their range (`<figure>_range`). The reconstructions drawn are the first seed's."""
    per_seed, recons = {}, None
    for seed, model in references.items():
        scores, images, _ = reconstruction_scores(model, x, refine)
        per_seed[seed] = {**scores, "val_mse_one_pass": evaluate(model, val)["mse"]}
        recons = recons or images
    metrics = {}
    for key in per_seed[next(iter(per_seed))]:
        spread = median_and_range([s[key] for s in per_seed.values()])
        metrics[key], metrics[f"{key}_range"] = spread["median"], [spread["low"], spread["high"]]
    metrics["seeds"] = {str(seed): scores for seed, scores in per_seed.items()}
    return metrics, recons


def learning_curves(name: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """DVCLive's per-epoch TSVs, as {metric: (epochs, values)}."""
    curves = {}
    for tsv in sorted((train_reports(name) / "plots" / "metrics").rglob("*.tsv")):
        table = read_tsv(tsv)
        curves[f"{tsv.parent.name}/{tsv.stem}"] = (table["step"].to_numpy() + 1, table.iloc[:, -1].to_numpy())
    return curves


def draw_reconstructions(test: pd.DataFrame, x: torch.Tensor, recons: dict, metrics: dict) -> None:
    """Originals above their reconstructions, refined and in one pass, and the reference's:
    the first unaugmented test images."""
    shown = np.flatnonzero(~test["augmented"].to_numpy())[:10]
    rows, titles = [[x[i] for i in shown]], ["original"]
    seed, first = next(iter(metrics["reference"]["seeds"].items()))
    for name, how, mse in (
        ("ae", "refined", metrics["ae"]["test_mse"]),
        ("ae", "one pass", metrics["ae"]["test_mse_one_pass"]),
        ("aux", "refined", metrics["aux"]["test_mse"]),
        ("reference", "one pass", first["test_mse_one_pass"]),
    ):
        rows.append([recons[name][how][i] for i in shown])
        titles.append(f"{name}{f' (seed {seed})' if name == 'reference' else ''}, {how} ({mse:.4f})")
    save_grid(
        EVALUATE / "reconstructions.png",
        rows,
        row_titles=titles,
        col_titles=[test["text"].iloc[i] for i in shown],
        title="Test images and their reconstructions (test MSE)",
    )


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
    references = {seed: load_model(reference_file(seed)) for seed in reference_seeds(params)}
    val = split_tensors(read_split(split_file(AUGMENTED, "val")))
    compose, curves = read_json(COMPOSE / "metrics.json"), {name: learning_curves(name) for name in MODEL_NAMES}
    for name, keys in CURVES.items():
        for key in sorted(set(keys) - set(curves[name])):
            raise missing(train_reports(name) / "plots" / "metrics" / f"{key}.tsv")
    metrics, recons, predictions = {}, {}, {}
    for name, model in models.items():
        metrics[name], recons[name], predictions[name] = score(model, x, labels, class_names, params.refine, val)
    metrics["aux"]["mse_vs_ae"] = metrics["aux"]["test_mse"] / metrics["ae"]["test_mse"]
    metrics["reference"], recons["reference"] = score_references(references, x, val, params.refine)
    for name in MODEL_NAMES:  # the reconstruction target: ours, one pass, against the reference seeds' median
        metrics[name]["one_pass_vs_reference"] = (
            metrics[name]["test_mse_one_pass"] / metrics["reference"]["test_mse_one_pass"]
        )
    metrics["compose"] = compose
    metrics["shape"] = shape_of(models["ae"])
    write_json(FIGURES, metrics)
    write_json(HEADLINE, headline(metrics))
    write_json(
        EVALUATE / "confusion.json", confusion_records(labels, predictions["aux"], test["text"], class_names), indent=1
    )
    draw_reconstructions(test, x, recons, metrics)
    draw_learning_curves(curves)
    print(f"evaluate: ae test mse {metrics['ae']['test_mse']:.4f} psnr {metrics['ae']['test_psnr']:.2f}; "
          f"aux test mse {metrics['aux']['test_mse']:.4f} accuracy {metrics['aux']['test_accuracy']:.3f}")


if __name__ == "__main__":
    run_stage(main)
