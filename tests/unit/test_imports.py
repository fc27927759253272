"""Imports only downward: validating parameters, ``ua-book --help`` and reading a cached run never load torch."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "ua_helpers"


def _modules_after(code: str) -> set[str]:
    """Run ``code`` in a fresh interpreter; return the names in its ``sys.modules`` afterwards."""
    script = code + "\nimport sys\nprint('\\n'.join(sorted(sys.modules)))\n"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120)
    return set(done.stdout.split())


def _imported(path: Path) -> set[str]:
    """The package-relative modules ``path`` imports at module level (``from .x import`` / ``from . import x``)."""
    out = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            out |= {node.module} if node.module else {alias.name for alias in node.names}
    return out


def test_config_and_cli_help_do_not_import_torch():
    assert "torch" not in _modules_after("import ua_helpers.config")
    loaded = _modules_after("from ua_helpers.cli import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n    pass")
    assert "ua_helpers.cli" in loaded and "torch" not in loaded and "transformers" not in loaded


def test_config_imports_no_engine_module():
    """config validates against the leaf module's choices; it does not import what implements them."""
    assert _imported(PACKAGE / "config.py").isdisjoint({"extraction", "models", "batching"})
    assert _imported(PACKAGE / "options.py") == set()


def test_no_module_imports_the_package_root():
    """``from . import __version__`` inside the package closed a cycle results -> root -> findings -> results."""
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module is None \
                    and path.parent == PACKAGE:
                assert "__version__" not in {alias.name for alias in node.names}, path


def test_a_notebook_reading_the_cache_resolves_the_device_without_torch():
    from ua_helpers import models

    if models.gpu_driver_present():
        pytest.skip("a GPU driver is present: 'auto' must ask torch")
    loaded = _modules_after("from ua_helpers import models, pipeline\n"
                            "assert models.resolve_dtype('auto', 'auto') == 'float32'\n"
                            "assert models.resolve_device('auto') == 'cpu'")
    assert "torch" not in loaded and "transformers" not in loaded


def test_gpu_driver_files_decide_the_shortcut(monkeypatch):
    from ua_helpers import models

    monkeypatch.setattr(models.sys, "platform", "linux")
    monkeypatch.setattr(models.os.path, "exists", lambda path: False)
    assert models.gpu_driver_present() is False
    monkeypatch.setattr(models.os.path, "exists", lambda path: path == "/dev/nvidiactl")
    assert models.gpu_driver_present() is True
    monkeypatch.setattr(models.sys, "platform", "win32")  # no cheap test there: torch is asked
    assert models.gpu_driver_present() is True
