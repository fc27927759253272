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


#: The package's folders from the bottom up: a module may import its own folder and those before it, never one
#: after it. The leaves are single modules every folder may use; ``book`` renders run folders, so it sits above
#: ``runs``; ``cli`` parses arguments on top.
FLOORS = ("leaves", "inputs", "analysis", "report", "runs", "book", "cli")
LEAVES = {"_io", "_checks", "options", "_version"}


def _floor(module: str) -> str:
    """The floor of a dotted module name inside the package (``ua_helpers.analysis.metrics`` -> ``analysis``)."""
    parts = module.split(".")[1:]
    if not parts:
        return "root"
    return "leaves" if parts[0] in LEAVES else parts[0]


def _module_name(path: Path) -> str:
    parts = ("ua_helpers",) + path.relative_to(PACKAGE).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _from_source(node: ast.ImportFrom, package: str) -> str:
    """The absolute module a ``from ... import`` statement inside ``package`` reads from."""
    if not node.level:
        return node.module or ""
    base = package.split(".")[: len(package.split(".")) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _is_module(full: str) -> bool:
    """Whether the dotted name is a module or a folder of the package (not a name a module defines)."""
    return (PACKAGE.parent / (full.replace(".", "/") + ".py")).is_file() or \
        (PACKAGE.parent / full.replace(".", "/")).is_dir()


def _imports(path: Path) -> set[str]:
    """Every package module ``path`` imports, at module level or inside a function, as dotted names."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            source = _from_source(node, package)
            if source.split(".")[0] != "ua_helpers":
                continue
            for alias in node.names:  # ``from .. import x``: x may be a module of that package
                full = f"{source}.{alias.name}"
                out.add(full if _is_module(full) else source)
        elif isinstance(node, ast.Import):
            out |= {alias.name for alias in node.names if alias.name.split(".")[0] == "ua_helpers"}
    return out


def _modules():
    return sorted(p for p in PACKAGE.rglob("*.py") if p != PACKAGE / "__init__.py")


def test_every_module_sits_on_a_known_floor():
    assert {_floor(_module_name(p)) for p in _modules()} == set(FLOORS)


def test_every_folder_is_a_regular_package_that_git_keeps():
    """Each folder has its ``__init__.py`` (a folder without one still imports, as a namespace package, but its
    docstring is lost), and no file of the package is hidden from git by an ignore pattern."""
    folders = {p.parent for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    assert sorted(str(f.relative_to(PACKAGE)) for f in folders if not (f / "__init__.py").is_file()) == []
    files = [str(p) for p in PACKAGE.rglob("*") if p.is_file() and "__pycache__" not in p.parts]
    done = subprocess.run(["git", "check-ignore", "--no-index", "--stdin"], input="\n".join(files),
                          capture_output=True, text=True, cwd=PACKAGE.parent)
    if done.returncode == 128:
        pytest.skip(f"not a git checkout: {done.stderr.strip()}")
    assert done.stdout.split() == []


def test_folders_import_only_downward():
    """A module imports only its own floor and the floors below it, deferred imports included."""
    upward = []
    for path in _modules():
        own = FLOORS.index(_floor(_module_name(path)))
        for target in _imports(path):
            floor = _floor(target)
            if floor == "root" or FLOORS.index(floor) > own:
                upward.append(f"{_module_name(path)} -> {target}")
    assert upward == []


def test_the_direction_check_sees_an_upward_import(tmp_path, monkeypatch):
    """The checker itself: a module of ``inputs`` importing ``report`` is found, also inside a function."""
    fake = tmp_path / "ua_helpers"
    (fake / "inputs").mkdir(parents=True)
    (fake / "report").mkdir()
    (fake / "report" / "results.py").write_text("")
    (fake / "inputs" / "data.py").write_text("def f():\n    from ..report import results\n")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert _imports(fake / "inputs" / "data.py") == {"ua_helpers.report.results"}


def test_leaves_import_only_leaves():
    for path in _modules():
        if _floor(_module_name(path)) == "leaves":
            assert {_floor(t) for t in _imports(path)} <= {"leaves"}, path


def test_config_imports_no_engine_module_at_import_time():
    """config validates against the leaf module's choices; what implements them is imported only when used."""
    tree = ast.parse((PACKAGE / "runs" / "config.py").read_text(encoding="utf-8"))
    top = {node.module for node in tree.body if isinstance(node, ast.ImportFrom) and node.module}
    assert not any(m.startswith(("..inputs", "inputs")) for m in top)
    assert _imports(PACKAGE / "options.py") == set()


def test_the_package_root_imports_nothing_but_its_version():
    """``import ua_helpers`` loads the seed's public names on first use only (and no module imports the root)."""
    loaded = _modules_after("import ua_helpers")
    assert {m for m in loaded if m.startswith("ua_helpers")} == {"ua_helpers", "ua_helpers._version"}
    for path in _modules():
        assert "ua_helpers" not in _imports(path), path


def test_a_notebook_reading_the_cache_resolves_the_device_without_torch():
    from ua_helpers.inputs import models

    if models.gpu_driver_present():
        pytest.skip("a GPU driver is present: 'auto' must ask torch")
    loaded = _modules_after("from ua_helpers.inputs import models\nfrom ua_helpers.runs import pipeline\n"
                            "assert models.resolve_dtype('auto', 'auto') == 'float32'\n"
                            "assert models.resolve_device('auto') == 'cpu'")
    assert "torch" not in loaded and "transformers" not in loaded


def test_gpu_driver_files_decide_the_shortcut(monkeypatch):
    from ua_helpers.inputs import models

    monkeypatch.setattr(models.sys, "platform", "linux")
    monkeypatch.setattr(models.os.path, "exists", lambda path: False)
    assert models.gpu_driver_present() is False
    monkeypatch.setattr(models.os.path, "exists", lambda path: path == "/dev/nvidiactl")
    assert models.gpu_driver_present() is True
    monkeypatch.setattr(models.sys, "platform", "win32")  # no cheap test there: torch is asked
    assert models.gpu_driver_present() is True


def _private_uses(source: str, name: str, is_package: bool = False) -> list[str]:
    """Private names of other package modules that ``source`` (module ``name``) uses: ``from m import _x`` and
    ``m._x`` where ``m`` was imported as a package module. Dunder names (``__version__``) are public."""
    package = name if is_package else name.rpartition(".")[0]
    modules, found = {}, []

    def private(attr: str) -> bool:
        return attr.startswith("_") and not (attr.startswith("__") and attr.endswith("__"))

    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            src = _from_source(node, package)
            if src.split(".")[0] != "ua_helpers":
                continue
            for alias in node.names:
                if _is_module(f"{src}.{alias.name}"):
                    modules[alias.asname or alias.name] = f"{src}.{alias.name}"
                elif private(alias.name) and src != name:
                    found.append(f"from {src} import {alias.name} (line {node.lineno})")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "ua_helpers" and alias.asname:
                    modules[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in modules
                and modules[node.value.id] != name and private(node.attr)):
            found.append(f"{modules[node.value.id]}.{node.attr} (line {node.lineno})")
    return found


def test_the_private_name_scan_sees_both_forms():
    source = ("from .confounds import covariate_design, _hidden\nfrom . import metrics\nfrom .._io import to_jsonable\n"
              "from .._version import __version__\nmetrics._helper(1)\nmetrics.zscore(2)\n")
    assert _private_uses(source, "ua_helpers.analysis.controls") == [
        "from ua_helpers.analysis.confounds import _hidden (line 1)", "ua_helpers.analysis.metrics._helper (line 5)"]


def test_no_module_uses_another_modules_private_names():
    """A name shared across modules is public in its home (an ``_``-module is package-internal, its names not)."""
    found = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        uses = _private_uses(path.read_text(encoding="utf-8"), _module_name(path), path.name == "__init__.py")
        if uses:
            found[str(path.relative_to(PACKAGE))] = uses
    assert not found, found


#: Dotted names that stand for any module in an example, not for one of the package's.
EXAMPLES = {"ua_helpers.x", "ua_helpers.x.y"}


def test_every_dotted_name_the_docs_and_the_schema_cite_exists():
    """A name such as ``ua_helpers.report.results.check_schema`` in a docstring, the README, the benchmarks' notes,
    a book page or the results schema names a module or an attribute that exists (a move leaves none behind)."""
    import importlib
    import re

    root = PACKAGE.parent
    files = [*PACKAGE.rglob("*.py"), *PACKAGE.rglob("*.json"), root / "README.md", *root.glob("benchmarks/*"),
             *root.glob("book/**/*.md")]
    stale = set()
    for path in files:
        if not path.is_file() or "__pycache__" in path.parts:
            continue
        for name in set(re.findall(r"ua_helpers(?:\.[A-Za-z_]\w*)+", path.read_text(encoding="utf-8"))) - EXAMPLES:
            parts = name.split(".")
            for i in range(len(parts), 0, -1):  # the longest importable prefix, then attributes
                try:
                    obj = importlib.import_module(".".join(parts[:i]))
                    break
                except ImportError:
                    continue
            for attr in parts[i:]:
                if not hasattr(obj, attr):
                    stale.add(f"{path.relative_to(root)}: {name}")
                    break
                obj = getattr(obj, attr)
    assert sorted(stale) == []
