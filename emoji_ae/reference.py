"""The assignment's reference: its public solutions' training, as published (Adam on MSE, its own
learning rate, weight decay and batch size). Its architecture is emoji_ae.model.Reference; the
train_reference stage and the benchmark train it beside ours as the yardstick."""

import torch
import torch.nn.functional as F
from tqdm import tqdm

from emoji_ae.model import batches


def fit_reference(model, x: torch.Tensor, cfg, seed: int) -> None:
    """The reference's published training: Adam on MSE, its own learning rate, weight decay and
    batch size, `cfg.epochs` epochs, no augmentation beyond the augment stage's copies."""
    dev = next(model.parameters()).device
    optimizer = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    generator = torch.Generator().manual_seed(seed)
    for _ in tqdm(range(cfg.epochs), desc="reference", unit="epoch"):
        model.train()
        for index in batches(len(x), cfg.batch_size, generator):
            xb = x[index].to(dev)
            loss = F.mse_loss(model(xb)[0], xb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
