"""train_reference: the assignment's reference architecture at the same latent size, trained as
its public solution was, on the same augmented train split, from each of `reference.seeds` seeds
(the run's seed, seed + 1000, ...), side by side: the yardstick that evaluate compares our one-pass
reconstruction with, by the seeds' median, side by side in every run. The benchmark trains it
through the same function, so one seed gives one model in both.

Writes models/reference/seed_<seed>.pt, one per seed.
"""

from emoji_ae.config import load_params, run_stage
from emoji_ae.data import split_tensors
from emoji_ae.files import read_split
from emoji_ae.model import save_model
from emoji_ae.paths import AUGMENTED, reference_file, split_file
from emoji_ae.reference import train_references


def main():
    params = load_params()
    x = split_tensors(read_split(split_file(AUGMENTED, "train")))
    for seed, model in train_references(params, x).items():
        save_model(model, reference_file(seed))


if __name__ == "__main__":
    run_stage(main)
