"""train_reference: the assignment's reference architecture at the same latent size, trained as
its public solution was, on the same augmented train split: the yardstick that evaluate compares
our one-pass reconstruction with, side by side in every run.

Writes models/reference/model.pt.
"""

import torch

from stages.lib.config import load_params, run_stage
from stages.lib.data import split_tensors
from stages.lib.files import read_split
from stages.lib.model import Reference, device, save_model
from stages.lib.paths import AUGMENTED, model_file, split_file
from stages.lib.training import fit_reference, seed_everything


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
