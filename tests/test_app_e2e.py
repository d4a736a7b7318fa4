"""The model outside the pipeline, as a user runs it: the installed `emoji-ae` command on the tiny
pipeline's packages, their model cards, and the page driven in headless Chromium by Playwright.
(A package fetched with `dvc artifacts get`: tests/test_team.py.)"""

import base64
import hashlib
import io
import json
import shutil
import time

import pandas as pd
import pytest
from PIL import Image

from emoji_ae.tools.app_benchmark import CHROMIUM_ARGS, start_app
from tests import hostile
from tests.conftest import TINY_LATENT, dvc, emoji_ae, emoji_png

pytestmark = pytest.mark.e2e

# The assignment's recipe; the tiny pipeline's default data has these emoji.
RECIPE = "crying cat face - crying face + face with tears of joy"


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def test_the_packages_hold_the_trained_models_and_a_card_of_this_run(tiny_pipeline):
    metrics = json.loads((tiny_pipeline / "reports/metrics.json").read_text())
    for name in ("ae", "aux"):
        package = tiny_pipeline / "models/release" / name
        assert md5(package / "model.pt") == md5(tiny_pipeline / "models" / name / "model.pt")
        assert md5(package / "latents.pt") == md5(tiny_pipeline / "models" / name / "latents.pt")
        card = (package / "README.md").read_text()
        assert (
            card.startswith("---\nlicense: cc-by-sa-4.0\n") and "OpenMoji" in card and "Twemoji" in card
        )  # pretrained on both sets
        assert f"{metrics[name]['test_mse_one_pass']:.4f}" in card and f"{metrics[name]['test_ssim']:.3f}" in card
        assert "emoji-ae compose" in card
    assert f"{metrics['aux']['test_accuracy']:.1%}" in (tiny_pipeline / "models/release/aux/README.md").read_text()


def test_the_command_composes_the_assignments_recipe_on_the_workspace_models(tiny_pipeline, tmp_path):
    out = tmp_path / "out.png"
    result = emoji_ae("compose", RECIPE, "-o", str(out), cwd=tiny_pipeline)
    assert result.returncode == 0, result.stderr
    assert "base: face with tears of joy" in result.stdout and "nearest real emoji (inputs excluded): " in result.stdout
    assert Image.open(out).size[0] > 400  # inputs, composite, pixel arithmetic, nearest
    aux = emoji_ae("reconstruct", "nerd face", "--model", "models/release/aux", "--refine", "0", cwd=tiny_pipeline)
    assert aux.returncode == 0 and "reconstruction MSE" in aux.stdout
    grin = emoji_ae(
        "compose", "grinning face + glasses - plain", "--alpha", "0.5", cwd=tiny_pipeline
    )  # concepts of params.yaml
    assert grin.returncode == 0 and "base: grinning face; alpha 0.5" in grin.stdout
    unknown = emoji_ae("compose", "crying kat face - crying face + weary face", cwd=tiny_pipeline)
    assert (
        unknown.returncode == 1 and "closest: 'crying cat face'" in unknown.stderr and unknown.stderr.count("\n") == 1
    )
    assert "up to date" in dvc(tiny_pipeline, "status")  # nothing of DVC's was touched


@pytest.fixture
def browser():
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium); the page test needs it")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        launched = p.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def shown(page, selector) -> Image.Image:
    """The image an <img> shows, decoded from its data URL."""
    source = page.get_attribute(selector, "src")
    assert source.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(source.split(",", 1)[1])))


