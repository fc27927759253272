"""What a notebook displays besides figures: generated prose as Markdown, and long tables folded away.

Printed text is one unwrapped monospace line per sentence; a Markdown display object wraps with the page, in
Jupyter and in the book alike. Plain strings are escaped once here (:func:`ua_helpers.report._markdown.md_text`, since
they quote metric names with underscores and dataset statements); a :class:`ua_helpers.report._markdown.Markup` string
is already Markdown and passes unchanged, so nothing is escaped twice.
"""
from __future__ import annotations

import html
from typing import Any

from ._markdown import MISSING, R_DECIMALS, Markup, md_text


def prose_markdown(*texts: Any) -> str:
    """Return ``texts`` as Markdown: one paragraph per line of each text, plain text escaped, :class:`Markup` kept.

    Raises
    ------
    TypeError
        A text that is not a string (a DataFrame, ``None``): only sentences are prose.
    """
    paragraphs = []
    for text in texts:
        if not isinstance(text, str):
            raise TypeError(f"prose takes strings; got {type(text).__name__}")
        if isinstance(text, Markup):
            paragraphs.append(str(text).strip())
        else:
            paragraphs += [md_text(line.strip()) for line in text.splitlines() if line.strip()]
    return "\n\n".join(p for p in paragraphs if p)


def prose(*texts: Any):
    """Display generated sentences as Markdown paragraphs that wrap (``IPython.display.Markdown``)."""
    from IPython.display import Markdown

    return Markdown(prose_markdown(*texts))


def collapsed_html(table, summary: str) -> str:
    """Return ``table`` (a DataFrame) as HTML inside a closed ``<details>`` section titled ``summary``.

    The table scrolls inside its own box, so a wide table never widens the page.
    """
    body = table.to_html(border=0, na_rep=MISSING, float_format=lambda x: f"{x:.{R_DECIMALS}f}")
    return (f"<details><summary>{html.escape(summary)}</summary>\n"
            f'<div style="overflow-x: auto">\n{body}\n</div></details>')


def collapsed(table, summary: str):
    """Display ``table`` in a collapsed section (``IPython.display.HTML``); see :func:`collapsed_html`."""
    from IPython.display import HTML

    return HTML(collapsed_html(table, summary))


def table_or_note(table, note: str, min_filled: float = 0.5):
    """Return ``table`` where it has rows and at least ``min_filled`` of its cells hold a value, else ``note`` as
    prose: an empty or mostly empty table says less than one sentence."""
    filled = float(table.notna().to_numpy().mean()) if table.size else 0.0
    return table if len(table) and filled >= min_filled else prose(note)
