"""Fixtures for the end-to-end tests: complete run directories made by the ``ua-book`` command itself."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from ua_cli import ua_book

#: The shared copy of ua-230 beside the checkout (CI has it; the repository never holds it).
UA230_SHARED = Path(__file__).resolve().parents[3] / "shared" / "data" / "ua-230" / "dataset.json"


@pytest.fixture(scope="session")
def default_run(tmp_path_factory) -> Path:
    """A complete run of the default configuration (embedded model, bundled dataset)."""
    run_dir = tmp_path_factory.mktemp("runs") / "default"
    ua_book("run", "--run-dir", str(run_dir))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    return run_dir


@pytest.fixture(scope="session")
def ua230_run(tmp_path_factory) -> Path | None:
    """A complete default-configuration run on the paper's ua-230, or None where ua-230 cannot be had offline."""
    path = Path(os.environ.get("UA_230_PATH") or UA230_SHARED)
    if not path.is_file():
        return None
    run_dir = tmp_path_factory.mktemp("runs") / "ua-230"
    ua_book("run", "--run-dir", str(run_dir), "-p", "dataset", "ua-230", env={"UA_230_PATH": str(path)})
    return run_dir
