"""A non-editable install carries the configs: `pip install .` works outside the checkout."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    # build from a copy: setuptools writes build/ and *.egg-info into the source tree
    source = tmp_path_factory.mktemp("source")
    for name in ("kexp", "conf"):
        shutil.copytree(ROOT / name, source / name,
                        ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w",
                           str(out), str(source)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    (path,) = out.glob("kexp-*.whl")
    return path


def test_wheel_ships_every_config(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    shipped = {n.removeprefix("kexp/conf/") for n in names if n.startswith("kexp/conf/")}
    in_checkout = {str(p.relative_to(ROOT / "conf")) for p in (ROOT / "conf").rglob("*.yaml")}
    assert in_checkout and in_checkout <= shipped
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    scripts = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "kexp = kexp.__main__:main" in scripts and "kexp-eval = kexp.eval:main" in scripts


def test_wheel_ships_every_package(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = [str(p.relative_to(ROOT)) for p in (ROOT / "kexp").rglob("__init__.py")
                if "__pycache__" not in p.parts]
    assert [p for p in packages if p not in names] == []


def test_installed_wheel_composes_outside_the_checkout(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], check=True, capture_output=True, timeout=300)
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = "import kexp.conf; print(kexp.conf.__file__)"
    where = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                           capture_output=True, text=True, timeout=60)
    assert where.stdout.startswith(str(target)), where.stdout + where.stderr
    done = subprocess.run([sys.executable, "-m", "kexp", "--cfg", "job", "model=vgg"],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "kexp.models.vgg.vgg" in done.stdout
