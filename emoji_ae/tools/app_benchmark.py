"""How fast the page is: `emoji-ae app` started as a user starts it, timed until it answers, then
compositions sent as the page sends them (names, and a recipe with an uploaded image).

    python -m emoji_ae.tools.app_benchmark [--model models/release/ae] [--requests 50] [--screenshot docs/app.png]

Prints the start time (command to first answer of /api/info) and the round-trip time of a
composition (median, 95th percentile, worst). --screenshot also drives the page in Debian's
chromium with Playwright (the test extra) and saves what it shows after composing.
"""

import argparse
import base64
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from emoji_ae.app.workbench import DEFAULT_PACKAGE
from emoji_ae.config import PipelineError, run_stage

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def start_app(model: Path, timeout: float = 60) -> tuple[subprocess.Popen, str, float]:
    """The installed command, on a free port; returns it, its address and the seconds until /api/info answered."""
    # The console script beside this interpreter first: a venv that was not activated still has it.
    command = shutil.which(
        "emoji-ae", path=os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    )
    if command is None:
        raise PipelineError("emoji-ae is not installed: pip install -e .")
    started = time.perf_counter()
    app = subprocess.Popen(
        [command, "app", "--model", str(model), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    line = app.stdout.readline()
    found = re.search(r"http://127\.0\.0\.1:\d+/", line)
    if not found:
        app.kill()
        raise PipelineError(f"emoji-ae app did not start: {(line + app.stderr.read()).strip()}")
    url = found.group(0)
    while time.perf_counter() - started < timeout:
        try:
            with urllib.request.urlopen(url + "api/info", timeout=5):
                return app, url, time.perf_counter() - started
        except OSError:
            time.sleep(0.02)
    app.kill()
    raise PipelineError(f"emoji-ae app did not answer within {timeout:.0f} s")


def post(url: str, body: dict) -> float:
    """Milliseconds for one request and its whole answer."""
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        response.read()
    return (time.perf_counter() - started) * 1000


def user_image(model: Path) -> str:
    """A user's drawing, as the page uploads it: the package's first emoji at 256 px, as a data URL."""
    import io

    import pandas as pd
    from PIL import Image

    raw = pd.read_parquet(model / "emoji.parquet", columns=["image"])["image"].iloc[0]["bytes"]
    buffer = io.BytesIO()
    Image.open(io.BytesIO(raw)).resize((256, 256)).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def compositions(url: str, model: Path, n: int) -> dict[str, list[float]]:
    """Round trips of the package's first recipe by name, and with its last term an uploaded image."""
    with urllib.request.urlopen(url + "api/info", timeout=30) as response:
        info = json.loads(response.read())
    terms = info["examples"][0]["terms"] if info["examples"] else [{"sign": 1, "name": info["names"][0]}]
    with_image = [*terms[:-1], {"sign": 1, "image": user_image(model), "label": "upload.png"}]
    times = {"names": [], "uploaded image": []}
    post(url + "api/compose", {"terms": terms, "alpha": 1})  # the first call warms torch's kernels
    for i in range(n):
        times["names"].append(post(url + "api/compose", {"terms": terms, "alpha": 0.5 + i % 3 * 0.5}))
        times["uploaded image"].append(post(url + "api/compose", {"terms": with_image, "alpha": 1}))
    return times


def screenshot(url: str, path: Path) -> None:
    from playwright.sync_api import sync_playwright

    browser_path = shutil.which("chromium")
    if browser_path is None:
        raise PipelineError("chromium is not installed (Debian: apt-get install chromium)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=browser_path, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 1000})
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")
        page.click("#compose-button")
        page.wait_for_selector("#compose-result figure.result img")
        page.click("#interpolate-button")
        page.wait_for_selector("#interpolate-result figure img")
        page.screenshot(path=str(path), full_page=True)
        browser.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=DEFAULT_PACKAGE)
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--screenshot", type=Path)
    args = parser.parse_args()
    app, url, seconds = start_app(args.model)
    try:
        print(f"start: {seconds:.2f} s from the command to the first answer ({url})")
        for kind, times in compositions(url, args.model, args.requests).items():
            p95 = statistics.quantiles(times, n=20)[-1]
            print(f"compose ({kind}), {len(times)} requests: median {statistics.median(times):.1f} ms, "
                  f"95th percentile {p95:.1f} ms, worst {max(times):.1f} ms")
        if args.screenshot:
            screenshot(url, args.screenshot)
            print(f"wrote {args.screenshot}")
    finally:
        app.terminate()
        app.wait(timeout=10)


if __name__ == "__main__":
    run_stage(main)
