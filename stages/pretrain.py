"""pretrain: the autoencoder learns from far more emoji than the subset's training split.

Trains the model that params.yaml describes (no classifier) on data/extra/pretrain.parquet (other
emoji, never a validation or test emoji nor a variant of one) together with the augmented train
split, for `pretrain.epochs` epochs (with `pretrain.analogy` and params' `attribute`, also on analogies among them);
train_ae and train_aux then start from these weights. With
`pretrain.epochs: 0` it writes the seeded initial weights, so both train from scratch. DVC caches
it as its own stage: a change to the training stages' params does not re-run it.

Writes models/pretrained/model.pt and reports/pretrain/ (DVCLive learning curves).
"""

from dvclive import Live

from emoji_ae.analogies import training_analogies
from emoji_ae.attributes import slot_names
from emoji_ae.config import load_params, run_stage
from emoji_ae.data import images_and_labels
from emoji_ae.files import read_split
from emoji_ae.metrics import evaluate
from emoji_ae.model import build_autoencoder, describe_shape, save_model, seed_everything
from emoji_ae.paths import AUGMENTED, EXTRA, PRETRAIN, model_file, split_file
from emoji_ae.training import pretrain


def main():
    params = load_params()
    seed_everything(params.seed, params.train.threads)
    frames = [read_split(EXTRA / "pretrain.parquet"), read_split(split_file(AUGMENTED, "train"))]
    (extra, labels_extra), (train, labels_train) = (images_and_labels(f) for f in frames)
    val = images_and_labels(read_split(split_file(AUGMENTED, "val")))
    analogies = training_analogies(frames, params.data.variants)
    slots = slot_names(params.attribute, params.shape.attribute, analogies)
    model = build_autoencoder(params, train.shape[-1], train.shape[1], classifier=False, slots=slots)
    print(f"pretrain: {describe_shape(model)}")
    with Live(dir=str(PRETRAIN), dvcyaml=False, save_dvc_exp=False) as live:
        pretrain(model, (extra, labels_extra), (train, labels_train), val, params, live, analogies)
        if not params.pretrain.epochs:  # the untrained start's error: the stage's curves exist, one point long
            live.log_metric("val/mse", evaluate(model, val[0])["mse"])
            live.next_step()
    save_model(model, model_file("pretrained"))


if __name__ == "__main__":
    run_stage(main)
