"""The installed package (a wheel, not the source tree): the bundled dataset, the notebooks, and ``ua-book run``.

The wheel is built from a copy of what the repository tracks for packaging (so the build leaves nothing in the
checkout), and installed into a fresh virtual environment that borrows this environment's dependencies through a
``.pth`` file (no download) but not its editable ``ua_helpers``.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from ua_helpers.runs.rundir import NOTEBOOKS

REPO = Path(__file__).resolve().parents[2]
#: What a build needs: the package, its metadata, the build hook and the notebooks it copies.
BUILD_INPUTS = ("pyproject.toml", "README.md", "setup.py", "MANIFEST.in", "ua_helpers", "notebooks")

pytestmark = pytest.mark.slow


def _not_packaged(directory: str, names: list[str]) -> list[str]:
    """Caches, and the run folders a notebook executed in place leaves in ``notebooks/runs`` (not ``ua_helpers/runs``,
    the package's own folder)."""
    return [n for n in names if n in ("__pycache__", ".ipynb_checkpoints")
            or (n == "runs" and Path(directory).name == "notebooks")]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out, src = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("src")
    for name in BUILD_INPUTS:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, src / name, ignore=_not_packaged)
        else:
            shutil.copy(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
                   check=True, capture_output=True, text=True, timeout=600)
    (path,) = out.glob("ua_helpers-*.whl")
    return path


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> Path:
    """A fresh venv with the wheel installed; its dependencies come from this environment's site-packages."""
    root = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=300)
    python = root / "bin" / "python"
    purelib = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # A plain path line: the directory joins sys.path, but its .pth files (our editable install) are not run.
    Path(purelib, "_borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)],
                   check=True, capture_output=True, text=True, timeout=600)
    return root


def test_wheel_contains_the_dataset_the_notebooks_and_the_script(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "ua_helpers/inputs/datasets/replication-230.json" in names
    assert "ua_helpers/inputs/datasets/replication-230.md" in names
    assert {"ua_helpers/inputs/datasets/neutral-60.json", "ua_helpers/inputs/datasets/neutral-60.md"} <= names
    assert {f"ua_helpers/notebooks/{nb}.ipynb" for nb in NOTEBOOKS} <= names
    with zipfile.ZipFile(wheel) as z:  # the copies are the notebooks people edit, byte for byte
        assert z.read("ua_helpers/notebooks/01_setup.ipynb") == (REPO / "notebooks" / "01_setup.ipynb").read_bytes()
    assert any(n.endswith("entry_points.txt") for n in names)


def test_replication_set_loads_offline_from_an_installed_copy(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                    str(site), str(wheel)], check=True, capture_output=True, text=True, timeout=600)
    code = ("import ua_helpers, ua_helpers.inputs.data as d; p = d.load_pairs('replication-230'); "
            "print(ua_helpers.__file__); print(p.n_pairs, p.sha256)")
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          check=True, timeout=300)
    location, counts = proc.stdout.strip().splitlines()
    assert Path(location).is_relative_to(site), location
    n_pairs, sha = counts.split()
    assert n_pairs == "230"
    assert sha == __import__("ua_helpers.inputs.data", fromlist=["x"]).load_pairs("replication-230").sha256


def test_the_installed_package_finds_its_notebooks_and_kernel(venv, tmp_path):
    code = ("import ua_helpers, ua_helpers.runs.rundir as r; from jupyter_client.kernelspec import KernelSpecManager; "
            "print(ua_helpers.__file__); print(r.notebooks_source()); "
            "print(KernelSpecManager().get_kernel_spec('python3').argv[0])")
    proc = subprocess.run([str(venv / "bin" / "python"), "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, check=True, timeout=300)
    package, notebooks, kernel_python = proc.stdout.strip().splitlines()
    assert Path(package).is_relative_to(venv) and Path(notebooks).is_relative_to(venv), proc.stdout
    assert Path(kernel_python).parent == venv / "bin", kernel_python  # the kernels import the wheel too


def test_ua_book_run_works_from_any_directory_with_only_the_wheel(venv, tmp_path, tiny_model_dir,
                                                                  small_pairs_path):
    work = tmp_path / "elsewhere"
    work.mkdir()
    proc = subprocess.run([str(venv / "bin" / "ua-book"), "run", "--run-dir", "runs/tiny", "-p", "model",
                           str(tiny_model_dir), "-p", "dataset", str(small_pairs_path), "-p", "batch_size", "4"],
                          cwd=work, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = work / "runs" / "tiny"
    assert "run complete" in proc.stdout and subprocess.run(
        [str(venv / "bin" / "ua-book"), "is-complete", str(run)], timeout=300).returncode == 0
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["notebooks"] == [f"notebooks/{nb}.ipynb" for nb in NOTEBOOKS]
    assert sorted(p.name for p in work.iterdir()) == ["runs"]  # nothing written beside the run
