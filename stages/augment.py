"""augment: expand each prepared split to its target size with seeded torchvision v2 transforms.

The originals are kept; each augmented copy is made from an image of the same split, cycling
through them so every original gets about the same number of copies. Writes
data/augmented/{train,val,test}.parquet and reports/augment/samples.png.
"""

import numpy as np
import pandas as pd
import torch
from PIL import Image
from torchvision.transforms import v2

from stages.lib.config import PipelineError, load_params, run_stage
from stages.lib.data import SPLITS, png_bytes, split_images
from stages.lib.figures import save_grid
from stages.lib.files import read_split, write_split
from stages.lib.paths import AUGMENT_SAMPLES, AUGMENTED, PREPARED, split_file


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
        target = getattr(aug.targets, split)
        expanded = augment_split(split_images(frame), target, aug, params.seed + index)
        source = np.arange(target) % len(frame)
        meta = frame.drop(columns="image").iloc[source].assign(augmented=np.arange(target) >= len(frame))
        images = [png_bytes(Image.fromarray(x.permute(1, 2, 0).numpy())) for x in expanded]
        write_split(split_file(AUGMENTED, split), images, pd.DataFrame(meta))
        previews.append((split, expanded, len(frame)))
        print(f"augment: {split} {len(frame)} -> {target}")

    # Preview: one original and the copies made from it, per split.
    rows, titles = [], []
    for split, expanded, n in previews:
        rows.append([expanded[j] for j in range(0, len(expanded), n)][:8])
        titles.append(split)
    save_grid(AUGMENT_SAMPLES, rows, row_titles=titles, title="An original (left) and its augmented copies")


if __name__ == "__main__":
    run_stage(main)
