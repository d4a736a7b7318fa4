"""profile_train: where training spends its time, measured with torch.profiler.

    python -m emoji_ae.tools.profile_train               # train_ae's training, 5 epochs
    python -m emoji_ae.tools.profile_train aux --epochs 2

Trains as train_ae or train_aux does (params.yaml, the augmented train and val splits, the same
fit) for a few epochs under torch.profiler, then prints the operators that took the most time
and how the wall time splits: the backward pass, the optimizer, the forward passes with the
batching around them (training and the per-epoch validation), and Python outside any PyTorch
operator (the loop, tqdm, the per-epoch bookkeeping). Writes nothing. Meant for the CPU: on a
GPU, operators return before their kernels finish, so the split would not say where time goes.
"""

import argparse
import os
import time

from torch.profiler import ProfilerActivity, profile

from emoji_ae.config import PipelineError, load_params, run_stage
from emoji_ae.data import images_and_labels
from emoji_ae.files import read_split
from emoji_ae.model import build_autoencoder, seed_everything
from emoji_ae.paths import AUGMENTED, split_file
from emoji_ae.training import fit

FORWARD, BACKWARD, OPTIMIZER = "forward passes and batching", "backward pass", "optimizer (AdamW step, zero_grad)"


def phase(event) -> str:
    """The part of a training step that a top-level profiler event belongs to."""
    if event.name.startswith("autograd::") or "Backward" in event.name:
        return BACKWARD
    if event.name.startswith("Optimizer."):
        return OPTIMIZER
    return FORWARD


def time_by_phase(prof, wall_s: float) -> dict[str, float]:
    """Seconds per phase: each top-level event's total time (what it called included), and the
    wall time left outside every PyTorch operator, which is Python's."""
    seconds = dict.fromkeys([FORWARD, BACKWARD, OPTIMIZER], 0.0)
    for event in prof.events():
        if event.cpu_parent is None:
            seconds[phase(event)] += event.cpu_time_total / 1e6
    seconds["Python outside PyTorch operators"] = max(wall_s - sum(seconds.values()), 0.0)
    return seconds


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "model", nargs="?", default="ae", choices=("ae", "aux"), help="train_ae's model (default) or train_aux's"
    )
    parser.add_argument("--epochs", type=int, default=5)
    args = parser.parse_args()
    if args.epochs < 1:
        raise PipelineError(f"--epochs is {args.epochs}; profile at least 1 epoch")
    params = load_params()
    seed_everything(params.seed, params.train.threads)
    tensors = {split: images_and_labels(read_split(split_file(AUGMENTED, split))) for split in ("train", "val")}
    images = tensors["train"][0]
    model = build_autoencoder(params, images.shape[-1], images.shape[1], classifier=args.model == "aux")
    params = params.model_copy(update={"train": params.train.model_copy(update={"epochs": args.epochs})})

    # Without a GPU, Kineto (the profiler's backend) logs a harmless "gpuGetDeviceCount failed" error.
    os.environ.setdefault("KINETO_LOG_LEVEL", "5")
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        fit(model, tensors["train"], tensors["val"], params)
        wall_s = time.perf_counter() - start

    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12))
    print(f"profile_train {args.model}: {args.epochs} epochs of {len(images)} images in {wall_s:.2f} s "
          f"({args.epochs * len(images) / wall_s:.0f} training images/s, validation included), "
          f"{params.train.threads} threads")
    for name, seconds in time_by_phase(prof, wall_s).items():
        print(f"  {name:<36} {seconds:7.2f} s  {seconds / wall_s:6.1%}")


if __name__ == "__main__":
    run_stage(main)
