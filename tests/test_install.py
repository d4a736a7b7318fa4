"""What `pip install` puts into a user's environment: the project's own package, `emoji_ae`, and
its command; never the pipeline's scripts under generic names (`stages`, `benchmark`)."""

import json
import subprocess
import sys
import zipfile

from tests.conftest import REPO, copy_repo

PROBE = """
import importlib.util, sys
sys.path = [p for p in sys.path if p not in ("", ".")]
modules = ("emoji_ae", "emoji_ae.app.cli", "stages", "benchmark")
found = {name: importlib.util.find_spec(name) is not None for name in modules}
print(found)
"""


def test_the_wheel_holds_only_the_emoji_ae_package_and_its_page(tmp_path):
    source = copy_repo(tmp_path / "clone")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(source),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = (tmp_path / "dist").glob("emoji_autoencoder-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {"emoji_ae", wheel.name.split("-py")[0] + ".dist-info"}
    assert "emoji_ae/app/page.html" in names and "emoji_ae/app/web.py" in names
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "emoji-ae = emoji_ae.app.cli:entry" in entry_points

    target = tmp_path / "site"  # the wheel installed on its own, as into a fresh environment
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
        check=True,
        capture_output=True,
    )
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    probe = subprocess.run(
        [sys.executable, "-I", "-c", f"import sys; sys.path.insert(0, {str(target)!r})\n{PROBE}"],
        cwd=outside,
        capture_output=True,
        text=True,
        check=True,
    )
    assert probe.stdout.strip() == "{'emoji_ae': True, 'emoji_ae.app.cli': True, 'stages': False, 'benchmark': False}"


def test_this_environments_install_exposes_emoji_ae_and_not_the_pipelines_scripts(tmp_path):
    """The README's `pip install --no-deps -e .`, seen from outside the clone."""
    probe = subprocess.run([sys.executable, "-c", PROBE], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "{'emoji_ae': True, 'emoji_ae.app.cli': True, 'stages': False, 'benchmark': False}"
    path = subprocess.run([sys.executable, "-c", "import json, sys; print(json.dumps(sys.path))"], cwd=tmp_path,
                          capture_output=True, text=True, check=True).stdout
    assert str(REPO) not in json.loads(path)  # the editable install maps emoji_ae alone, not the clone's root
