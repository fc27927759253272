"""The HTML book of a run: page generators, staging and the Jupyter Book build, and a small Sphinx extension.

- :mod:`.context`: a completed run, the reference results, and the context every page generator receives.
- :mod:`.pages` (with :mod:`.compare`, :mod:`.page_findings`, :mod:`.page_levels`, :mod:`.page_controls`): the
  generated pages.
- :mod:`.build`: staging the sources, running ``jupyter-book build``, publishing.
- :mod:`.mathjax`: the Sphinx extension that ``_config.yml`` loads (MathJax served from the book itself); it
  imports nothing of the builder.

``from ua_helpers.book import build_book, BookError`` keeps working: the names below are imported on first use,
so that loading the Sphinx extension does not load the builder.
"""
from __future__ import annotations

import importlib
from typing import Any


class BookError(RuntimeError):
    """A book that cannot be built: an incomplete run, a missing input, or a failed Jupyter Book build."""


#: Public names and the submodule that defines each.
_EXPORTS = {
    "build_book": "build", "stage": "build", "publish": "build", "publish_command": "build",
    "jupyter_book_command": "build", "BOOK_SOURCES": "build", "NOTEBOOKS": "build", "PROJECT_ROOT": "context",
    "load_run": "context", "Reference": "context", "load_reference": "context",
    "BookContext": "context",
    "GENERATED_PAGES": "pages", "GENERATED_INCLUDES": "pages", "run_page": "pages", "findings_page": "pages",
    "levels_page": "pages", "data_card_page": "pages", "crossrun_page": "pages", "controls_page": "pages",
    "neutral_card_page": "pages",
    "comparison_page": "compare", "replication_page": "compare",
    "MATHJAX_ENTRY": "mathjax", "mathjax_source": "mathjax", "mathjax_files": "mathjax",
}
__all__ = ["BookError", *_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
