"""A trained model, ready to use outside the pipeline: compose recipes, reconstruct images and
interpolate between emoji, on a model package (what the `card` stage writes to models/release/<name>,
and what `dvc artifacts get <repo> emoji-ae` fetches). Nothing here trains or touches DVC.

A package is a folder of model.pt and latents.pt (as train_ae wrote them), emoji.parquet (one
drawing of each of the subset's emoji, as prepare wrote it), settings.json (the run's concepts,
recipes and latent refinement) and README.md, the model card.
"""

import io
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from stages.lib.config import PipelineError
from stages.lib.data import normalise_text, split_tensors, to_square
from stages.lib.files import broken, read_json, short_reason
from stages.lib.model import decode_all, encode_all, load_model, refine_latents
from stages.lib.recipes import closest, slerp, split_terms
from stages.lib.sources import Skip, decode_image

PACKAGE_FILES = ("model.pt", "latents.pt", "emoji.parquet", "settings.json")
DEFAULT_PACKAGE = Path("models/release/ae")
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff")
NEAREST = 3


@dataclass
class Term:
    """One term of a recipe: what it is called, its latent and its pixels (a concept's are the
    mean of its members'), and whether it is an emoji of the model (kind 'emoji'), a concept or
    a user's image."""

    label: str
    kind: str
    z: torch.Tensor
    pixels: torch.Tensor


@dataclass
class Composite:
    terms: list  # [(sign, Term)]
    base: Term
    alpha: float
    image: torch.Tensor  # the decoded composite
    pixel: torch.Tensor  # the same arithmetic on pixels, clipped to [0, 1]
    nearest: list  # [(name, distance in latent space)], the recipe's own emoji excluded


def missing_package(folder: Path, what: str) -> PipelineError:
    return PipelineError(f"{folder} {what}: give --model a model package (models/release/ae or models/release/aux after "
                         "`dvc repro`, or the folder that `dvc artifacts get <repo> emoji-ae` wrote)")


def prepared_image(raw: bytes, size: int, rgba: bool, label: str) -> torch.Tensor:
    """A user's image as the pipeline prepares its data (stages.lib.sources.decode_image, then
    stages.lib.data.to_square), as a (C, H, W) tensor in [0, 1]."""
    try:
        image = decode_image(raw)
    except Skip as reason:
        raise PipelineError(f"{label} cannot be used ({reason}): give a PNG, JPEG or other image Pillow reads, "
                            "with something drawn on it") from None
    array = np.asarray(to_square(image, size, rgba))
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255)


def png(image: torch.Tensor, scale: int = 1) -> bytes:
    """A (C, H, W) tensor in [0, 1] as PNG bytes, enlarged `scale` times without smoothing."""
    array = (image.clamp(0, 1) * 255).round().byte().permute(1, 2, 0).numpy()
    picture = Image.fromarray(array)
    if scale > 1:
        picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


