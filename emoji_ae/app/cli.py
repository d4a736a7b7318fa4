"""emoji-ae: use a trained model from the command line, or from a local web page (`emoji-ae app`).

    emoji-ae compose "crying cat face - crying face + face with tears of joy" -o out.png
    emoji-ae reconstruct my.png -o recon.png
    emoji-ae interpolate "grinning face" "crying cat face" --steps 7 -o path.png
    emoji-ae attribute "thumbs up sign" "dark skin tone" --amount 1 -o toned.png
    emoji-ae names [WORD]
    emoji-ae app

Every command reads a model package (--model, default models/release/ae): what `dvc repro`
writes there, or a folder from `dvc artifacts get <repo> emoji-ae`. Terms are emoji names,
concepts, or paths to image files. Nothing is trained and DVC is never called.
"""

import argparse
import os
import sys
from pathlib import Path

from pydantic import BaseModel, ValidationError

from emoji_ae.app.limits import MAX_NAME, AttributeBody, ComposeBody, InterpolateBody, ReconstructBody, problem
from emoji_ae.app.workbench import DEFAULT_PACKAGE, Workbench
from emoji_ae.config import PipelineError, run_stage
from emoji_ae.data import normalise_text
from emoji_ae.recipes import split_terms

MAX_RECIPE = 8 * (MAX_NAME + 3)  # eight terms of the longest name, with their signs
# The page's body fields, as the command's flags name them: one error line names what to change.
FLAGS = {"alpha": "--alpha", "amount": "--amount", "attribute": "the attribute", "term": "the term",
         "terms": "the recipe's terms", "start": "the start", "end": "the end"}


