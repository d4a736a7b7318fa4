"""Reading and writing the pipeline's files safely.

Every write goes to a temporary file that replaces the target only once it is whole, so a run
killed at any moment leaves the previous file or none. Every read of an artefact that another
stage wrote turns a missing, truncated or corrupt file into one PipelineError that names the
file and the command that restores it.
"""

import io
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from PIL import Image

from emoji_ae.config import PipelineError
from emoji_ae.paths import CACHED_REPORTS, METRICS, MODELS, producer


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside `path`; it replaces `path` only if the block succeeds."""
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


def write_json(path, value, indent: int = 2) -> None:
    write_text(path, json.dumps(value, indent=indent) + "\n")


def restore_command(path) -> str:
    """How to get the committed version of `path` back: DVC keeps data, models and the cached
    reports; Git keeps the headline, plots, report and reports/metrics.json that pull requests show."""
    path = Path(path)
    if path.parts[:1] in (("data",), MODELS.parts) or (path.name in CACHED_REPORTS and path != METRICS):
        return f"dvc checkout --force {path}"
    return f"git checkout -- {path}"


def missing(path) -> PipelineError:
    return PipelineError(f"{path} is missing: run the earlier stages first (`dvc repro {producer(path)}`), "
                         "or `dvc pull` it from the team's remote")


def broken(path, reason: str) -> PipelineError:
    return PipelineError(f"{path} is unreadable ({reason}): restore it with `{restore_command(path)}` "
                         f"or rebuild it with `dvc repro -f {producer(path)}`")


def short_reason(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:120]}" if text else type(error).__name__


def read_json(path) -> dict:
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise missing(path) from None
    except (ValueError, UnicodeDecodeError) as e:
        raise broken(path, short_reason(e)) from None


def read_text(path) -> str:
    try:
        return Path(path).read_text()
    except FileNotFoundError:
        raise missing(path) from None
    except (OSError, UnicodeDecodeError) as e:
        raise broken(path, short_reason(e)) from None


def read_tsv(path) -> pd.DataFrame:
    """A DVCLive plot file: tab-separated, with a `step` column."""
    try:
        table = pd.read_csv(path, sep="\t")
    except FileNotFoundError:
        raise missing(path) from None
    except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as e:
        raise broken(path, short_reason(e)) from None
    if "step" not in table.columns or table.shape[1] < 2:
        raise broken(path, "no step column")
    return table


def save_torch(obj, path) -> None:
    """torch.save, atomically. Through a file object, because torch names the archive inside
    after the file, and the temporary name would make equal models differ byte for byte."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        torch.save(obj, f)


def load_torch(path) -> dict:
    """torch.load with weights_only=True, so a file can never run code; a missing or damaged
    file is one PipelineError."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise missing(path) from None
    except Exception as e:  # a damaged archive raises many types; one that would run code, UnpicklingError
        raise broken(path, short_reason(e)) from None


def write_split(path, images: list[bytes], frame: pd.DataFrame) -> None:
    """One split: PNG bytes in the `datasets` image layout (`image` = {bytes, path}) plus the
    metadata columns, so `datasets.load_dataset("parquet", ...)` reads our outputs too."""
    table = frame.reset_index(drop=True).copy()
    table.insert(0, "image", [{"bytes": raw, "path": f"{i}.png"} for i, raw in enumerate(images)])
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)


SPLIT_COLUMNS = ("image", "text", "base", "source", "label", "class_name", "augmented")


def read_split(path, empty_ok: bool = False) -> pd.DataFrame:
    """A split written by write_split, checked: every column the stages read, images as {bytes, path};
    with `empty_ok`, a split of no records (the held-out or style glyphs of a small set) too."""
    if not Path(path).exists():
        raise missing(path)
    try:
        frame = pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a truncated or foreign file
        raise broken(path, short_reason(e)) from None
    absent = [column for column in SPLIT_COLUMNS if column not in frame.columns]
    if absent:
        raise broken(path, f"no {', '.join(absent)} column")
    if len(frame) == 0 and empty_ok:
        return frame
    if len(frame) == 0 or not all(isinstance(cell, dict) and cell.get("bytes") for cell in frame["image"]):
        raise broken(path, "no images in the split layout")
    shapes = set()
    for row, cell in enumerate(frame["image"]):
        try:
            shapes.add(np.asarray(Image.open(io.BytesIO(cell["bytes"]))).shape)
        except Exception as e:  # Pillow's many error types for damaged image data
            raise broken(path, f"image {row}: {short_reason(e)}") from None
    if len(shapes) > 1:
        raise broken(path, f"images of several shapes {sorted(shapes)}")
    return frame
