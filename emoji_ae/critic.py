"""Adversaries the autoencoder learns to fool while training (params' `critic`).

- **composite**: a critic learns to tell decoded composites, decode(z(a) - z(b) + z(c)), from the
  decoder's reconstructions of real drawings; the autoencoder pays for composites it can tell. ACAI
  (Berthelot et al. 2018) does this for convex mixes of two codes; here the mix is the analogy's.
- **patch**: a patch critic (PatchGAN, Isola et al. 2017) learns to tell real drawings from decoded
  ones, reconstructions and composites alike, one score per patch; the autoencoder pays for patches
  it can tell: blur is what a patch critic sees first.

Both are least-squares critics (LSGAN: targets 0 and 1, squared error), which train steadily without
a schedule of their own. MSE stays the autoencoder's main loss; the critics only add to it.
"""

import torch
import torch.nn.functional as F
from torch import nn


class Critic(nn.Module):
    """Three stride-2 convolutions and a 3x3 score: one score per patch (`patch`), or their mean."""

    def __init__(self, channels: int, width: int = 32, patch: bool = False):
        super().__init__()
        self.patch = patch
        self.net = nn.Sequential(
            nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, 2 * width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * width, 4 * width, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * width, 1, 3, 1, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        scores = self.net(x)
        return scores.flatten(1) if self.patch else scores.mean((1, 2, 3))[:, None]


def squared(scores: torch.Tensor, target: float) -> torch.Tensor:
    return F.mse_loss(scores, torch.full_like(scores, target))


class Adversaries:
    """The critics that `cfg` (params' `critic`) weighs in, their optimisers, and their losses."""

    def __init__(self, cfg, channels: int, dev, seed: int):
        self.cfg = cfg
        with torch.random.fork_rng(devices=[]):  # seeded apart: the training's own random stream stays as it was
            torch.manual_seed(seed)
            self.critics = {name: Critic(channels, patch=name == "patch").to(dev)
                            for name in ("composite", "patch") if getattr(cfg, name)}
        self.optimizers = {name: torch.optim.Adam(critic.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
                           for name, critic in self.critics.items()}

    def __bool__(self) -> bool:
        return bool(self.critics)

    def autoencoder_loss(self, recon: torch.Tensor, composites: torch.Tensor | None) -> dict:
        """{critic: weighted loss} the autoencoder pays where a critic tells its images apart."""
        out = {}
        if "composite" in self.critics and composites is not None:
            out["composite"] = self.cfg.composite * squared(self.critics["composite"](composites), 0.0)
        if "patch" in self.critics:
            decoded = recon if composites is None else torch.cat([recon, composites])
            out["patch"] = self.cfg.patch * squared(self.critics["patch"](decoded), 1.0)
        return out

    def update(self, x: torch.Tensor, recon: torch.Tensor, composites: torch.Tensor | None) -> None:
        """One step of each critic on this batch's images (detached: the critics learn alone)."""
        recon = recon.detach().float()
        for name, critic in self.critics.items():
            if name == "composite":
                if composites is None:
                    continue
                loss = squared(critic(composites.detach().float()), 1.0) + squared(critic(recon), 0.0)
            else:
                decoded = recon if composites is None else torch.cat([recon, composites.detach().float()])
                loss = squared(critic(x), 1.0) + squared(critic(decoded), 0.0)
            self.optimizers[name].zero_grad(set_to_none=True)
            loss.backward()
            self.optimizers[name].step()
