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
import sys
from pathlib import Path

from emoji_ae.app.workbench import DEFAULT_PACKAGE, Workbench
from emoji_ae.config import PipelineError, run_stage
from emoji_ae.data import words_of


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
    """Before any work: the output must be a PNG in an existing folder."""
    if path is None:
        return
    if path.suffix.lower() != ".png":
        raise PipelineError(f"-o {path}: the output is a PNG image, name it *.png")
    if not path.parent.is_dir():
        raise PipelineError(f"-o {path}: the folder {path.parent} does not exist")


def compose(bench: Workbench, args) -> None:
    result = bench.compose_text(args.recipe, args.alpha)
    print(f"base: {result.base.label}; alpha {args.alpha:g}")
    print(
        "nearest real emoji (inputs excluded): "
        + ", ".join(f"{name} ({distance:.2f})" for name, distance in result.nearest)
    )
    if args.output:
        from emoji_ae.figures import save_grid

        titles = [
            ("" if i == 0 else ("- " if sign < 0 else "+ ")) + t.label for i, (sign, t) in enumerate(result.terms)
        ]
        nearest = result.nearest[0][0]
        save_grid(
            args.output,
            [[t.pixels for _, t in result.terms] + [result.image, result.pixel, bench.pixels(nearest)]],
            col_titles=titles + ["= composite", "pixel arithmetic", f"nearest: {nearest}"],
            title=f"{args.recipe} (alpha {args.alpha:g})",
            cell=1.5,
        )
        print(f"wrote {args.output}")


def reconstruct(bench: Workbench, args) -> None:
    term = bench.term(args.image)
    image, mse = bench.reconstruct(term, args.refine)
    steps = bench.settings["refine"]["steps"] if args.refine is None else args.refine
    how = f"latent refined by {steps} steps" if steps else "one encoder pass"
    print(f"reconstruction MSE {mse:.5f} ({how}; pixels in [0, 1])")
    if args.output:
        from emoji_ae.figures import save_grid

        save_grid(
            args.output, [[term.pixels, image]], col_titles=["input, prepared", f"reconstruction ({mse:.4f})"], cell=2
        )
        print(f"wrote {args.output}")


def interpolate(bench: Workbench, args) -> None:
    start, end = bench.term(args.start), bench.term(args.end)
    frames = bench.interpolate(start, end, args.steps)
    print(f"{len(frames)} points from {start.label} to {end.label}")
    if args.output:
        from emoji_ae.figures import save_grid

        save_grid(
            args.output,
            [[start.pixels, *frames, end.pixels]],
            col_titles=["start", *[f"t={i / (len(frames) - 1):.2f}" for i in range(len(frames))], "end"],
            cell=1.2,
        )
        print(f"wrote {args.output}")


def attribute(bench: Workbench, args) -> None:
    term = bench.term(args.term)
    moved = bench.set_attribute(term, args.attribute, args.amount)
    print(f"{term.label}: {args.attribute} x {args.amount:g}")
    if args.output:
        from emoji_ae.figures import save_grid

        save_grid(args.output, [[term.pixels, bench.set_attribute(term, args.attribute, 0.0), moved]],
                  col_titles=["input", "decoded", f"{args.attribute} x {args.amount:g}"], cell=2)
        print(f"wrote {args.output}")


def names(bench: Workbench, args) -> None:
    """Every name (a drawing of a second set as 'set: name'), concept and attribute with the word, or all."""
    word = (args.word or "").lower()
    for name in sorted(bench.names):
        if not word or word in words_of(name):
            print(name)
    for concept, members in sorted(bench.concepts.items()):
        if not word or word in words_of(concept):
            print(f"{concept} (concept: {', '.join(members)})")
    for name in bench.attributes:
        if not word or word in words_of(name):
            print(f"{name} (attribute: emoji-ae attribute NAME '{name}')")


def main(argv=None) -> None:
    args = arguments(argv)
    check_output(getattr(args, "output", None))
    if getattr(args, "steps", 2) < 2:
        raise PipelineError(f"--steps must be at least 2 (the two ends), got {args.steps}")
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
    """The console script: run_stage's one-line errors, without a traceback."""
    run_stage(lambda: main(sys.argv[1:]))


if __name__ == "__main__":
    entry()
