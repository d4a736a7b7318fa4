"""train_ae / train_aux: train the autoencoder, alone (`ae`) or with the auxiliary classifier
(`aux`, loss = MSE + lambda * cross-entropy), on the augmented train split; with `train.analogy`,
also on analogies among the training glyphs, and params' `attribute` teaches
the latent's attribute code.

    python -m stages.train ae|aux

Writes models/<name>/model.pt (weights plus the config that rebuilds the model),
models/<name>/latents.pt (the latent vector of every image of every split, with its text and
label), and reports/train_<name>/ (DVCLive learning curves and the torchinfo table).
"""

import sys

import torch
from dvclive import Live
from torchinfo import summary

from emoji_ae.analogies import training_analogies
from emoji_ae.attributes import slot_names
from emoji_ae.config import PipelineError, load_params, run_stage
from emoji_ae.data import SPLITS, images_and_labels
from emoji_ae.files import broken, read_split, save_torch, write_text
from emoji_ae.model import (
    build_autoencoder,
    describe_shape,
    device,
    encode_all,
    load_model,
    save_model,
    seed_everything,
)
from emoji_ae.paths import AUGMENTED, EXTRA, MODEL_NAMES, latents_file, model_file, split_file, train_reports
from emoji_ae.training import fit


def start_from_pretrained(model) -> None:
    """The pretrain stage's weights: every layer but the aux classifier, which starts fresh."""
    pretrained = load_model(model_file("pretrained"))
    shared = ("size", "channels", "latent", "in_channels", "grid", "attribute", "decoder_dropout", "residual_levels",
              "slots")
    if any(pretrained.config[key] != model.config[key] for key in shared):
        raise broken(model_file("pretrained"), "it was pretrained for another model or latent")
    model.load_state_dict(pretrained.state_dict(), strict=False)


def main():
    if len(sys.argv) != 2 or sys.argv[1] not in MODEL_NAMES:
        raise PipelineError("usage: python -m stages.train ae|aux")
    name = sys.argv[1]
    params = load_params()
    seed_everything(params.seed, params.train.threads)

    frames = {split: read_split(split_file(AUGMENTED, split)) for split in SPLITS}
    tensors = {split: images_and_labels(f) for split, f in frames.items()}
    images = tensors["train"][0]
    # The pretraining glyphs' families hold the analogies and the attribute code's pairs; the subset's
    # train split has few.
    analogies = training_analogies([read_split(EXTRA / "pretrain.parquet"), frames["train"]], params.data.variants)
    slots = slot_names(params.attribute, params.shape.attribute, analogies)
    model = build_autoencoder(params, images.shape[-1], images.shape[1], classifier=name == "aux", slots=slots)
    start_from_pretrained(model)

    table = summary(model, input_size=(1, *images.shape[1:]), device=device(), verbose=0,
                    col_names=("output_size", "num_params"), depth=3)
    write_text(train_reports(name) / "architecture.txt", f"{describe_shape(model)}\n{table}\n")
    with Live(dir=str(train_reports(name)), dvcyaml=False, save_dvc_exp=False) as live:
        fit(model, tensors["train"], tensors["val"], params, live, analogies)

    save_model(model, model_file(name))
    latents = {
        split: {
            "z": encode_all(model, tensors[split][0]),
            "label": tensors[split][1],
            "text": frames[split]["text"].tolist(),
            "augmented": torch.tensor(frames[split]["augmented"].to_numpy()),
        }
        for split in SPLITS
    }
    save_torch(latents, latents_file(name))


if __name__ == "__main__":
    run_stage(main)
