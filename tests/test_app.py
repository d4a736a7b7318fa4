"""The model outside the pipeline (emoji_ae/app): the workbench, the `emoji-ae` command and the
page's JSON routes, on a small model package the tests build. The installed command on the tiny
pipeline's models, a fetched artifact and the page in Chromium: tests/test_app_e2e.py."""

import base64
import io
import json
import os
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
from PIL import Image

from emoji_ae.app import web
from emoji_ae.app.cli import main as cli_main
from emoji_ae.app.workbench import Workbench
from emoji_ae.config import PipelineError, run_stage
from emoji_ae.data import png_bytes, to_square
from emoji_ae.model import Autoencoder, save_model
from emoji_ae.sources import decode_image
from tests import hostile, hostile_cli
from tests.conftest import NAMES, emoji_png, encoded

SIZE = 16
CONCEPTS = {"cat": ["crying cat face", "weary cat face"], "human": ["crying face", "weary face"]}
RECIPE = "crying cat face - crying face + pouting face"


TONED = ["thumbs up sign", "thumbs up sign dark skin tone", "waving hand sign", "waving hand sign dark skin tone"]
VARIANTS = [r"\b(light|medium light|medium|medium dark|dark) skin tone\b"]


def write_package(folder, names=NAMES[:16] + TONED):
    """What the card stage writes, small: an untrained 16 px model, its emoji and settings."""
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    save_model(Autoencoder(SIZE, [8, 16], 16, grid=2), folder / "model.pt")
    torch.save({"train": {"z": torch.zeros(1, 16), "text": names[:1]}}, folder / "latents.pt")
    images = [png_bytes(to_square(decode_image(emoji_png(i)), SIZE, False)) for i in range(len(names))]
    pd.DataFrame({"image": [{"bytes": b, "path": f"{i}.png"} for i, b in enumerate(images)], "text": names,
                  "source": "test", "split": "train", "class_name": "face"}).to_parquet(folder / "emoji.parquet")
    settings = {
        "concepts": CONCEPTS,
        "recipes": [RECIPE, "grinning face + cat - human"],
        "slerp": ["grinning face", "dog face"],
        "refine": {"steps": 5, "lr": 0.01},
        "variants": VARIANTS,
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    return folder


@pytest.fixture(scope="module")
def package(tmp_path_factory):
    return write_package(tmp_path_factory.mktemp("package") / "ae")


@pytest.fixture(scope="module")
def bench(package):
    return Workbench(package, workspace_params=None)


def test_composition_adds_the_attribute_to_the_base_and_names_the_nearest_emoji(bench):
    result = bench.compose_text(RECIPE)
    assert result.base.label == "pouting face" and result.image.shape == (3, SIZE, SIZE)
    z = bench.latent("crying cat face") - bench.latent("crying face") + bench.latent("pouting face")
    assert torch.allclose(bench.model.decode(z[None])[0], result.image, atol=1e-6)
    pixels = (bench.pixels("crying cat face") - bench.pixels("crying face") + bench.pixels("pouting face")).clamp(0, 1)
    assert torch.equal(result.pixel, pixels)
    assert len(result.nearest) == 3 and not {"crying cat face", "crying face", "pouting face"} & {
        n for n, _ in result.nearest
    }
    assert [d for _, d in result.nearest] == sorted(d for _, d in result.nearest)


def test_alpha_scales_the_attribute_and_zero_gives_the_base(bench):
    plain = bench.compose_text("grinning face + cat - human", alpha=0)
    assert plain.base.label == "grinning face"
    assert torch.allclose(plain.image, bench.model.decode(bench.latent("grinning face")[None])[0], atol=1e-6)
    double = bench.compose_text("grinning face + cat - human", alpha=2)
    cat = torch.stack([bench.latent(n) for n in CONCEPTS["cat"]]).mean(0) - torch.stack(
        [bench.latent(n) for n in CONCEPTS["human"]]
    ).mean(0)
    assert torch.allclose(
        bench.model.decode((bench.latent("grinning face") + 2 * cat)[None])[0], double.image, atol=1e-5
    )


def test_a_users_image_is_prepared_as_the_pipeline_prepares_its_data(bench, tmp_path):
    path = tmp_path / "Mine.TIFF"
    path.write_bytes(encoded("CMYK", index=3, size=50))
    term = bench.term(str(path))
    expected = to_square(decode_image(path.read_bytes()), SIZE, False)
    assert term.kind == "image" and torch.equal(
        term.pixels, torch.from_numpy(__import__("numpy").asarray(expected).copy()).permute(2, 0, 1).float() / 255
    )
    result = bench.compose_text(f"{path} - crying face + weary face")
    assert result.base.label == "weary face" and result.terms[0][1].label == str(path)


@pytest.mark.parametrize("term, message", [
    ("crying kat face",
     "'crying kat face' is neither an emoji of this model nor a concept (closest: 'crying cat face'"),
    ("missing/file.png", "missing/file.png does not exist"),
])
def test_unknown_terms_fail_in_one_line_with_the_closest_names(bench, term, message):
    with pytest.raises(PipelineError) as caught:
        bench.compose_text(f"{term} - crying face + weary face")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_an_unreadable_image_and_a_broken_package_fail_in_one_line(bench, package, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(PipelineError, match=r"bad.png cannot be used \(unreadable image\)"):
        bench.term(str(bad))
    foreign = tmp_path / "foreign"
    write_package(foreign)
    torch.save({"weights": torch.zeros(3)}, foreign / "model.pt")
    with pytest.raises(PipelineError, match="model.pt is unreadable .*not a model of this code"):
        Workbench(foreign)
    (foreign / "emoji.parquet").unlink()  # a train stage's folder, models/ae, is no package
    with pytest.raises(PipelineError, match="has no emoji.parquet: give --model a model package"):
        Workbench(foreign)


def test_reconstruction_one_pass_and_refined(bench):
    term = bench.term("nerd face")
    one_pass, mse_one_pass = bench.reconstruct(term, 0)
    assert torch.allclose(one_pass, bench.model.decode(term.z[None])[0], atol=1e-6)
    refined, mse_refined = bench.reconstruct(term)  # the package's refine.steps
    assert mse_refined < mse_one_pass


def test_interpolation_runs_from_one_emoji_to_the_other(bench):
    frames = bench.interpolate(bench.term("grinning face"), bench.term("dog face"), 4)
    ends = bench.model.decode(torch.stack([bench.latent("grinning face"), bench.latent("dog face")]))
    assert (
        len(frames) == 4
        and torch.allclose(frames[0], ends[0], atol=1e-5)
        and torch.allclose(frames[-1], ends[1], atol=1e-5)
    )


def test_concepts_of_the_workspace_params_are_usable_at_once(package, tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("compose:\n  concepts:\n    sad: [crying face, weary face]\n")
    bench = Workbench(package, workspace_params=params)
    assert bench.term("sad").kind == "concept" and bench.term("cat").kind == "concept"


@pytest.fixture
def cli(monkeypatch, capsys):
    """The command's main() in-process, in a directory, through the console script's wrapper
    (the installed script itself runs in tests/test_app_e2e.py): exit code, stdout, stderr."""
    def run(*args, cwd):
        monkeypatch.chdir(cwd)
        capsys.readouterr()
        try:
            run_stage(lambda: cli_main(list(args)))
            code = 0
        except SystemExit as e:
            code = e.code
        out = capsys.readouterr()
        return SimpleNamespace(returncode=code, stdout=out.out, stderr=out.err)
    return run


def test_the_command_composes_reconstructs_and_interpolates_into_pngs(cli, package, tmp_path):
    composed = cli(
        "compose", RECIPE, "--model", str(package), "--alpha", "1.5", "-o", str(tmp_path / "c.png"), cwd=tmp_path
    )
    assert composed.returncode == 0, composed.stderr
    assert (
        "base: pouting face; alpha 1.5" in composed.stdout
        and "nearest real emoji (inputs excluded): " in composed.stdout
    )
    recon = cli(
        "reconstruct",
        "nerd face",
        "--model",
        str(package),
        "--refine",
        "0",
        "-o",
        str(tmp_path / "r.png"),
        cwd=tmp_path,
    )
    assert recon.returncode == 0 and "reconstruction MSE 0." in recon.stdout and "(one encoder pass" in recon.stdout
    path = cli(
        "interpolate",
        "grinning face",
        "dog face",
        "--steps",
        "5",
        "--model",
        str(package),
        "-o",
        str(tmp_path / "i.png"),
        cwd=tmp_path,
    )
    assert path.returncode == 0 and "5 points from grinning face to dog face" in path.stdout
    for name in ("c", "r", "i"):
        assert Image.open(tmp_path / f"{name}.png").size[0] > 200
    names = cli("names", "cat", "--model", str(package), cwd=tmp_path)
    assert (
        "crying cat face" in names.stdout.splitlines()
        and "cat (concept: crying cat face, weary cat face)" in names.stdout
    )


@pytest.mark.parametrize("args, message", [
    (["compose", "crying kat face + weary face"],
     "error: 'crying kat face' is neither an emoji of this model nor a concept (closest: "),
    (["compose", "nerd face -"], "error: recipe 'nerd face -' is malformed"),
    (["compose", "nerd face", "-o", "out.jpg"], "error: -o out.jpg: the output is a PNG image, name it *.png"),
    (["interpolate", "nerd face", "dog face", "--steps", "1"], "error: --steps must be from 2 to 20 (got 1)"),
])
def test_the_command_fails_in_one_line_and_writes_nothing(cli, package, tmp_path, args, message):
    result = cli(*args, "--model", str(package), cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.startswith(message) and result.stderr.count("\n") == 1, (
        result.stderr
    )
    assert list(tmp_path.iterdir()) == []


def test_without_a_package_the_command_says_where_models_come_from(cli, tmp_path):
    result = cli("compose", RECIPE, cwd=tmp_path)
    assert result.returncode == 1 and result.stderr.startswith(
        "error: models/release/ae is not a folder: give --model a model package"
    )


def test_every_hostile_argument_ends_in_one_error_line_and_writes_nothing(cli, package, tmp_path):
    folder = tmp_path / "hostile"
    folder.mkdir()
    hostile_cli.assert_refused(lambda *args: cli(*args, cwd=folder), package, "nerd face", folder)


def test_a_phrase_lists_the_names_that_hold_it_and_none_is_an_error(cli, package, tmp_path):
    listed = cli("names", "cat face", "--model", str(package), cwd=tmp_path)
    assert listed.returncode == 0 and "crying cat face" in listed.stdout.splitlines()
    assert "crying face" not in listed.stdout.splitlines()  # holds both words, not in that order
    toned = cli("names", "thumbs up", "--model", str(package), cwd=tmp_path)
    assert {"thumbs up sign", "thumbs up sign dark skin tone"} <= set(toned.stdout.splitlines())
    none = cli("names", "thumbs down", "--model", str(package), cwd=tmp_path)
    assert none.returncode == 1 and none.stdout == "" and none.stderr.startswith("error: no emoji, concept")


def test_a_reader_that_stops_early_ends_the_command_quietly(package, tmp_path):
    """`emoji-ae names | head -1`: the pipe is closed before the command writes, so every write fails."""
    reader, writer = os.pipe()
    process = subprocess.Popen(
        [sys.executable, "-c", "from emoji_ae.app.cli import entry; entry()", "names", "--model", str(package)],
        stdout=writer, stderr=subprocess.PIPE, cwd=tmp_path, text=True,
    )
    os.close(writer)
    os.close(reader)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 141 and stderr == "", stderr  # SIGPIPE's status, as `head` leaves grep


@pytest.fixture(scope="module")
def server(bench):
    """The page's real server (uvicorn, the routes and their checks) on a free port, in a thread."""
    sock = web.listen(0)
    served = web.server(bench, sock)
    thread = threading.Thread(target=served.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    for _ in range(500):
        if served.started:
            break
        threading.Event().wait(0.01)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    served.should_exit = True
    thread.join(timeout=10)
    sock.close()


def post(url, body) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def decoded(url: str) -> Image.Image:
    assert url.startswith("data:image/png;base64,")
    return Image.open(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))


def test_the_page_and_its_routes_answer_with_images_and_one_line_errors(server):
    with urllib.request.urlopen(server + "/", timeout=30) as page:
        assert b'id="compose-button"' in page.read()
    with urllib.request.urlopen(server + "/api/info", timeout=30) as response:
        info = json.loads(response.read())
    assert "crying cat face" in info["names"] and info["examples"][0]["terms"][1] == {
        "sign": -1.0,
        "name": "crying face",
    }
    upload = "data:image/png;base64," + base64.b64encode(emoji_png(5)).decode()
    status, value = post(
        server + "/api/compose",
        {
            "alpha": 1,
            "terms": [
                {"sign": 1, "name": "crying cat face"},
                {"sign": -1, "name": "crying face"},
                {"sign": 1, "image": upload, "label": "mine.png"},
            ],
        },
    )
    assert status == 200 and value["base"] == "mine.png" and len(value["nearest"]) == 3
    assert decoded(value["composite"]).size == (SIZE, SIZE) and decoded(value["pixel"]).size == (SIZE, SIZE)
    status, value = post(server + "/api/reconstruct", {"term": {"image": upload, "label": "mine.png"}, "steps": 0})
    assert status == 200 and value["mse"] > 0 and decoded(value["reconstruction"]).size == (SIZE, SIZE)
    status, value = post(
        server + "/api/interpolate", {"start": {"name": "grinning face"}, "end": {"image": upload}, "steps": 3}
    )
    assert status == 200 and len(value["frames"]) == 3
    status, value = post(server + "/api/compose", {"terms": [{"sign": 1, "name": "crying kat face"}]})
    assert status == 400 and "closest: 'crying cat face'" in value["error"]
    status, value = post(
        server + "/api/reconstruct", {"term": {"image": "data:image/png;base64,bm90IGFuIGltYWdl", "label": "x.png"}}
    )
    assert status == 400 and value["error"].startswith("x.png cannot be used (unreadable image)")


def test_only_its_own_page_drives_it_and_nothing_of_the_disk_comes_through(server, tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(emoji_png(9))  # an image on disk, which the page must not read on a request's say-so
    hostile.assert_foreign_hosts_and_origins_are_refused(server, ["crying cat face", "crying face", "pouting face"])
    hostile.assert_paths_are_refused(server, str(secret))


def test_every_field_and_body_is_bounded_and_a_slow_sender_holds_nothing(server):
    terms = ["crying cat face", "crying face", "pouting face"]
    hostile.assert_fields_are_bounded(server, terms)
    hostile.assert_oversized_bodies_are_refused(server)
    hostile.assert_slow_senders_hold_nothing(server, terms)
    upload = "data:image/png;base64," + base64.b64encode(huge_blank_png()).decode()
    status, value = hostile.request(
        server, "POST", "/api/reconstruct", {"term": {"image": upload, "label": "bomb.png"}}
    )
    assert status == 400 and value["error"].startswith(
        "bomb.png is 8000x8000 pixels: upload an image of at most 4096 pixels a side"
    )


def test_a_body_of_a_malformed_structure_gets_a_400_and_the_page_keeps_serving(server):
    hostile.assert_malformed_bodies_are_refused(server, ["crying cat face", "crying face", "pouting face"])


def huge_blank_png() -> bytes:
    """A few kilobytes of PNG that would decode to 64 million pixels."""
    buffer = io.BytesIO()
    Image.new("1", (8000, 8000)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_a_burst_of_50_is_answered_or_told_busy_and_never_reset(server):
    composed, _ = hostile.assert_burst_is_answered(server, ["crying cat face", "crying face", "pouting face"])
    assert composed >= 1


def test_a_full_queue_answers_busy_at_once(bench, monkeypatch):
    """With no room to wait, a request that finds the model taken gets the busy answer, not a wait."""
    import anyio

    monkeypatch.setattr(web, "MAX_WAITING", 0)
    model = web.Model()

    async def scenario():
        await model.lock.acquire()
        try:
            await model.run(lambda: "never")
        except web.Busy:
            return "busy"
        finally:
            model.lock.release()

    assert anyio.run(scenario) == "busy"


def test_an_attribute_moves_a_drawing_along_its_family_mean_in_the_attribute_code(bench):
    assert list(bench.attributes) == ["dark skin tone"]
    direction = bench.attributes["dark skin tone"]
    pairs = [
        ("thumbs up sign dark skin tone", "thumbs up sign"),
        ("waving hand sign dark skin tone", "waving hand sign"),
    ]
    mean = torch.stack([bench.latent(a) - bench.latent(b) for a, b in pairs]).mean(0)
    assert torch.allclose(direction, mean)  # a model without an attribute code moves its whole latent
    term = bench.term("grinning face")
    assert torch.allclose(
        bench.set_attribute(term, "dark skin tone", 0.0), bench.model.decode(term.z[None])[0], atol=1e-6
    )
    moved = bench.model.decode((term.z + 1.5 * direction)[None])[0]
    assert torch.allclose(bench.set_attribute(term, "dark skin tone", 1.5), moved, atol=1e-6)
    with pytest.raises(PipelineError, match="'tan' is not an attribute of this model; its attributes: dark skin tone"):
        bench.set_attribute(term, "tan")


def test_a_package_from_before_the_attribute_code_has_no_attributes_and_says_so(package, tmp_path):
    import shutil

    old = tmp_path / "old"
    shutil.copytree(package, old)
    settings = json.loads((old / "settings.json").read_text())
    del settings["variants"]
    (old / "settings.json").write_text(json.dumps(settings))
    bench = Workbench(old, workspace_params=None)
    with pytest.raises(PipelineError, match="its attributes: none"):
        bench.set_attribute(bench.term("grinning face"), "dark skin tone")


def test_the_command_and_the_page_set_an_attribute(cli, package, server, tmp_path):
    result = cli("attribute", "thumbs up sign", "dark skin tone", "--amount", "0.5", "--model", str(package), "-o",
                 str(tmp_path / "a.png"), cwd=tmp_path)
    assert result.returncode == 0 and "thumbs up sign: dark skin tone x 0.5" in result.stdout
    assert Image.open(tmp_path / "a.png").size[0] > 200
    assert "dark skin tone (attribute" in cli("names", "dark", "--model", str(package), cwd=tmp_path).stdout
    with urllib.request.urlopen(server + "/api/info", timeout=30) as response:
        assert json.loads(response.read())["attributes"] == ["dark skin tone"]
    status, value = post(
        server + "/api/attribute", {"term": {"name": "waving hand sign"}, "attribute": "dark skin tone"}
    )
    assert status == 200 and decoded(value["image"]).size == (SIZE, SIZE) and value["input"] != value["image"]
    hand = {"name": "waving hand sign"}
    for body, message in (({"term": hand, "attribute": "tan"}, "'tan' is not an attribute"),
                          ({"term": hand, "attribute": "dark skin tone", "amount": 9}, "amount must be")):
        status, value = post(server + "/api/attribute", body)
        assert status == 400 and value["error"].startswith(message), value
