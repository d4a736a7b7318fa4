"""The assignment's reference: its public solutions' training, as published (Adam on MSE, its own
learning rate, weight decay and batch size). Its architecture is emoji_ae.model.Reference; the
train_reference stage and the benchmark train it through `train_reference`, so one seed gives one
model in both, and compare ours with the median over `reference.seeds` seeds."""

import multiprocessing
import statistics
from concurrent.futures import ProcessPoolExecutor

import torch
import torch.nn.functional as F
from tqdm import tqdm

from emoji_ae.model import Reference, batches, device, seed_everything

SEED_STEP = 1000  # the reference's seeds of runs with nearby seeds (the noise tool's 1, 2, 3...) never overlap


def reference_seeds(params) -> list[int]:
    """The seeds the reference is trained from: the run's seed, then seed + 1000, seed + 2000, ...,
    `reference.seeds` in all."""
    return [params.seed + SEED_STEP * k for k in range(params.reference.seeds)]


def train_reference(params, x: torch.Tensor, seed: int) -> Reference:
    """The reference at params' latent, trained on images `x` from `seed` as published. On a CPU on one
    thread: it is too small to keep two busy, so its seeds train side by side (train_references)
    and each seed gives the same model whatever train.threads is."""
    seed_everything(seed, 1 if device().type == "cpu" else params.train.threads)
    model = Reference(params.latent, x.shape[-1], x.shape[1]).to(device())
    fit_reference(model, x, params.reference, seed)
    return model


def train_references(params, x: torch.Tensor) -> dict[int, Reference]:
    """{seed: the reference trained from it} for every seed of the run; on a CPU with train.threads
    above one, all at once, each in a process of its own on one thread."""
    seeds = reference_seeds(params)
    workers = len(seeds) if params.train.threads > 1 else 1
    if device().type != "cpu" or workers < 2:
        return {seed: train_reference(params, x, seed) for seed in seeds}
    # spawn, not fork: the parent's OpenMP threads would not survive a fork
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
        states = dict(zip(seeds, pool.map(trained_state, [params] * len(seeds), [x] * len(seeds), seeds)))
    models = {}
    for seed, state in states.items():
        models[seed] = Reference(params.latent, x.shape[-1], x.shape[1])
        models[seed].load_state_dict(state)
    return models


def trained_state(params, x: torch.Tensor, seed: int) -> dict:
    """A worker's reference, as weights (what crosses back to the parent process)."""
    return train_reference(params, x, seed).state_dict()


def fit_reference(model, x: torch.Tensor, cfg, seed: int) -> None:
    """The reference's published training: Adam on MSE, its own learning rate, weight decay and
    batch size, `cfg.epochs` epochs, no augmentation beyond the augment stage's copies."""
    # Without normalisation and with weight decay, thousands of its weights decay into denormal
    # floats, which some CPUs (Intel's above all) compute many times slower: flush them to zero.
    torch.set_flush_denormal(True)
    dev = next(model.parameters()).device
    # Adam as published; fused, one kernel for all its small tensors (the same update, a tenth faster)
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    generator = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(cfg.epochs), desc=f"reference (seed {seed})", unit="epoch"):
        model.train()
        for index in batches(len(x), cfg.batch_size, generator):
            xb = x[index].to(dev)
            loss = F.mse_loss(model(xb)[0], xb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def median_and_range(values: list[float]) -> dict:
    """The seeds' median of a figure, its range, and every seed's value."""
    return {"median": statistics.median(values), "low": min(values), "high": max(values), "values": list(values)}
