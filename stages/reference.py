"""train_reference: the assignment's reference architecture at the same latent size, trained as
its public solution was, on the same augmented train split: the yardstick that evaluate compares
our one-pass reconstruction with, side by side in every run.

Writes models/reference/model.pt.
"""

import torch

from emoji_ae.config import load_params, run_stage
from emoji_ae.data import split_tensors
from emoji_ae.files import read_split
from emoji_ae.model import Reference, device, save_model, seed_everything
from emoji_ae.paths import AUGMENTED, model_file, split_file
from emoji_ae.reference import fit_reference


def main():
    params = load_params()
    seed_everything(params.seed, params.train.threads)
    # Without normalisation and with weight decay, thousands of its weights decay into denormal
    # floats, which some CPUs (Intel's above all) compute many times slower: flush them to zero.
    torch.set_flush_denormal(True)
    x = split_tensors(read_split(split_file(AUGMENTED, "train")))
    model = Reference(params.latent, x.shape[-1], x.shape[1]).to(device())
    fit_reference(model, x, params.reference, params.seed)
    save_model(model, model_file("reference"))


if __name__ == "__main__":
    run_stage(main)