class Workbench:
    """A model package, loaded once: its emoji and their latents, its concepts."""

    def __init__(self, folder=DEFAULT_PACKAGE, workspace_params: Path | None = Path("params.yaml")):
        folder = Path(folder)
        if not folder.is_dir():
            raise missing_package(folder, "is not a folder")
        for name in PACKAGE_FILES:
            if not (folder / name).is_file():
                raise missing_package(folder, f"has no {name}")
        self.folder = folder
        self.model = load_model(folder / "model.pt")
        self.size, self.channels = self.model.config["size"], self.model.config["in_channels"]
        self.settings = read_json(folder / "settings.json")
        self.names, images = self.read_emoji(folder / "emoji.parquet")
        self.pixels = dict(zip(self.names, images))
        self.latents = dict(zip(self.names, encode_all(self.model, images)))
        self.matrix = torch.stack([self.latents[n] for n in self.names])
        self.concepts = {**self.settings.get("concepts", {}), **workspace_concepts(workspace_params)}
        self.lock = threading.Lock()  # the page answers requests on several threads; torch modules are not re-entrant

    def read_emoji(self, path: Path) -> tuple[list[str], torch.Tensor]:
        try:
            frame = pd.read_parquet(path, columns=["image", "text"])
            images = split_tensors(frame)
        except Exception as e:  # pyarrow and Pillow raise many types for a damaged file
            raise broken(path, short_reason(e)) from None
        if images.shape[1:] != (self.channels, self.size, self.size):
            raise broken(path, f"images of shape {tuple(images.shape[1:])}, not the model's {(self.channels, self.size, self.size)}")
        return frame["text"].tolist(), images

    # --- terms -------------------------------------------------------------------------------

    def image_term(self, raw: bytes, label: str) -> Term:
        pixels = prepared_image(raw, self.size, self.channels == 4, label)
        return Term(label, "image", encode_all(self.model, pixels[None])[0], pixels)

    def term(self, text: str) -> Term:
        """An emoji's name, a concept, or the path of an image file."""
        name = normalise_text(text) or ""
        if name in self.concepts:
            members = self.concepts[name]
            for member in members:
                if member not in self.latents:
                    raise PipelineError(f"concept '{name}' lists '{member}', which is not an emoji of this model ({closest(member, self.names)})")
            return Term(name, "concept", torch.stack([self.latents[m] for m in members]).mean(0),
                        torch.stack([self.pixels[m] for m in members]).mean(0))
        if name in self.latents:
            return Term(name, "emoji", self.latents[name], self.pixels[name])
        path = Path(text).expanduser()
        if path.is_file():
            try:
                raw = path.read_bytes()
            except OSError as e:
                raise PipelineError(f"{path} cannot be read ({short_reason(e)})") from None
            return self.image_term(raw, str(path))
        if "/" in text or text.lower().endswith(IMAGE_SUFFIXES):
            raise PipelineError(f"{text} does not exist: give the path of an image file, or an emoji's name")
        raise PipelineError(f"'{text}' is neither an emoji of this model nor a concept ({closest(name, [*self.names, *self.concepts])}); "
                            "`emoji-ae names` lists them")

    # --- the three actions -------------------------------------------------------------------

    def compose(self, terms: list, alpha: float = 1.0) -> Composite:
        """sum(sign * term), with everything but the base scaled by alpha: base + alpha * attribute.
        The base is the last added emoji or image (the last added term if all are concepts)."""
        added = [t for sign, t in terms if sign > 0]
        if not added:
            raise PipelineError("a recipe needs at least one added term: write it as 'name - name + name'")
        base = next((t for t in reversed(added) if t.kind != "concept"), added[-1])
        z = base.z + alpha * (sum(sign * t.z for sign, t in terms) - base.z)
        pixel = base.pixels + alpha * (sum(sign * t.pixels for sign, t in terms) - base.pixels)
        with self.lock:
            image = decode_all(self.model, z[None])[0]
        own = {t.label for _, t in terms if t.kind == "emoji"}
        distances = torch.cdist(z[None], self.matrix)[0]
        order = [i for i in distances.argsort().tolist() if self.names[i] not in own][:NEAREST]
        return Composite(terms, base, alpha, image, pixel.clamp(0, 1), [(self.names[i], float(distances[i])) for i in order])

    def compose_text(self, recipe: str, alpha: float = 1.0) -> Composite:
        return self.compose([(sign, self.term(text)) for sign, text in split_terms(recipe)], alpha)

    def reconstruct(self, term: Term, steps: int | None = None) -> tuple[torch.Tensor, float]:
        """The term's reconstruction, from the encoder's latent refined by `steps` Adam steps
        (the run's refine.steps unless given; 0 = the encoder's single pass), and its MSE."""
        refine = self.settings["refine"]
        steps = refine["steps"] if steps is None else steps
        with self.lock:
            z = refine_latents(self.model, term.pixels[None], term.z[None], steps, refine["lr"]) if steps else term.z[None]
            image = decode_all(self.model, z)[0]
        return image, F.mse_loss(image, term.pixels).item()

    def interpolate(self, start: Term, end: Term, steps: int) -> list[torch.Tensor]:
        """`steps` decoded points of the spherical path from one latent to the other."""
        if steps < 2:
            raise PipelineError(f"--steps must be at least 2 (the two ends), got {steps}")
        path = torch.stack([slerp(start.z, end.z, float(t)) for t in np.linspace(0, 1, steps)])
        with self.lock:
            return list(decode_all(self.model, path))


def workspace_concepts(path: Path | None) -> dict:
    """compose.concepts of the workspace's params.yaml, when the command runs in a clone: a concept
    added there is usable at once, without re-running a stage."""
    if path is None or not path.is_file():
        return {}
    try:
        concepts = (yaml.safe_load(path.read_text()) or {}).get("compose", {}).get("concepts", {})
    except (yaml.YAMLError, AttributeError, OSError):
        return {}
    if not isinstance(concepts, dict):
        return {}
    return {normalise_text(k): [normalise_text(m) for m in v] for k, v in concepts.items() if isinstance(v, list) and v}

