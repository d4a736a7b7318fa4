"""train_ae / train_aux: train the autoencoder, alone (`ae`) or with the auxiliary classifier
(`aux`, loss = MSE + lambda * cross-entropy), on the augmented train split.

    python -m stages.train ae|aux

Writes models/<name>/model.pt (weights plus the config that rebuilds the model),
models/<name>/latents.pt (the latent vector of every image of every split, with its text and
label), and reports/train_<name>/ (DVCLive learning curves and the torchinfo table).
"""

import sys
from pathlib import Path

import torch
from dvclive import Live
from torchinfo import summary

from stages.config import PipelineError, load_params, run_stage
from stages.data import SPLITS, images_and_labels, read_split, write_text
from stages.model import build_autoencoder, device, encode_all, fit, save_model, save_torch, seed_everything

DATA = Path("data/augmented")


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in ("ae", "aux"):
        raise PipelineError("usage: python -m stages.train ae|aux")
    name = sys.argv[1]
    params = load_params()
    seed_everything(params.seed, params.train.threads)

    frames = {split: read_split(DATA / f"{split}.parquet") for split in SPLITS}
    tensors = {split: images_and_labels(f) for split, f in frames.items()}
    images = tensors["train"][0]
    model = build_autoencoder(params, images.shape[-1], images.shape[1], classifier=name == "aux")

    out, report = Path("models") / name, Path("reports") / f"train_{name}"
    table = summary(model, input_size=(1, *images.shape[1:]), device=device(), verbose=0,
                    col_names=("output_size", "num_params"), depth=3)
    write_text(report / "architecture.txt", f"{table}\n")

    with Live(dir=str(report), dvcyaml=False, save_dvc_exp=False) as live:
        aux_lambda = params.aux.lambda_ if name == "aux" else 0.0
        fit(model, tensors["train"], tensors["val"], params.train, live, aux_lambda, params.seed, params.aux.ramp)

    save_model(model, out / "model.pt")
    latents = {
        split: {
            "z": encode_all(model, tensors[split][0]),
            "label": tensors[split][1],
            "text": frames[split]["text"].tolist(),
            "augmented": torch.tensor(frames[split]["augmented"].to_numpy()),
        }
        for split in SPLITS
    }
    save_torch(latents, out / "latents.pt")


if __name__ == "__main__":
    run_stage(main)
