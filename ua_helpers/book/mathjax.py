"""A Sphinx extension that serves MathJax from the book's own ``_static/mathjax/`` folder instead of a CDN.

``_config.yml`` loads it as ``ua_helpers.book.mathjax``. The MathJax files come from the
``sphinx-mathjax-offline`` package, so a built book fetches nothing from the network when it is read. This module
imports nothing of the book builder.
"""
from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

from . import BookError

#: The MathJax entry point the book loads, and the package whose files it comes from.
MATHJAX_ENTRY = "tex-chtml.js"
MATHJAX_PACKAGE = "sphinx-mathjax-offline"


def mathjax_source() -> Path:
    """The MathJax 3 distribution inside the ``sphinx-mathjax-offline`` package."""
    spec = importlib.util.find_spec(MATHJAX_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BookError(f"MathJax is served from the book itself and comes from the {MATHJAX_PACKAGE} package; "
                        f"install it: pip install {MATHJAX_PACKAGE}")
    return Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax"


def mathjax_files(src: Path) -> list[Path]:
    """The files the book needs: the entry point and every component it may load on demand.

    The other combined bundles at the top level (``tex-svg.js``, ``mml-chtml.js``, ...) are alternatives to the
    entry point and are left out.
    """
    return sorted(p.relative_to(src) for p in src.rglob("*")
                  if p.is_file() and (p.parent != src or p.name == MATHJAX_ENTRY))


def _set_mathjax_path(app, config) -> None:
    config.mathjax_path = f"mathjax/{MATHJAX_ENTRY}"


def _copy_mathjax(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    src = mathjax_source()
    dest = Path(app.outdir) / "_static" / "mathjax"
    for rel in mathjax_files(src):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, dest / rel)


def setup(app) -> dict[str, Any]:
    """Sphinx entry point: load MathJax from ``_static/mathjax/`` in the built book, not from a CDN."""
    mathjax_source()  # fail at start-up, not after the build, when the package is missing
    app.connect("config-inited", _set_mathjax_path)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
