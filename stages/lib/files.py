"""Reading and writing the pipeline's files safely.

Every write goes to a temporary file that replaces the target only once it is whole, so a run
killed at any moment leaves the previous file or none. Every read of an artefact that another
stage wrote turns a missing, truncated or corrupt file into one PipelineError that names the
file and the command that restores it.
"""

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import torch

from stages.lib.config import PipelineError
from stages.lib.paths import MODELS, producer


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


def tracked_output(path) -> Path:
    """The dvc.yaml output that holds `path`: a model's directory, or the file itself."""
    path = Path(path)
    if path.parts[:1] == MODELS.parts and len(path.parts) > 2:
        return Path(*path.parts[:2])
    return path


def missing(path) -> PipelineError:
    return PipelineError(f"{path} is missing: run the earlier stages first (`dvc repro {producer(path)}`), "
                         "or `dvc pull` it from the team's remote")


def broken(path, reason: str) -> PipelineError:
    return PipelineError(f"{path} is unreadable ({reason}): restore it with `dvc checkout --force {tracked_output(path)}` "
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
    except (RuntimeError, EOFError, ValueError, OSError) as e:
        raise broken(path, short_reason(e)) from None


def write_split(path, images: list[bytes], frame: pd.DataFrame) -> None:
    """One split: PNG bytes in the `datasets` image layout (`image` = {bytes, path}) plus the
    metadata columns, so `datasets.load_dataset("parquet", ...)` reads our outputs too."""
    table = frame.reset_index(drop=True).copy()
    table.insert(0, "image", [{"bytes": raw, "path": f"{i}.png"} for i, raw in enumerate(images)])
    with atomic_path(path) as tmp:
        table.to_parquet(tmp, index=False)


def read_split(path) -> pd.DataFrame:
    if not Path(path).exists():
        raise missing(path)
    try:
        return pd.read_parquet(path)
    except Exception as e:  # pyarrow raises several types for a truncated or foreign file
        raise broken(path, short_reason(e)) from None
