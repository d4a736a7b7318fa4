"""augment: expand each prepared split to its target size with seeded torchvision v2 transforms.

The originals are kept; each augmented copy is made from an image of the same split, cycling
through them so every original gets about the same number of copies. With `augment.adversarial`,
that share of the train split's copies is then perturbed against an autoencoder (adversarial
examples, the assignment's alternative to augmentation). Writes
data/augmented/{train,val,test}.parquet and reports/augment/samples.png.
"""

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from PIL import Image
from torchvision.transforms import v2

from emoji_ae.config import PipelineError, load_params, run_stage
from emoji_ae.data import SPLITS, png_bytes, split_images
from emoji_ae.figures import save_grid
from emoji_ae.files import read_split, write_split
from emoji_ae.model import Autoencoder
from emoji_ae.paths import AUGMENT_SAMPLES, AUGMENTED, PREPARED, split_file

# The autoencoder that adversarial copies are made against: small, trained on the split's originals.
PROXY = {"channels": [16, 32, 64], "latent": 128, "lr": 0.003, "epochs": 30, "steps": 5}


def emoji_transforms(aug, channels: int, size: int) -> tuple[v2.Transform, v2.Transform]:
    """Small geometric and colour changes that keep an emoji recognisable. The fill is the
    background prepare composited onto (transparent white for RGBA); padding first keeps
    the affine's blended border seam outside the final crop."""
    fill = [255, 255, 255, 0][:channels]
    geometric = v2.Compose([
        v2.Pad(size // 4, fill=fill),
        v2.RandomHorizontalFlip(aug.hflip),
        v2.RandomAffine(
            degrees=aug.degrees, translate=(aug.translate, aug.translate), scale=aug.scale,
            interpolation=v2.InterpolationMode.BILINEAR, fill=fill,
        ),
        v2.CenterCrop(size),
    ])
    return geometric, v2.ColorJitter(aug.brightness, aug.contrast, aug.saturation, aug.hue)


def augment_split(images: torch.Tensor, target: int, aug, seed: int) -> torch.Tensor:
    """`images` (N, C, H, W) uint8 plus target - N transformed copies, in a seeded order."""
    geometric, colour = emoji_transforms(aug, images.shape[1], images.shape[-1])
    torch.manual_seed(seed)
    copies = []
    for i in range(target - len(images)):
        image = images[i % len(images)]
        # Colour first, so the fill that geometry adds stays background-white.
        copies.append(geometric(torch.cat([colour(image[:3]), image[3:]])))
    return torch.cat([images, torch.stack(copies)]) if copies else images


def adversarial(
    copies: torch.Tensor, originals: torch.Tensor, share: float, epsilon: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """A seeded `share` of the copies perturbed against an autoencoder: a small one (PROXY) trained
    on the split's originals, whose reconstruction error projected gradient ascent raises within
    +/- epsilon per pixel. Stored as 8-bit images like the other copies; which are adversarial
    comes back as a mask."""
    generator = torch.Generator().manual_seed(seed)
    chosen = torch.randperm(len(copies), generator=generator)[: round(share * len(copies))]
    torch.manual_seed(seed)
    proxy = Autoencoder(
        copies.shape[-1], PROXY["channels"], PROXY["latent"], copies.shape[1], grid=copies.shape[-1] // 8
    )
    x = originals.float() / 255
    optimizer = torch.optim.Adam(proxy.parameters(), lr=PROXY["lr"])
    for _ in range(PROXY["epochs"]):
        for index in torch.randperm(len(x), generator=generator).split(32):
            loss = F.mse_loss(proxy(x[index])[0], x[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
    proxy.eval()
    clean = copies[chosen].float() / 255
    delta = torch.zeros_like(clean, requires_grad=True)
    for _ in range(PROXY["steps"]):
        perturbed = (clean + delta).clamp(0, 1)
        (grad,) = torch.autograd.grad(F.mse_loss(proxy(perturbed)[0], perturbed), delta)
        delta = (delta + epsilon / 2 * grad.sign()).clamp(-epsilon, epsilon).detach().requires_grad_(True)
    attacked = copies.clone()
    attacked[chosen] = ((clean + delta.detach()).clamp(0, 1) * 255).round().to(torch.uint8)
    mask = torch.zeros(len(copies), dtype=torch.bool)
    mask[chosen] = True
    return attacked, mask


def expand(split: str, frame: pd.DataFrame, aug, seed: int) -> tuple[torch.Tensor, pd.DataFrame]:
    """A split's originals and their copies (adversarial ones in the train split when asked), and
    the metadata rows that go with them."""
    originals = split_images(frame)
    target = getattr(aug.targets, split)
    expanded = augment_split(originals, target, aug, seed)
    attacked = torch.zeros(target, dtype=torch.bool)
    if split == "train" and aug.adversarial and target > len(frame):
        expanded[len(frame) :], attacked[len(frame) :] = adversarial(
            expanded[len(frame) :], originals, aug.adversarial, aug.epsilon, seed
        )
    meta = frame.drop(columns="image").iloc[np.arange(target) % len(frame)]
    return expanded, pd.DataFrame(meta.assign(augmented=np.arange(target) >= len(frame), adversarial=attacked.numpy()))


def main():
    params = load_params()
    aug = params.augment
    frames = {split: read_split(split_file(PREPARED, split)) for split in SPLITS}
    for split, frame in frames.items():  # check every split before writing any
        target = getattr(aug.targets, split)
        if target < len(frame):
            raise PipelineError(
                f"augment.targets.{split} is {target} but the {split} split already has "
                f"{len(frame)} originals: set it to at least {len(frame)}"
            )
    previews = []
    for index, (split, frame) in enumerate(frames.items()):
        expanded, meta = expand(split, frame, aug, params.seed + index)
        images = [png_bytes(Image.fromarray(x.permute(1, 2, 0).numpy())) for x in expanded]
        write_split(split_file(AUGMENTED, split), images, meta)
        previews.append((split, expanded, len(frame)))
        print(f"augment: {split} {len(frame)} -> {len(expanded)} ({int(meta['adversarial'].sum())} adversarial)")

    # Preview: one original and the copies made from it, per split.
    rows, titles = [], []
    for split, expanded, n in previews:
        rows.append([expanded[j] for j in range(0, len(expanded), n)][:8])
        titles.append(split)
    save_grid(AUGMENT_SAMPLES, rows, row_titles=titles, title="An original (left) and its augmented copies")


if __name__ == "__main__":
    run_stage(main)
