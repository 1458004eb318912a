"""The package as users get it: a wheel that installs into a fresh environment and trains there.

The source is copied to a temporary folder first, so the build leaves nothing (``build/``,
``*.egg-info``) in the checkout. The fresh venv sees this interpreter's site-packages through a
``.pth`` line (so PyTorch is not reinstalled) but not the ``.pth`` hooks in it, so an editable
install of attnlab stays invisible; the test checks that ``attnlab`` is imported from the wheel.
"""

from __future__ import annotations

import os
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "attnlab"


def _source_files() -> list[Path]:
    """What a build reads: the project files and every file under attnlab/, caches aside."""
    files = [REPO / name for name in ("pyproject.toml", "README.md", "LICENSE")]
    files += [p for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts
              and p.suffix not in (".pyc", ".pyo")]
    return files


def _packaged_data() -> set[str]:
    """The non-Python files under attnlab/ (ELIZA scripts, viewer assets, corpora, py.typed)."""
    return {p.relative_to(REPO).as_posix() for p in _source_files()
            if p.is_relative_to(PACKAGE) and p.suffix != ".py"}


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("src")
    for file in _source_files():
        target = src / file.relative_to(REPO)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file, target)
    out = tmp_path_factory.mktemp("dist")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                            "-w", str(out), str(src)], capture_output=True, text=True, cwd=src)
    assert build.returncode == 0, build.stdout + build.stderr
    (built,) = out.glob("attnlab-*.whl")
    return built


def test_wheel_holds_the_code_the_data_the_license_and_the_typing_marker(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    missing = {name for name in _packaged_data() if name not in names}
    assert not missing, f"files under attnlab/ left out of the wheel: {sorted(missing)}"
    assert {"attnlab/py.typed", "attnlab/eliza/scripts/doctor.txt", "attnlab/viz/assets/viewer.js",
            "attnlab/viz/assets/viewer.css", "attnlab/cli/__init__.py"} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT" in metadata and "Classifier: Typing :: Typed" in metadata
    assert "MIT License" in (REPO / "LICENSE").read_text(encoding="utf-8")


def test_wheel_installs_in_a_fresh_venv_and_trains_there(wheel, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", "--system-site-packages", str(venv)], check=True)
    python = venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             capture_output=True, text=True, check=True).stdout.strip()
    # this interpreter's packages (torch, numpy, ...), as plain paths: their .pth hooks (an editable attnlab) do not run
    outer = [p for p in {*site.getsitepackages(), sysconfig.get_paths()["purelib"]} if Path(p).is_dir()]
    Path(purelib, "_outer_packages.pth").write_text("\n".join(outer) + "\n", encoding="utf-8")
    install = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps",
                              "--no-index", "-q", str(wheel)], capture_output=True, text=True)
    assert install.returncode == 0, install.stdout + install.stderr
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env["OMP_NUM_THREADS"] = "1"
    work = tmp_path / "work"  # outside the checkout: nothing can be imported from the current folder
    work.mkdir()
    where = subprocess.run([str(python), "-c", "import attnlab, attnlab.cli; print(attnlab.__file__)"],
                           capture_output=True, text=True, env=env, cwd=work)
    assert where.returncode == 0, where.stderr
    assert Path(where.stdout.strip()).is_relative_to(venv), f"attnlab imported from {where.stdout.strip()}"
    attnlab = venv / ("Scripts/attnlab.exe" if os.name == "nt" else "bin/attnlab")
    train = subprocess.run([str(attnlab), "train", "gpt", "--steps", "5", "--preset", "gpt-nano", "--quiet"],
                           capture_output=True, text=True, env=env, cwd=work, timeout=600)
    assert train.returncode == 0, train.stderr[-2000:]
    (run,) = (work / "runs").iterdir()
    assert {"config.json", "model.safetensors", "tokenizer.json", "metrics.jsonl"} <= {p.name for p in run.iterdir()}
    chat = subprocess.run([str(attnlab), "chat", "eliza"], input="I remember my first bicycle\n",
                          capture_output=True, text=True, env=env, cwd=work)
    assert chat.returncode == 0 and "bicycle" in chat.stdout  # the packaged DOCTOR script is found
