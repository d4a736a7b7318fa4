"""aux_cv: the aux model's accuracy on emoji it has never seen, for choosing aux params
without the test split.

    python -m emoji_ae.tools.aux_cv                                  # params.yaml: trains 2 x folds models
    python -m emoji_ae.tools.aux_cv aux.lambda=0.03 aux.dropout=0.5  # with some values replaced, as dvc exp run -S
    python -m emoji_ae.tools.aux_cv --fold-seed 0                    # another deal of emoji into folds

The validation split holds few emoji, and an emoji's augmented copies are right or wrong
together, so one split's accuracy moves in steps of several points (see the report's interval).
This pools train and val and splits them into folds by emoji, stratified by class. In each fold
the autoencoder and the aux model train on the other folds, as train_ae and train_aux would, and
are scored on the held-out emoji with one encoder pass. It prints each fold (with the emoji the
classifier got wrong) and the means: accuracy, and the aux model's MSE over the autoencoder's.
Which emoji share a fold moves the mean by points, so judge a change on two fold seeds. The models
train from scratch, without the pipeline's pretraining (which saw the train split, held-out folds
included): compare settings with each other here, not with the pipeline's figures.
"""

import argparse

import numpy as np
import pandas as pd
import torch

from emoji_ae.config import PipelineError, load_params, run_stage
from emoji_ae.data import images_and_labels
from emoji_ae.files import read_split
from emoji_ae.metrics import confusion_records, evaluate, wrong_emoji
from emoji_ae.model import build_autoencoder, class_probabilities, seed_everything
from emoji_ae.paths import AUGMENTED, split_file
from emoji_ae.training import fit


def emoji_folds(frame: pd.DataFrame, folds: int, seed: int) -> np.ndarray:
    """Each image's fold: every image of a base emoji (all its sources and variants) in one fold,
    each class's emoji dealt round the folds in a seeded random order."""
    labels = frame.groupby("base")["label"].first()
    rarest = labels.value_counts().min()
    if not 2 <= folds <= rarest:
        raise PipelineError(
            f"--folds is {folds}; it must be from 2 to {rarest}, the emoji of the rarest class in train + val"
        )
    if seed < 0:
        raise PipelineError(f"--fold-seed is {seed}; it must be a non-negative integer, like params.yaml's seed")
    rng = np.random.default_rng(seed)
    fold_of = {}
    for label in sorted(labels.unique()):
        for i, emoji in enumerate(rng.permutation(sorted(labels[labels == label].index))):
            fold_of[emoji] = i % folds
    return frame["base"].map(fold_of).to_numpy()


def train_and_score(params, x, y, held_out: np.ndarray, classifier: bool) -> dict:
    seed_everything(params.seed, params.train.threads)
    # Named apart from the test split, which this never reads.
    fit_on, scored = torch.from_numpy(~held_out), torch.from_numpy(held_out)
    model = build_autoencoder(params, x.shape[-1], x.shape[1], classifier)
    fit(model, (x[fit_on], y[fit_on]), (x[scored], y[scored]), params)
    result = evaluate(model, x[scored])
    if classifier:  # the predictions once, for the accuracy and the list of wrong emoji
        result["predicted"] = class_probabilities(model, x[scored]).argmax(1)
        result["acc"] = (result["predicted"] == y[scored]).float().mean().item()
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "overrides", nargs="*", metavar="KEY=VALUE", help="replace a value of params.yaml, e.g. aux.lambda=0.03"
    )
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument(
        "--fold-seed", type=int, help="seed of the deal of emoji into folds (default: seed in params.yaml)"
    )
    args = parser.parse_args()
    params = load_params(overrides=args.overrides)
    fold_seed = params.seed if args.fold_seed is None else args.fold_seed

    frame = pd.concat([read_split(split_file(AUGMENTED, split)) for split in ("train", "val")], ignore_index=True)
    fold = emoji_folds(frame, args.folds, fold_seed)
    x, y = images_and_labels(frame)
    class_names = [rule.name for rule in params.data.classes]
    accuracies, ratios = [], []
    for k in range(args.folds):
        held_out = fold == k
        ae = train_and_score(params, x, y, held_out, classifier=False)
        aux = train_and_score(params, x, y, held_out, classifier=True)
        accuracies.append(aux["acc"])
        ratios.append(aux["mse"] / ae["mse"])
        print(f"fold {k + 1}/{args.folds}: {frame['base'][held_out].nunique()} emoji, accuracy {aux['acc']:.1%}, "
              f"MSE aux {aux['mse']:.5f} / ae {ae['mse']:.5f} = {ratios[-1]:.3f}")
        confusion = confusion_records(
            y[held_out].tolist(), aux["predicted"].tolist(), frame["text"][held_out], class_names
        )
        print(f"  wrong: {wrong_emoji(confusion) or 'none'}")
    print(
        f"aux_cv {' '.join(args.overrides) or '(params.yaml)'}, fold seed {fold_seed}: accuracy "
        f"{np.mean(accuracies):.1%}, "
        f"MSE aux/ae {np.mean(ratios):.3f} (means over {args.folds} folds)"
    )


if __name__ == "__main__":
    run_stage(main)
