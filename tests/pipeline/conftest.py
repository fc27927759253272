"""Fixtures for the end-to-end tests: complete run directories made by the ``ua-book`` command itself."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from ua_cli import ua_book


@pytest.fixture(scope="session")
def default_run(tmp_path_factory) -> Path:
    """A complete run of the default configuration (embedded model, bundled dataset)."""
    run_dir = tmp_path_factory.mktemp("runs") / "default"
    ua_book("run", "--run-dir", str(run_dir))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    return run_dir
