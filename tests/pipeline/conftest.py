"""Fixtures for the end-to-end tests: complete run directories made by the ``ua-book`` command itself."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

UA_BOOK = str(Path(sys.executable).parent / "ua-book")


def ua_book(*args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    """Run the ``ua-book`` command of this environment; return the completed process."""
    proc = subprocess.run([UA_BOOK, *args], capture_output=True, text=True, timeout=timeout, env=os.environ.copy())
    if check and proc.returncode != 0:
        raise AssertionError(f"ua-book {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc


@pytest.fixture(scope="session")
def default_run(tmp_path_factory) -> Path:
    """A complete run of the default configuration (embedded model, bundled dataset)."""
    run_dir = tmp_path_factory.mktemp("runs") / "default"
    ua_book("run", "--run-dir", str(run_dir))
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["status"] == "complete"
    return run_dir