def arguments(argv=None) -> argparse.Namespace:
    model = argparse.ArgumentParser(add_help=False)
    model.add_argument("--model", type=Path, default=DEFAULT_PACKAGE,
                       help="a model package folder (default: %(default)s; models/release/aux for the aux model)")
    parser = argparse.ArgumentParser(
        prog="emoji-ae",
        description="Compose, reconstruct, interpolate and set attributes of emoji with a trained model.",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    compose = commands.add_parser("compose", parents=[model], help="latent arithmetic: 'a - b + c'")
    compose.add_argument("recipe", help="terms joined by ' + ' and ' - ': emoji names, concepts or image paths")
    compose.add_argument(
        "--alpha", type=float, default=1.0, help="scales everything but the base, the last added emoji (default 1)"
    )
    compose.add_argument("-o", "--output", type=Path, help="PNG: the inputs, the composite and pixel arithmetic")

    reconstruct = commands.add_parser("reconstruct", parents=[model], help="encode and decode one image or emoji")
    reconstruct.add_argument("image", help="an image file or an emoji's name")
    reconstruct.add_argument(
        "--refine",
        type=int,
        metavar="STEPS",
        help="Adam steps on the latent (default: the run's refine.steps; 0 = the encoder's single pass)",
    )
    reconstruct.add_argument("-o", "--output", type=Path, help="PNG: the prepared input beside its reconstruction")

    interpolate = commands.add_parser("interpolate", parents=[model], help="a spherical path between two latents")
    interpolate.add_argument("start", help="an emoji's name, a concept or an image file")
    interpolate.add_argument("end")
    interpolate.add_argument("--steps", type=int, default=7, help="points on the path, the ends included (default 7)")
    interpolate.add_argument("-o", "--output", type=Path, help="PNG: the strip of decoded points")

    attribute = commands.add_parser(
        "attribute", parents=[model], help="move a drawing along an attribute (a skin tone, a set)"
    )
    attribute.add_argument("term", help="an emoji's name, a concept or an image file")
    attribute.add_argument("attribute", help="an attribute of the model: `emoji-ae names` lists them")
    attribute.add_argument(
        "--amount", type=float, default=1.0, help="how far along it (default 1; negative takes it away)"
    )
    attribute.add_argument("-o", "--output", type=Path, help="PNG: the drawing, its reconstruction and the moved one")

    names = commands.add_parser("names", parents=[model], help="the emoji, concepts and attributes a recipe may use")
    names.add_argument("word", nargs="?", help="only names with this word")

    app = commands.add_parser("app", parents=[model], help="serve the local web page")
    app.add_argument("--port", type=int, default=7860, help="port on 127.0.0.1 (default %(default)s; 0 = any free one)")
    return parser.parse_args(argv)


def check_output(path: Path | None) -> None:
    """Before any work: the output must be a PNG in an existing folder that can be written."""
    if path is None:
        return
    if path.suffix.lower() != ".png":
        raise PipelineError(f"-o {path}: the output is a PNG image, name it *.png")
    if not path.parent.is_dir():
        raise PipelineError(f"-o {path}: the folder {path.parent} does not exist")
    if path.is_dir():
        raise PipelineError(f"-o {path} is a folder: name a PNG file")
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise PipelineError(f"-o {path}: cannot write there (permission denied); pick another path")


def checked(schema: type[BaseModel], steps_flag: str = "--steps", **fields) -> BaseModel:
    """The arguments as the page's body for the same action: the same bounds, finite numbers; a
    PipelineError naming the flag otherwise."""
    try:
        return schema.model_validate(fields)
    except ValidationError as e:
        line, loc = problem(e, schema), e.errors()[0]["loc"]
        where = ".".join(str(part) for part in loc)
        named = f"term {loc[1] + 1}" if loc[:1] == ("terms",) and len(loc) > 1 else None
        flag = named or {**FLAGS, "steps": steps_flag}.get(str(loc[0]), str(loc[0]))
        raise PipelineError(line.replace(where, flag, 1)) from None


def term(text: str) -> dict:
    """A term as the page's body holds it: a name, bounded as the page bounds it; an image file's
    path stands for an upload (its bytes and side are bounded when it is read)."""
    try:
        if Path(text).is_file():
            return {"label": text[:MAX_NAME]}
    except OSError:  # a name too long to be a path
        pass
    return {"name": text}


def check_arguments(args) -> None:
    """Every argument bounded as the page bounds its request, before the model is loaded."""
    if args.command == "compose":
        if len(args.recipe) > MAX_RECIPE:
            raise PipelineError(f"the recipe is {len(args.recipe)} characters long: give at most {MAX_RECIPE}")
        terms = [{"sign": sign, **term(text)} for sign, text in split_terms(args.recipe)]
        checked(ComposeBody, alpha=args.alpha, terms=terms)
    elif args.command == "reconstruct":
        checked(ReconstructBody, "--refine", term=term(args.image), steps=args.refine)
    elif args.command == "interpolate":
        checked(InterpolateBody, start=term(args.start), end=term(args.end), steps=args.steps)
    elif args.command == "attribute":
        checked(AttributeBody, term=term(args.term), attribute=args.attribute, amount=args.amount)
    elif args.command == "names" and len(args.word or "") > MAX_NAME:
        raise PipelineError(f"the word is {len(args.word)} characters long: give at most {MAX_NAME}")
    elif args.command == "app" and not 0 <= args.port <= 65535:
        raise PipelineError(f"--port must be from 0 to 65535 (0: any free port), got {args.port}")


def save(path: Path, *args, **kwargs) -> None:
    """save_grid to the -o path; a path that cannot be written is one line, and nothing is left there."""
    from emoji_ae.figures import save_grid

    try:
        save_grid(path, *args, **kwargs)
    except OSError as e:
        raise PipelineError(f"-o {path} cannot be written ({e.strerror or e}): pick another path") from None
    print(f"wrote {path}")


def compose(bench: Workbench, args) -> None:
    result = bench.compose_text(args.recipe, args.alpha)
    print(f"base: {result.base.label}; alpha {args.alpha:g}")
    print(
        "nearest real emoji (inputs excluded): "
        + ", ".join(f"{name} ({distance:.2f})" for name, distance in result.nearest)
    )
    if args.output:
        titles = [
            ("" if i == 0 else ("- " if sign < 0 else "+ ")) + t.label for i, (sign, t) in enumerate(result.terms)
        ]
        nearest = result.nearest[0][0]
        save(
            args.output,
            [[t.pixels for _, t in result.terms] + [result.image, result.pixel, bench.pixels(nearest)]],
            col_titles=titles + ["= composite", "pixel arithmetic", f"nearest: {nearest}"],
            title=f"{args.recipe} (alpha {args.alpha:g})",
            cell=1.5,
        )


def reconstruct(bench: Workbench, args) -> None:
    term = bench.term(args.image)
    image, mse = bench.reconstruct(term, args.refine)
    steps = bench.settings["refine"]["steps"] if args.refine is None else args.refine
    how = f"latent refined by {steps} steps" if steps else "one encoder pass"
    print(f"reconstruction MSE {mse:.5f} ({how}; pixels in [0, 1])")
    if args.output:
        save(args.output, [[term.pixels, image]], col_titles=["input, prepared", f"reconstruction ({mse:.4f})"], cell=2)


def interpolate(bench: Workbench, args) -> None:
    start, end = bench.term(args.start), bench.term(args.end)
    frames = bench.interpolate(start, end, args.steps)
    print(f"{len(frames)} points from {start.label} to {end.label}")
    if args.output:
        save(
            args.output,
            [[start.pixels, *frames, end.pixels]],
            col_titles=["start", *[f"t={i / (len(frames) - 1):.2f}" for i in range(len(frames))], "end"],
            cell=1.2,
        )


def attribute(bench: Workbench, args) -> None:
    term = bench.term(args.term)
    moved = bench.set_attribute(term, args.attribute, args.amount)
    print(f"{term.label}: {args.attribute} x {args.amount:g}")
    if args.output:
        save(args.output, [[term.pixels, bench.set_attribute(term, args.attribute, 0.0), moved]],
             col_titles=["input", "decoded", f"{args.attribute} x {args.amount:g}"], cell=2)


def holds(name: str, phrase: list[str]) -> bool:
    """Whether the name's words hold the phrase's words, in order, side by side."""
    words = normalise_text(name).replace(":", " ").split()
    return any(words[i : i + len(phrase)] == phrase for i in range(len(words) - len(phrase) + 1))


def names(bench: Workbench, args) -> None:
    """Every name (a drawing of a second set as 'set: name'), concept and attribute that holds the
    word or phrase, or all; none is an error, as grep's."""
    phrase = (normalise_text(args.word) or "").replace(":", " ").split()
    lines = [name for name in sorted(bench.names) if holds(name, phrase)]
    lines += [f"{c} (concept: {', '.join(m)})" for c, m in sorted(bench.concepts.items()) if holds(c, phrase)]
    lines += [f"{a} (attribute: emoji-ae attribute NAME '{a}')" for a in bench.attributes if holds(a, phrase)]
    if not lines:
        raise PipelineError(f"no emoji, concept or attribute of this model holds '{args.word}': `emoji-ae names` "
                            "lists them all")
    print("\n".join(lines))


def main(argv=None) -> None:
    args = arguments(argv)
    check_output(getattr(args, "output", None))
    check_arguments(args)
    if args.command == "app":
        from emoji_ae.app.web import serve

        serve(args.model, args.port)
        return
    bench = Workbench(args.model)
    commands = {
        "compose": compose,
        "reconstruct": reconstruct,
        "interpolate": interpolate,
        "attribute": attribute,
        "names": names,
    }
    commands[args.command](bench, args)


def entry() -> None:
    """The console script: run_stage's one-line errors, without a traceback; a reader that stops
    early (`emoji-ae names | head`) ends it quietly, as it ends any Unix tool."""
    try:
        run_stage(lambda: main(sys.argv[1:]))
        sys.stdout.flush()
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        sys.exit(128 + 13)  # SIGPIPE's status, as the shell reports a tool that a pipe closed on


if __name__ == "__main__":
    entry()
