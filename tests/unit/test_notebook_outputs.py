"""The stored notebooks read as pages: no monospace output line wider than a page, no test marker in view, and
generated prose shown as Markdown (the install guard and the nbval-checked cells: ``test_notebook_sources.py``).

:func:`notebook_problems` is the check; run it on other copies (e.g. freshly executed ones) with
``python tests/unit/test_notebook_outputs.py RUN_DIR/notebooks/*.ipynb``.
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("0*.ipynb"))
#: The widest output line a page shows without clipping or a scroll bar (monospace, at 1280 px).
MAX_LINE = 120
#: Representations that the page renders itself (wrapping prose, tables, images): their text/plain is not shown.
RICH = ("text/html", "text/markdown", "text/latex", "image/png", "image/svg+xml", "image/jpeg")


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def shown_text(output: dict) -> str:
    """The text an output shows in monospace: a stream, a traceback, or text/plain with nothing richer."""
    if output["output_type"] == "stream":
        return _text(output["text"])
    if output["output_type"] == "error":
        return "\n".join(output.get("traceback", []))
    data = output.get("data", {})
    return "" if any(k in data for k in RICH) else _text(data.get("text/plain", ""))


def notebook_problems(path: str | Path, max_line: int = MAX_LINE) -> list[str]:
    """Return what keeps a notebook from reading as a page: wide monospace output lines and visible NBVAL markers.

    Each problem names the notebook, the cell and the line's width.
    """
    nb = json.loads(Path(path).read_text(encoding="utf-8"))
    out = []
    for i, cell in enumerate(nb["cells"]):
        if "NBVAL" in _text(cell["source"]):
            out.append(f"{Path(path).name} cell {i}: its source shows an NBVAL marker (use the cell tag instead)")
        for output in cell.get("outputs", []):
            for line in shown_text(output).splitlines():
                if len(line) > max_line:
                    out.append(f"{Path(path).name} cell {i}: an output line of {len(line)} characters "
                               f"(> {max_line}): {line[:60]}...")
    return out


def test_the_check_finds_a_wide_line_and_a_marker(tmp_path):
    cells = [{"cell_type": "code", "source": ["# NBVAL_CHECK_OUTPUT\n", "print(x)"], "metadata": {},
              "outputs": [{"output_type": "stream", "name": "stdout", "text": ["short\n", "y" * 121 + "\n"]}]},
             {"cell_type": "code", "source": "t", "metadata": {},
              "outputs": [{"output_type": "execute_result", "data": {"text/plain": "z" * 200,
                                                                      "text/html": "<table></table>"}}]}]
    path = tmp_path / "nb.ipynb"
    path.write_text(json.dumps({"cells": cells}))
    problems = notebook_problems(path)
    assert len(problems) == 2, problems
    assert "NBVAL marker" in problems[0] and "121 characters" in problems[1]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_stored_notebook_reads_as_a_page(path):
    assert notebook_problems(path) == []


def test_notebooks_show_prose_as_markdown_not_print():
    """Generated sentences (``findings.*``, ``*.read_*``, the caveat) go through show.prose, never print()."""
    printed = re.compile(r"print\([^\n]*(\.read_|findings\.|caveat)")
    for path in NOTEBOOKS:
        nb = json.loads(path.read_text(encoding="utf-8"))
        for i, cell in enumerate(nb["cells"]):
            assert not printed.search(_text(cell["source"])), f"{path.name} cell {i} prints generated prose"


if __name__ == "__main__":
    found = [p for arg in sys.argv[1:] for p in notebook_problems(arg)]
    print("\n".join(found) or f"{len(sys.argv) - 1} notebooks: no problem")
    sys.exit(1 if found else 0)