def test_the_page_composes_reconstructs_and_takes_an_upload_in_chromium(tiny_pipeline, browser, tmp_path):
    app, url, seconds = start_app(tiny_pipeline / "models/release/ae")
    try:
        print(f"page ready {seconds:.2f} s after the command")
        page = browser.new_page()
        page.goto(url)
        page.wait_for_selector("body[data-ready=true]")
        assert page.input_value("#terms .term:nth-child(1) .name") == "nerd face"  # the first recipe of params.yaml
        page.select_option("#examples", index=1)  # the assignment's recipe
        page.click("#compose-button")
        page.wait_for_selector("#compose-result figure.result img")
        assert shown(page, "#compose-result figure.result img").size == (16, 16)
        captions = page.locator("#compose-result figcaption").all_inner_texts()
        assert captions[:4] == ["crying cat face", "− crying face", "+ face with tears of joy", "= composite"]
        assert len([c for c in captions if c.startswith("nearest")]) == 3
        assert float(page.get_attribute("#compose-result", "data-ms")) > 0

        drawing = tmp_path / "my drawing.png"
        drawing.write_bytes(emoji_png(7, size=120))
        page.set_input_files("#terms .term:nth-child(3) .file", str(drawing))
        page.fill("#alpha", "1.5")
        page.dispatch_event("#alpha", "input")
        page.wait_for_selector(
            "#compose-result figcaption:has-text('my drawing.png')"
        )  # no script eval: the page's CSP forbids it
        page.set_input_files("#recon-file", str(drawing))
        page.click("#reconstruct-button")
        page.wait_for_selector("#reconstruct-result figure.result img")
        assert "MSE 0." in page.inner_text("#reconstruct-result")
        page.click("#interpolate-button")
        page.wait_for_selector("#interpolate-result figure img")
        assert page.locator("#interpolate-result figure").count() == 7

        page.fill("#terms .term:nth-child(1) .name", "crying kat face")
        page.click("#compose-button")
        page.wait_for_selector("#compose-error:not(:empty)")
        assert "closest: 'crying cat face'" in page.inner_text("#compose-error")
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        assert Image.open(tmp_path / "page.png").size[1] > 600
    finally:
        app.terminate()
        app.wait(timeout=30)  # the page stays open: the server's graceful shutdown bounds it


def test_the_page_refuses_a_busy_port_in_one_line(tiny_pipeline):
    app, url, _ = start_app(tiny_pipeline / "models/release/ae")
    try:
        port = url.rstrip("/").rsplit(":", 1)[1]
        started = time.time()
        busy = emoji_ae("app", "--port", port, cwd=tiny_pipeline)
        assert (
            busy.returncode == 1
            and busy.stderr.startswith(f"error: cannot listen on 127.0.0.1:{port}")
            and time.time() - started < 60
        )
    finally:
        app.terminate()
        app.wait(timeout=10)


def test_the_page_on_the_tiny_pipelines_package_holds_against_an_attacker_and_a_crowd(tiny_pipeline, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(emoji_png(3))
    app, url, _ = start_app(tiny_pipeline / "models/release/ae")
    try:
        hostile.assert_safe(url, ["crying cat face", "crying face", "face with tears of joy"], str(secret))
    finally:
        app.terminate()
        app.wait(timeout=10)


def test_the_package_names_every_drawing_the_model_learned_from_or_was_scored_on(tiny_pipeline):
    emoji = pd.read_parquet(tiny_pipeline / "models/release/ae/emoji.parquet")
    data = tiny_pipeline / "data"
    frames = [pd.read_parquet(data / "prepared" / f"{split}.parquet") for split in ("train", "val", "test")]
    frames += [pd.read_parquet(data / "extra" / f"{name}.parquet") for name in ("pretrain", "styles", "held_out")]
    drawn = {(s, t) for f in frames for s, t, mirrored in zip(f["source"], f["text"], f["augmented"]) if not mirrored}
    assert emoji["text"].is_unique and set(emoji["source"]) == {"openmoji", "twemoji"}
    assert {(s, t.removeprefix(f"{s}: ")) for s, t in zip(emoji["source"], emoji["text"])} == drawn and len(
        emoji
    ) == len(drawn)
    assert {"train", "val", "test"} <= set(emoji["split"]) and len(emoji["z"].iloc[0]) == TINY_LATENT
    second = emoji[emoji["text"].str.startswith("twemoji: ")]
    assert len(second) and set(second["text"].str.removeprefix("twemoji: ")) <= set(
        emoji.loc[emoji["source"] == "openmoji", "text"]
    )
    name = second["text"].iloc[0]
    listed = emoji_ae("names", name.split()[-1], cwd=tiny_pipeline)
    assert name in listed.stdout.splitlines()
    composed = emoji_ae("compose", f"{name} - {name.removeprefix('twemoji: ')} + nerd face", cwd=tiny_pipeline)
    assert composed.returncode == 0 and "base: nerd face" in composed.stdout, composed.stderr
