"""Recipes of latent arithmetic ("nerd face - smiling face with open mouth + face with stuck out
tongue"): parsing, name checks, concepts and spherical interpolation. The compose stage and the
model's command and page (emoji_ae/app) share them."""

import difflib
import math
import re

import torch
import torch.nn.functional as F

from emoji_ae.config import PipelineError


def split_terms(recipe: str) -> list[tuple[float, str]]:
    """'a - b + c' -> [(1, 'a'), (-1, 'b'), (1, 'c')], each term as written (case kept)."""
    text = recipe.strip()
    if not text.startswith(("+", "-")):
        text = f"+ {text}"
    parts = re.split(r"(?:^|\s+)([+-])\s+", text)
    terms = [(1.0 if sign == "+" else -1.0, term.strip()) for sign, term in zip(parts[1::2], parts[2::2])]
    if not terms or any(not term or term[0] in "+-" or term[-1] in "+-" for _, term in terms):
        raise PipelineError(f"recipe '{recipe}' is malformed: write it as 'name - name + name'")
    return terms


def parse_recipe(recipe: str) -> list[tuple[float, str]]:
    """split_terms with every term lower-cased, as emoji names and concepts are written."""
    return [(sign, term.lower()) for sign, term in split_terms(recipe)]


def closest(name: str, known) -> str:
    """'closest: 'a', 'b'' for an unknown name, or 'no close name'."""
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.4)
    return f"closest: {', '.join(repr(c) for c in close)}" if close else "no close name"


def check_names(names: list[str], known: list[str], where: str) -> None:
    """Fail up front, in one line, on the first name that is not an emoji of the data."""
    for name in names:
        if name not in known:
            raise PipelineError(f"{where} names '{name}', which is not in the prepared data ({closest(name, known)})")


def concept_vector(term: str, latents, concepts) -> torch.Tensor:
    """A term's latent: an emoji's own, or a concept's, the mean latent of the emoji it lists."""
    members = concepts.get(term, [term])
    return torch.stack([latents[n] for n in members]).mean(0)


def slerp(z0: torch.Tensor, z1: torch.Tensor, t: float) -> torch.Tensor:
    # The angle's trigonometry in Python floats: torch's vectorised arccos and sin round
    # differently from one CPU vendor to another.
    omega = math.acos(min(1.0, max(-1.0, F.cosine_similarity(z0, z1, dim=0).item())))
    if omega < 1e-6:
        return (1 - t) * z0 + t * z1
    return (math.sin((1 - t) * omega) * z0 + math.sin(t * omega) * z1) / math.sin(omega)


def answer(terms: list[tuple[float, str]], names) -> str | None:
    """The emoji of the data that 'a - b + c' names, when a and b differ by one run of words and
    putting that run into c in place of b's gives exactly one known name ("crying cat face -
    crying face + face with tears of joy" -> "cat face with tears of joy"); else None."""
    if [sign for sign, _ in terms] != [1.0, -1.0, 1.0]:
        return None
    a, b, c = (term.split() for _, term in terms)
    head = 0
    while head < min(len(a), len(b)) and a[head] == b[head]:
        head += 1
    tail = 0
    while tail < min(len(a), len(b)) - head and a[-1 - tail] == b[-1 - tail]:
        tail += 1
    added, removed = a[head : len(a) - tail], b[head : len(b) - tail]
    if not added and not removed:
        return None
    found = set()
    for start in range(len(c) + 1):
        if c[start : start + len(removed)] == removed:
            found.add(" ".join(c[:start] + added + c[start + len(removed) :]))
    found = {name for name in found & set(names) if name not in (terms[0][1], terms[2][1])}
    return found.pop() if len(found) == 1 else None
