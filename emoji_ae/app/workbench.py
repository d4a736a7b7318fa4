"""A trained model, ready to use outside the pipeline: compose recipes, reconstruct images and
interpolate between emoji, on a model package (what the `card` stage writes to models/release/<name>,
and what `dvc artifacts get <repo> emoji-ae` fetches). Nothing here trains or touches DVC.

A package is a folder of model.pt and latents.pt (as train_ae wrote them), emoji.parquet (every
drawing the model learned from or was scored on, by the name a recipe uses, with its latent),
settings.json (the run's concepts, recipes and latent refinement) and README.md, the model card.
"""

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
import yaml
from PIL import Image

from emoji_ae.analogies import families
from emoji_ae.app.limits import MAX_UPLOAD, MAX_UPLOAD_SIDE
from emoji_ae.config import PipelineError
from emoji_ae.data import normalise_text, split_images, to_square
from emoji_ae.files import broken, read_json, short_reason
from emoji_ae.model import decode_all, encode_all, load_model, refine_latents
from emoji_ae.recipes import closest, slerp, split_terms
from emoji_ae.sources import Skip, decode_image

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
    return PipelineError(
        f"{folder} {what}: give --model a model package (models/release/ae or models/release/aux after "
        "`dvc repro`, or the folder that `dvc artifacts get <repo> emoji-ae` wrote)"
    )


