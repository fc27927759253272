"""The installed package (a wheel, not the source tree) carries the bundled dataset and the console script."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out, src = tmp_path_factory.mktemp("wheel"), tmp_path_factory.mktemp("src")
    # Build from a copy of the sources, so that the build leaves nothing in the checkout.
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    shutil.copytree(REPO / "ua_helpers", src / "ua_helpers", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(src)],
                   check=True, capture_output=True, text=True, timeout=600)
    (path,) = out.glob("ua_helpers-*.whl")
    return path


def test_wheel_contains_the_bundled_dataset_and_its_card(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "ua_helpers/datasets/replication-230.json" in names
    assert "ua_helpers/datasets/replication-230.md" in names
    assert any(n.endswith("entry_points.txt") for n in names)


def test_replication_set_loads_offline_from_an_installed_copy(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target",
                    str(site), str(wheel)], check=True, capture_output=True, text=True, timeout=600)
    code = ("import ua_helpers, ua_helpers.data as d; p = d.load_pairs('replication-230'); "
            "print(ua_helpers.__file__); print(p.n_pairs, p.sha256)")
    env = {**os.environ, "PYTHONPATH": str(site)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                          check=True, timeout=300)
    location, counts = proc.stdout.strip().splitlines()
    assert Path(location).is_relative_to(site), location
    n_pairs, sha = counts.split()
    assert n_pairs == "230"
    assert sha == __import__("ua_helpers.data", fromlist=["x"]).load_pairs("replication-230").sha256
