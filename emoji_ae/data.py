"""Emoji data: text filters and class rules, image conversion, the split, and splits as tensors.

Every split is a parquet file in the Hugging Face `datasets` image layout (`image` = {bytes,
path}, `text`, plus `label`, `class_name`, `augmented`); emoji_ae.files reads and writes them.
"""

import io
import math
import re

import numpy as np
import pandas as pd
import torch
from PIL import Image

SPLITS = ("train", "val", "test")


# --- text rules --------------------------------------------------------------------------


def normalise_text(raw) -> str | None:
    """An emoji's name as the pipeline compares it: lower case, hyphens and underscores as
    spaces, single spaces; None for a missing or empty name."""
    if raw is None or (isinstance(raw, float) and math.isnan(raw)):
        return None
    text = re.sub(r"[\s_-]+", " ", str(raw).lower()).strip()
    return text or None


def base_emoji(text: str, variants: list[str]) -> str:
    """The base emoji a name is a variant of: the name with every `data.variants` pattern deleted
    ("man getting face massage type 1 2" -> "getting face massage"). Records with one base go to
    one split together. A name that the patterns would delete entirely is its own base."""
    base = text
    for pattern in variants:
        base = re.sub(pattern, " ", base)
    base = re.sub(r"\s+", " ", base).strip()
    return base or text


def words_of(text: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", text.lower()))


def text_filter(include, exclude):
    include, exclude = set(include), set(exclude)
    return lambda text: include <= words_of(text) and not exclude & words_of(text)


def assign_class(text: str, rules) -> int | None:
    """Index of the first rule that matches; a rule without words matches everything."""
    words = words_of(text)
    for index, rule in enumerate(rules):
        if not rule.words or words & set(rule.words):
            return index
    return None


# --- images ------------------------------------------------------------------------------


def to_square(image: Image.Image, size: int, rgba: bool) -> Image.Image:
    """Crop to content, pad to a centred square, resize; alpha goes onto white unless rgba."""
    image = image.convert("RGBA")
    box = image.getchannel("A").getbbox() or (0, 0, *image.size)
    image = image.crop(box)
    side = max(image.size)
    square = Image.new("RGBA", (side, side), (255, 255, 255, 0))
    square.paste(image, ((side - image.width) // 2, (side - image.height) // 2))
    square = square.resize((size, size), Image.Resampling.LANCZOS)
    if rgba:
        return square
    background = Image.new("RGBA", square.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, square).convert("RGB")


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def decode_png(raw: bytes) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(raw)))


# --- splits ------------------------------------------------------------------------------


def grouped_split(groups: np.ndarray, labels: np.ndarray, ratios: dict, seed: int) -> dict[str, np.ndarray]:
    """Record indices per split, whole groups at a time: every record of a group (one base emoji,
    from any source) lands in one split. Groups are stratified by the class of their first record;
    each class's groups are shuffled and cut at the ratios on their own."""
    first = {}
    for index, group in enumerate(groups):
        first.setdefault(group, index)
    order = np.array(list(first))  # groups in order of first appearance
    group_labels = labels[[first[g] for g in order]]
    rng = np.random.default_rng(seed)
    chosen = {name: [] for name in SPLITS}
    for label in np.unique(group_labels):
        members = rng.permutation(np.flatnonzero(group_labels == label))
        n_train = round(len(members) * ratios["train"])
        n_val = round(len(members) * ratios["val"])
        chosen["train"].append(order[members[:n_train]])
        chosen["val"].append(order[members[n_train : n_train + n_val]])
        chosen["test"].append(order[members[n_train + n_val :]])
    return {name: np.flatnonzero(np.isin(groups, np.concatenate(parts))) for name, parts in chosen.items()}


def split_images(frame: pd.DataFrame) -> torch.Tensor:
    """All images of a split as one uint8 tensor (N, C, H, W), decoded once."""
    return torch.from_numpy(np.stack([decode_png(image["bytes"]) for image in frame["image"]])).permute(0, 3, 1, 2)


def split_tensors(frame: pd.DataFrame) -> torch.Tensor:
    """All images of a split as one float tensor (N, C, H, W) in [0, 1]."""
    return split_images(frame).float().div(255)


def images_and_labels(frame: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """A split as fit() takes it: its images (split_tensors) and their class indices."""
    return split_tensors(frame), torch.tensor(frame["label"].to_numpy())