def prepared_image(raw: bytes, size: int, rgba: bool, label: str, max_side: int | None = None) -> torch.Tensor:
    """A user's image as the pipeline prepares its data (emoji_ae.sources.decode_image, then
    emoji_ae.data.to_square), as a (C, H, W) tensor in [0, 1]; with max_side, refused when its
    header declares a longer side, before anything is decoded: the square it is padded to holds
    the longer side squared, so a thin picture of a few bytes would otherwise ask for gigabytes."""
    if max_side is not None:
        try:
            width, height = Image.open(io.BytesIO(raw)).size
        except Image.DecompressionBombError:
            width = height = max_side + 1  # larger still than Pillow decodes at all
        except Exception:  # Pillow's many error types for data that is no image: decode_image says so
            width = height = 0
        if max(width, height) > max_side:
            raise PipelineError(
                f"{label} is {width}x{height} pixels: upload an image of at most {max_side} pixels a side"
            )
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
    """A model package, loaded once: its emoji, their latents and pixels, its concepts."""

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
        self.names, self.images, self.matrix, self.aliases = self.read_emoji(folder / "emoji.parquet")
        self.index = {name: i for i, name in enumerate(self.names)}
        self.concepts = {**self.settings.get("concepts", {}), **workspace_concepts(workspace_params)}
        self.attributes = attribute_directions(self.model, self.keys, self.matrix, self.settings.get("variants", []))

    def read_emoji(self, path: Path) -> tuple[list[str], torch.Tensor, torch.Tensor, dict]:
        """Names, images (uint8: a package holds thousands), latents (the card stage's, or encoded
        here for a package without them) and 'set: name' aliases of the drawings named plainly."""
        try:
            frame = pd.read_parquet(path)
            images = split_images(frame)
        except Exception as e:  # pyarrow and Pillow raise many types for a damaged file
            raise broken(path, short_reason(e)) from None
        if "text" not in frame or images.shape[1:] != (self.channels, self.size, self.size):
            raise broken(
                path,
                f"images of shape {tuple(images.shape[1:])}, not the model's {(self.channels, self.size, self.size)}",
            )
        if "z" in frame:
            latents = torch.from_numpy(np.stack(frame["z"].to_numpy()).astype(np.float32))
        else:
            latents = torch.cat([encode_all(self.model, chunk.float().div(255)) for chunk in images.split(1024)])
        names = frame["text"].tolist()
        sources = frame["source"].tolist() if "source" in frame else [None] * len(names)
        aliases = {
            f"{source}: {name}": name
            for name, source in zip(names, sources)
            if source and not name.startswith(f"{source}: ")
        }
        self.keys = [
            (source, name.removeprefix(f"{source}: ")) for name, source in zip(names, sources)
        ]  # as the families know them
        return names, images, latents, aliases

    def pixels(self, name: str) -> torch.Tensor:
        """An emoji's drawing as a (C, H, W) tensor in [0, 1]."""
        return self.images[self.index[name]].float().div(255)

    def latent(self, name: str) -> torch.Tensor:
        return self.matrix[self.index[name]]

    # --- terms -------------------------------------------------------------------------------

    def image_term(self, raw: bytes, label: str, max_side: int | None = None) -> Term:
        pixels = prepared_image(raw, self.size, self.channels == 4, label, max_side)
        return Term(label, "image", encode_all(self.model, pixels[None])[0], pixels)

    def term(self, text: str, paths: bool = True) -> Term:
        """An emoji's name, a concept, or (when `paths`: the command line, never the page) the
        path of an image file."""
        name = normalise_text(text) or ""
        name = self.aliases.get(name, name)
        if name in self.concepts:
            members = self.concepts[name]
            for member in members:
                if member not in self.index:
                    raise PipelineError(
                        f"concept '{name}' lists '{member}', which is not an emoji of this model "
                        f"({closest(member, self.names)})"
                    )
            return Term(name, "concept", torch.stack([self.latent(m) for m in members]).mean(0),
                        torch.stack([self.pixels(m) for m in members]).mean(0))
        if name in self.index:
            return Term(name, "emoji", self.latent(name), self.pixels(name))
        looks_like_path = any(c in text for c in "/\\") or text.lower().endswith(IMAGE_SUFFIXES)
        if not paths:
            if looks_like_path:
                raise PipelineError(
                    f"'{text}': the page reads no files from the disk; upload the image with a term's file button"
                )
        elif (path := Path(text).expanduser()).is_file():
            try:
                if path.stat().st_size > MAX_UPLOAD:
                    raise PipelineError(f"{path} is over {MAX_UPLOAD // 2**20} MiB: give a smaller image")
                raw = path.read_bytes()
            except OSError as e:
                raise PipelineError(f"{path} cannot be read ({short_reason(e)})") from None
            return self.image_term(raw, str(path), max_side=MAX_UPLOAD_SIDE)
        elif looks_like_path:
            raise PipelineError(f"{text} does not exist: give the path of an image file, or an emoji's name")
        raise PipelineError(
            f"'{text}' is neither an emoji of this model nor a concept "
            f"({closest(name, [*self.names, *self.concepts])}); "
            "`emoji-ae names` lists them"
        )

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
        image = decode_all(self.model, z[None])[0]
        own = {t.label for _, t in terms if t.kind == "emoji"}
        distances = torch.cdist(z[None], self.matrix)[0]
        order = [i for i in distances.argsort().tolist() if self.names[i] not in own][:NEAREST]
        return Composite(
            terms, base, alpha, image, pixel.clamp(0, 1), [(self.names[i], float(distances[i])) for i in order]
        )

    def compose_text(self, recipe: str, alpha: float = 1.0) -> Composite:
        return self.compose([(sign, self.term(text)) for sign, text in split_terms(recipe)], alpha)

    def reconstruct(self, term: Term, steps: int | None = None) -> tuple[torch.Tensor, float]:
        """The term's reconstruction, from the encoder's latent refined by `steps` Adam steps
        (the run's refine.steps unless given; 0 = the encoder's single pass), and its MSE."""
        refine = self.settings["refine"]
        steps = refine["steps"] if steps is None else steps
        z = refine_latents(self.model, term.pixels[None], term.z[None], steps, refine["lr"]) if steps else term.z[None]
        image = decode_all(self.model, z)[0]
        return image, F.mse_loss(image, term.pixels).item()

    def set_attribute(self, term: Term, attribute: str, amount: float = 1.0) -> torch.Tensor:
        """The term decoded with its latent moved `amount` times along an attribute's direction."""
        if attribute not in self.attributes:
            known = ", ".join(sorted(self.attributes)) or "none (this package has no attribute families)"
            raise PipelineError(f"'{attribute}' is not an attribute of this model; its attributes: {known}")
        return decode_all(self.model, (term.z + amount * self.attributes[attribute])[None])[0]

    def interpolate(self, start: Term, end: Term, steps: int) -> list[torch.Tensor]:
        """`steps` decoded points of the spherical path from one latent to the other."""
        if steps < 2:
            raise PipelineError(f"--steps must be at least 2 (the two ends), got {steps}")
        path = torch.stack([slerp(start.z, end.z, float(t)) for t in np.linspace(0, 1, steps)])
        return list(decode_all(self.model, path))


def attribute_directions(model, keys: list, latents: torch.Tensor, variants: list[str]) -> dict[str, torch.Tensor]:
    """{attribute: direction}: for each skin tone, gender and set that the package's drawings pair
    (emoji_ae.analogies: variant and style families, both sets' together), the mean latent difference
    of its pairs: the family mean of the compose stage. On a model with an attribute code only that
    code moves, so the drawing keeps its content grid and changes only the attribute."""
    if not variants:  # a package from before the attribute code: its settings name no variants
        return {}
    index = {key: i for i, key in enumerate(keys)}
    differences: dict[str, list] = {}
    for family, spec in families(dict.fromkeys(index), variants).items():
        if spec["kind"] == "name":
            continue
        attribute = f"{family.split(' -> ')[1]} style" if spec["kind"] == "style" else family.split(": ", 1)[1]
        differences.setdefault(attribute, []).extend(latents[index[a]] - latents[index[b]] for a, b in spec["pairs"])
    code = getattr(model, "attribute", 0)
    directions = {}
    for attribute, rows in sorted(differences.items()):
        direction = torch.stack(rows).mean(0)
        if code:
            direction[code:] = 0
        directions[attribute] = direction
    return directions


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

