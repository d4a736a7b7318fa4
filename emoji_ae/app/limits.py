"""What the model's users may ask, bounded: the page's request bodies and the command's arguments
are checked against the same models, so neither takes a value the other refuses (docs/design.md,
"The page, safe to leave running")."""

from pydantic import BaseModel, ConfigDict, Field, ValidationError

MAX_UPLOAD = 2 * 2**20  # one image's bytes: an upload, or an image file given to the command
MAX_UPLOAD_SIDE = 4096  # an image's longer side: a small PNG can hold a huge blank image, made square before resizing
MAX_NAME = 200  # characters of an emoji's name or a concept


class Term(BaseModel):
    """One term: an emoji's name or a concept, or an uploaded image (a data URL) with its file name."""

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, max_length=MAX_NAME)
    image: str | None = Field(None, max_length=MAX_UPLOAD * 4 // 3 + 100)
    label: str | None = Field(None, max_length=MAX_NAME)


class SignedTerm(Term):
    sign: float = Field(1.0, allow_inf_nan=False)


class ComposeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    terms: list[SignedTerm] = Field(min_length=1, max_length=8)
    alpha: float = Field(1.0, ge=-2, le=3, allow_inf_nan=False)


class ReconstructBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    term: Term
    steps: int | None = Field(None, ge=0, le=500)  # Adam steps on the latent; None: the package's refine.steps


class AttributeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    term: Term
    attribute: str = Field(max_length=100)
    amount: float = Field(1.0, ge=-2, le=3, allow_inf_nan=False)


class InterpolateBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    start: Term
    end: Term
    steps: int = Field(7, ge=2, le=20)


def problem(error: ValidationError, schema: type[BaseModel]) -> str:
    """A validation error as one line that names the field and its range."""
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the request"
    field = schema.model_fields.get(str(first["loc"][0])) if first["loc"] else None
    bounds = {
        key: getattr(m, key)
        for m in (field.metadata if field else [])
        for key in ("ge", "le", "min_length", "max_length")
        if getattr(m, key, None) is not None
    }
    if {"ge", "le"} <= bounds.keys() and first["type"] in ("greater_than_equal", "less_than_equal"):
        return f"{where} must be from {bounds['ge']:g} to {bounds['le']:g} (got {first.get('input')!r})"
    if {"min_length", "max_length"} <= bounds.keys() and first["type"] in ("too_short", "too_long"):
        return (
            f"{where}: from {bounds['min_length']} to {bounds['max_length']} items, got {len(first.get('input') or [])}"
        )
    return f"{where}: {first['msg']}"
