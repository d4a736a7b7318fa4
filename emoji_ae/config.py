"""params.yaml, validated. Every stage calls `load_params()` and reads what it needs.

The schema gives types and bounds but no defaults: params.yaml holds every value, once. It
rejects unknown and missing keys, so a typo such as `latnet: 32` fails up front with every bad
key listed at once, instead of silently training with something else.
"""

import difflib
import math
import re
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from emoji_ae.paths import PARAMS

PositiveInt = Annotated[int, Field(strict=True, gt=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]
NonNegative = Annotated[float, Field(ge=0)]


class PipelineError(Exception):
    """A problem with the user's input; printed as one line, without a traceback."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Split(Strict):
    train: Fraction
    val: Fraction
    test: Fraction

    @model_validator(mode="after")
    def _sums_to_one(self):
        total = self.train + self.val + self.test
        if not math.isclose(total, 1.0, abs_tol=1e-6):
            raise ValueError(f"split ratios must sum to 1, got {total:g}")
        return self


class ClassRule(Strict):
    name: str
    words: list[str]


class Data(Strict):
    source: str | Annotated[list[str], Field(min_length=1)]
    revision: str
    include: list[str]
    exclude: list[str]
    variants: list[str]
    size: PositiveInt
    rgba: bool
    split: Split
    classes: Annotated[list[ClassRule], Field(min_length=2)]

    @property
    def sources(self) -> list[str]:
        return [self.source] if isinstance(self.source, str) else list(self.source)

    @model_validator(mode="after")
    def _sources_are_named_once(self):
        if len(set(self.sources)) < len(self.sources) or not all(s.strip() for s in self.sources):
            raise ValueError(f"data.source lists an empty or repeated source: {self.sources}")
        return self

    @model_validator(mode="after")
    def _variants_are_regular_expressions(self):
        for pattern in self.variants:
            try:
                re.compile(pattern)
            except re.error as e:
                raise ValueError(f"data.variants: '{pattern}' is not a regular expression ({e})") from None
        return self

    @model_validator(mode="after")
    def _size_is_a_power_of_two(self):
        if self.size < 8 or self.size & (self.size - 1):
            raise ValueError(f"data.size must be a power of two of at least 8 (16, 32, 64, 128), got {self.size}")
        return self


class Targets(Strict):
    train: PositiveInt
    val: PositiveInt
    test: PositiveInt


class Augment(Strict):
    targets: Targets
    degrees: NonNegative
    translate: Fraction
    scale: tuple[Annotated[float, Field(gt=0)], Annotated[float, Field(gt=0)]]
    hflip: Fraction
    brightness: NonNegative
    contrast: NonNegative
    saturation: NonNegative
    hue: Annotated[float, Field(ge=0, le=0.5)]
    adversarial: Fraction
    epsilon: Annotated[float, Field(ge=0, le=0.5)]


class HeldOut(Strict):
    val: Fraction
    test: Fraction

    @model_validator(mode="after")
    def _leaves_some_to_learn_from(self):
        if self.val + self.test >= 1:
            raise ValueError(
                f"extra.held_out must leave a share to pretrain on: val + test is {self.val + self.test:g}, give "
                "less than 1"
            )
        return self


class Extra(Strict):
    sources: Annotated[list[str], Field(min_length=1)]
    mirror: bool
    held_out: HeldOut
    share: Annotated[float, Field(gt=0, le=1)]


Auto = Literal["auto"]


class Model(Strict):
    channels: Annotated[list[PositiveInt], Field(min_length=1)]
    grid: PositiveInt | Auto
    attribute: Annotated[int, Field(strict=True, ge=0)] | Auto
    decoder_dropout: Annotated[float, Field(ge=0, lt=1)]
    residual_levels: Annotated[int, Field(strict=True, ge=0)]


@dataclass(frozen=True)
class Shape:
    """How the latent's values are laid out: the attribute code, then a grid x grid x channels content grid."""

    attribute: int
    grid: int
    channels: int

    def __str__(self) -> str:
        return f"{self.attribute} + {self.grid}x{self.grid}x{self.channels}"


def check_grid(size: int, grid: int) -> None:
    if grid & (grid - 1) or grid > size // 2:
        raise ValueError(f"model.grid must be a power of two of at most data.size / 2 = {size // 2}, got {grid}")


def content_channels(size: int, latent: int, grid: int, attribute: int) -> int:
    """Channels of the content grid: what `latent` leaves after the attribute code, on a `grid` x
    `grid` grid. A ValueError, in one line, when the values do not fill it."""
    check_grid(size, grid)
    rest = latent - attribute
    if rest < grid**2 or rest % grid**2:
        fits = ", ".join(str(grid**2 * c + attribute) for c in (1, 2, 3, 4))
        raise ValueError(
            f"latent {latent} less model.attribute {attribute} does not fill the {grid}x{grid} content grid "
            f"(model.grid) with whole channels: use a latent of {fits}, ..., or model.grid and model.attribute: auto"
        )
    return rest // grid**2


# The rule from `latent` to its shape (docs/design.md#the-latents-shape): the finest content grid, at
# most a quarter of the image's side, that holds two channels; and once it holds CODE_FROM channels,
# one channel's worth of values becomes the attribute code.
CODE_FROM = 5


def latent_shape(size: int, latent: int, grid: int | str = "auto", attribute: int | str = "auto") -> Shape:
    """The shape of a `latent`-value latent for `size`-pixel images: `grid` and `attribute` as
    given, or by the rule where they are "auto". A ValueError, in one line, when given values do not
    fit: the shape never changes behind the user's back."""
    if grid != "auto":
        check_grid(size, grid)
    if grid != "auto" and attribute != "auto":
        return Shape(attribute, grid, content_channels(size, latent, grid, attribute))
    if grid == "auto":
        rest = latent - (0 if attribute == "auto" else attribute)
        sides = [size // 4 >> k for k in range((size // 4).bit_length())]
        fits = [g for g in sides if rest >= 2 * g**2 and (attribute == "auto" or rest % g**2 == 0)]
        fits = fits or [g for g in sides if rest >= g**2 and (attribute == "auto" or rest % g**2 == 0)]
        if not fits:
            raise ValueError(
                f"latent {latent} less model.attribute {attribute} fills no content grid in whole channels: "
                "give a latent of at least model.attribute + 1, or model.attribute: auto"
            )
        grid = fits[0]
    if attribute != "auto":
        return Shape(attribute, grid, content_channels(size, latent, grid, attribute))
    channels = latent // grid**2
    if channels < 1:
        raise ValueError(
            f"latent {latent} is less than one channel of the {grid}x{grid} content grid (model.grid): give a latent "
            f"of at least {grid**2}, or model.grid: auto"
        )
    channels -= channels >= CODE_FROM
    return Shape(latent - grid**2 * channels, grid, channels)


class Train(Strict):
    epochs: PositiveInt
    batch_size: PositiveInt
    lr: Annotated[float, Field(gt=0)]
    weight_decay: NonNegative
    paste: Fraction
    flip: Fraction
    rotate: Annotated[float, Field(ge=0, le=180)]
    shift: Annotated[float, Field(ge=0, le=0.5)]
    zoom: Annotated[float, Field(ge=0, lt=1)]
    threads: PositiveInt
    precision: Literal["fp32", "bf16"]
    analogy: NonNegative
    pairs: PositiveInt


class Reference(Strict):
    seeds: Annotated[int, Field(strict=True, ge=1, le=9)]
    epochs: PositiveInt
    lr: Annotated[float, Field(gt=0)]
    weight_decay: NonNegative
    batch_size: PositiveInt


class Pretrain(Strict):
    epochs: Annotated[int, Field(strict=True, ge=0)]
    lr: Annotated[float, Field(gt=0)]
    paste: Fraction
    analogy: NonNegative


class Attribute(Strict):
    slots: bool
    words: bool
    classify: NonNegative
    adversary: NonNegative
    invariance: NonNegative
    swap: NonNegative
    reader: NonNegative
    ramp: Fraction
    lr: Annotated[float, Field(gt=0)]


class Refine(Strict):
    steps: Annotated[int, Field(strict=True, ge=0)]
    lr: Annotated[float, Field(gt=0)]


class BenchmarkSettings(Strict):
    latents: Annotated[list[PositiveInt], Field(min_length=1)]


class Aux(Strict):
    lambda_: Annotated[float, Field(ge=0, alias="lambda")]
    ramp: bool
    hidden: PositiveInt
    dropout: Annotated[float, Field(ge=0, lt=1)]


class Strip(Strict):
    base: str
    attribute: str
    alphas: Annotated[list[float], Field(min_length=1)]


class Compose(Strict):
    concepts: dict[str, Annotated[list[str], Field(min_length=1)]]
    recipes: list[str]
    strip: Strip
    slerp: tuple[str, str]
    slerp_steps: Annotated[int, Field(strict=True, ge=2)]


class Params(Strict):
    seed: Annotated[int, Field(strict=True, ge=0)]
    latent: PositiveInt
    data: Data
    augment: Augment
    extra: Extra
    model: Model
    pretrain: Pretrain
    train: Train
    attribute: Attribute
    refine: Refine
    reference: Reference
    aux: Aux
    compose: Compose
    benchmark: BenchmarkSettings

    @model_validator(mode="after")
    def _latent_fills_the_grid(self):
        self.shape  # noqa: B018 (raises when the latent does not fit)
        return self

    @property
    def shape(self) -> Shape:
        """The latent's shape: model.grid and model.attribute as set, or by the rule (latent_shape)."""
        return latent_shape(self.data.size, self.latent, self.model.grid, self.model.attribute)

    @model_validator(mode="after")
    def _latent_fills_the_reference_grid(self):
        if self.data.size < 16:
            raise ValueError(
                f"data.size is {self.data.size}: the reference architecture (train_reference) halves it four times, "
                "so it must be 16 or more"
            )
        cells = (self.data.size // 16) ** 2
        if self.latent % cells:
            raise ValueError(
                f"latent {self.latent} does not fill the reference's {self.data.size // 16}x{self.data.size // 16} "
                "grid "
                f"at {self.data.size} px (train_reference): use a multiple of {cells}"
            )
        return self


def _describe(error: dict) -> str:
    where = ".".join(str(p) for p in error["loc"])
    if error["type"] == "extra_forbidden":
        close = difflib.get_close_matches(str(error["loc"][-1]), _known_keys(error["loc"][:-1]), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        return f"{where}: unknown key{hint}"
    if error["type"] == "missing":
        return f"{where}: missing (params.yaml sets every key; copy it from the committed params.yaml)"
    message = error["msg"].removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _known_keys(path: tuple) -> list[str]:
    model = Params
    for part in path:
        field = model.model_fields.get(part)
        annotation = getattr(field, "annotation", None)
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return []
        model = annotation
    return [f.alias or name for name, f in model.model_fields.items()]


def parse_params(raw: dict) -> Params:
    try:
        return Params.model_validate(raw)
    except ValidationError as e:
        problems = "; ".join(_describe(err) for err in e.errors())
        raise PipelineError(f"params.yaml is invalid: {problems}. Fix these keys and re-run.")


def override(raw: dict, assignment: str) -> None:
    """Apply KEY=VALUE as `dvc exp run -S` takes it: a dotted key and a YAML value."""
    key, equals, value = assignment.partition("=")
    if not equals:
        raise PipelineError(f"'{assignment}' is not KEY=VALUE: write e.g. aux.lambda=0.03")
    *sections, leaf = key.split(".")
    for section in sections:
        raw = raw.get(section) if isinstance(raw, dict) else None
    if not isinstance(raw, dict):
        raise PipelineError(f"'{key}': params.yaml has no section '{'.'.join(sections)}'")
    raw[leaf] = yaml.safe_load(value)


def load_params(path: Path = PARAMS, overrides: list[str] = ()) -> Params:
    """params.yaml, validated; `overrides` (KEY=VALUE) replace some of its values first."""
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise PipelineError(f"{path} not found: run the stages from the repository root")
    except yaml.YAMLError as e:
        raise PipelineError(f"{path} is not valid YAML ({str(e).splitlines()[0]})")
    if not isinstance(raw, dict):
        raise PipelineError(f"{path} must be a mapping of keys to values")
    for assignment in overrides:
        override(raw, assignment)
    return parse_params(raw)


def run_stage(main) -> None:
    """Run a stage's main(); a PipelineError becomes one line on stderr and exit code 1.

    SIGTERM exits through Python's unwinding, like Ctrl-C, so the atomic writers in flight
    remove their temporary files.
    """
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        main()
    except PipelineError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
