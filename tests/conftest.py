"""Small data the tests build themselves: synthetic emoji in the valhalla parquet layout."""

import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]

# Names that exercise the default rules: several classes and one analogy family.
NAMES = [
    "grinning face", "crying face", "weary face", "pouting face", "smiling face with open mouth",
    "nerd face", "neutral face", "face with tears of joy", "winking face", "sleepy face",
    "crying cat face", "weary cat face", "pouting cat face", "cat face with tears of joy",
    "smiling cat face with open mouth", "dog face", "tiger face", "monkey face", "fox face", "pig face",
    "alarm clock face", "grinning cat",
]


def emoji_png(index: int, size: int = 72) -> bytes:
    """A distinct, emoji-like RGBA drawing: a coloured disc with two eyes and a mouth."""
    image = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    draw = ImageDraw.Draw(image)
    hue = (index * 53) % 255
    draw.ellipse((4, 4, size - 4, size - 4), fill=(255, hue, (index * 97) % 255, 255), outline=(0, 0, 0, 255), width=3)
    eye = 6 + index % 5
    draw.ellipse((20, 22, 20 + eye, 22 + eye), fill=(0, 0, 0, 255))
    draw.ellipse((size - 26, 22, size - 26 + eye, 22 + eye), fill=(0, 0, 0, 255))
    draw.arc((18, 30 + index % 7, size - 18, size - 14), 10, 170, fill=(120, 0, 0, 255), width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def write_valhalla_parquet(path: Path, names=NAMES, corrupt: int = 0) -> Path:
    """A parquet file with valhalla/emoji-dataset's schema: image = {bytes, path}, text."""
    rows = [{"image": {"bytes": emoji_png(i), "path": f"{i}.png"}, "text": name} for i, name in enumerate(names)]
    rows += [{"image": {"bytes": b"not a png", "path": f"bad{i}.png"}, "text": f"broken face {i}"} for i in range(corrupt)]
    pd.DataFrame(rows).to_parquet(path, index=False)
    return path


@pytest.fixture
def valhalla_parquet(tmp_path) -> Path:
    return write_valhalla_parquet(tmp_path / "emoji.parquet")


def default_params() -> dict:
    return yaml.safe_load((REPO / "params.yaml").read_text())


def tiny_params(**data_overrides) -> dict:
    """Defaults shrunk to seconds: 16 px, two stride-2 blocks, two epochs."""
    params = default_params()
    params["latent"] = 16
    params["data"].update(size=16, **data_overrides)
    params["augment"]["targets"] = {"train": 100, "val": 40, "test": 40}
    params["model"]["channels"] = [8, 16]
    params["train"].update(epochs=2, batch_size=16)
    return params


def synthetic_params(source) -> dict:
    """Tiny params for a parquet of NAMES: two classes (it has no person or object) and
    recipes that use its names."""
    classes = [{"name": "animal", "words": ["cat", "dog", "tiger", "monkey", "fox", "pig"]}, {"name": "face", "words": []}]
    params = tiny_params(source=str(source), classes=classes)
    params["compose"] = {
        "concepts": {"cat": ["crying cat face", "weary cat face"], "human": ["crying face", "weary face"]},
        "recipes": ["crying cat face - crying face + pouting face", "grinning face + cat - human"],
        "strip": {"base": "grinning face", "attribute": "cat - human", "alphas": [0, 1]},
        "slerp": ["grinning face", "dog face"],
        "slerp_steps": 3,
    }
    return params


@pytest.fixture
def workdir(tmp_path, monkeypatch) -> Path:
    """An empty directory to run stages in, as the repository root would be."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write_params(directory: Path, params: dict) -> None:
    (directory / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def copy_repo(destination: Path) -> Path:
    """The Git-tracked files of this checkout, as a fresh Git repository of its own."""
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        source = REPO / name
        if source.is_file():
            (destination / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination / name)
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com"]
    subprocess.run(["git", "init", "-q"], cwd=destination, check=True)
    subprocess.run([*git, "add", "-A"], cwd=destination, check=True)
    subprocess.run([*git, "commit", "-qm", "copy"], cwd=destination, check=True)
    return destination


def venv_env() -> dict:
    """The environment with this interpreter's bin first, so stages run with `python` find it."""
    return {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}


def dvc(repo: Path, *args: str) -> str:
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=venv_env(), capture_output=True, text=True)
    assert result.returncode == 0, f"dvc {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}"
    return result.stdout
