"""The `emoji-ae` command as a careless or hostile shell user meets it: every argument the page
bounds, out of range, not finite or oversized; recipes of too many terms; names, paths and files
that are no image or too large to be one; outputs that cannot be written. Each must end in one
`error:` line and exit 1, within seconds, with nothing written. Run in-process on a small package
(tests/test_app.py); the installed script's own wrapper is exercised in tests/test_app_e2e.py."""

import struct
import time
import zlib
from pathlib import Path

TIMEOUT = 30  # seconds one case may take: a bound on the test (a hang fails it), not a speed target


def thin_png(width: int, height: int) -> bytes:
    """A valid PNG of a few hundred bytes that declares a huge image: one colour, one row repeated."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = zlib.compress((b"\0" + b"\xff" * width) * height, 9)
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", raw) + chunk(b"IEND", b"")


def cases(name: str, folder: Path) -> list[tuple[list[str], str]]:
    """(arguments, the start of the error line) for a package whose emoji include `name`; files are
    made in `folder`, where nothing else may appear."""
    (folder / "not_an_image.png").write_bytes(b"this is text, not a PNG")
    (folder / "huge.png").write_bytes(b"\x89PNG" + bytes(3 * 2**20))
    (folder / "thin.png").write_bytes(thin_png(1, 100_000))
    (folder / "a_folder.png").mkdir(exist_ok=True)
    long_name = "face " * 10_000
    return [
        (["interpolate", name, name, "--steps", "100000"], "error: --steps must be from 2 to 20 (got 100000)"),
        (["interpolate", name, name, "--steps", "1"], "error: --steps must be from 2 to 20 (got 1)"),
        (["interpolate", name, name, "--steps", "-5"], "error: --steps must be from 2 to 20"),
        (["compose", f"{name} - {name} + {name}", "--alpha", "nan"], "error: --alpha: Input should be a finite number"),
        (["compose", name, "--alpha", "inf"], "error: --alpha: Input should be a finite number"),
        (["compose", name, "--alpha", "1e308"], "error: --alpha must be from -2 to 3"),
        (["compose", name, "--alpha", "-50"], "error: --alpha must be from -2 to 3"),
        (["compose", " + ".join([name] * 9)], "error: the recipe's terms: from 1 to 8 items, got 9"),
        (["compose", long_name], "error: the recipe is 50000 characters long"),
        (["compose", f"{name} + {'x' * 300}"], "error: term 2: String should have at most 200 characters"),
        (["reconstruct", name, "--refine", "100000"], "error: --refine must be from 0 to 500 (got 100000)"),
        (["reconstruct", name, "--refine", "-1"], "error: --refine must be from 0 to 500"),
        (["attribute", name, "dark skin tone", "--amount", "inf"], "error: --amount: Input should be a finite"),
        (["attribute", name, "dark skin tone", "--amount", "99"], "error: --amount must be from -2 to 3"),
        (["attribute", name, "x" * 500], "error: the attribute: String should have at most 100"),
        (["names", "x" * 500], "error: the word is 500 characters long"),
        (["names", "no such word anywhere"], "error: no emoji, concept or attribute of this model holds"),
        (["app", "--port", "70000"], "error: --port must be from 0 to 65535"),
        (["app", "--port", "-1"], "error: --port must be from 0 to 65535"),
        (["reconstruct", str(folder / "not_an_image.png")], "error: "),
        (["reconstruct", str(folder / "huge.png")], "error: "),
        (["reconstruct", str(folder / "thin.png")], "error: "),
        (["reconstruct", str(folder / "missing.png")], "error: "),
        (["compose", name, "-o", str(folder / "a_folder.png")], "error: -o "),
        (["compose", name, "-o", "/proc/out.png"], "error: -o /proc/out.png cannot be written"),  # even by root
        (["compose", name, "-o", str(folder / "no_folder" / "out.png")], "error: -o "),
        (["compose", name, "-o", str(folder / "out.jpg")], "error: -o "),
    ]


def assert_refused(run, package: Path, name: str, folder: Path) -> None:
    """Every case through `run(*args)` (exit code, stdout, stderr): exit 1, one error line starting
    as expected, no traceback, nothing new in `folder`, within TIMEOUT."""
    cases_ = cases(name, folder)
    before = sorted(p.name for p in folder.rglob("*"))
    for args, expected in cases_:
        start = time.perf_counter()
        result = run(*args, "--model", str(package))
        took = time.perf_counter() - start
        assert result.returncode == 1, (args, result.returncode, result.stderr[-500:])
        assert result.stderr.startswith(expected) and result.stderr.count("\n") == 1, (args, result.stderr[-500:])
        assert "Traceback" not in result.stderr and took < TIMEOUT, (args, took)
    assert sorted(p.name for p in folder.rglob("*")) == before
