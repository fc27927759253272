"""Escape user-supplied text for MyST Markdown (shared by the book's pages and the cross-run chapter)."""
from __future__ import annotations

import math
import re
from typing import Any, Iterable, Sequence


def fmt_r(x: Any, decimals: int = 2) -> str:
    """Format a correlation (or any signed statistic) with its sign, or "n/a" for a missing or non-finite value."""
    if x is None:
        return "n/a"
    x = float(x)
    return f"{x:+.{decimals}f}" if math.isfinite(x) else "n/a"


def plain_text(value: Any) -> str | None:
    """A value as one line of text (lists and dicts joined), or ``None`` for a missing value."""
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    elif isinstance(value, dict):
        value = ", ".join(f"{k}: {v}" for k, v in value.items())
    return str(value).replace("\r", " ").replace("\n", " ")


def md_text(value: Any) -> str:
    """Escape text that came from a user (a dataset name, a path, a URL) for MyST Markdown.

    Every character that can open markup is backslash-escaped (CommonMark allows it for all ASCII punctuation),
    and so is a punctuation character at the start (a list marker, a heading underline), so no emphasis, link,
    code span, role, substitution, math or raw HTML (``<img onerror=...>``) can form from the text; a missing
    value is a dash.
    """
    text = plain_text(value)
    if text is None:
        return "–"
    return "".join(f"\\{c}" if c in _ACTIVE or (i == 0 and c in _PUNCT) else c for i, c in enumerate(text))


def md_code(value: Any) -> str:
    """Show user-supplied text as an inline code span that no backtick in it can close early.

    The fence is one backtick longer than the longest run of backticks in the text (CommonMark), padded with a
    space where the text starts or ends with a backtick; a missing value is a dash.
    """
    text = plain_text(value)
    if text is None:
        return "–"
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


#: Characters that start markup anywhere in a line; any ASCII punctuation is escaped at the start of the text.
_ACTIVE = frozenset("\\`*_{}[]<>|~$&")
_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


class Markup(str):
    """Text that is already Markdown: :func:`md_table_escaped` does not escape it again."""


def _table_cell(value: Any) -> str:
    """A table cell from a value: floats with two decimals, integers as they are, text escaped."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if isinstance(value, Markup):
        return str(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_table_cell(v) for v in value) or "–"
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, int):
        return str(value)
    return md_text(value).replace("|", "\\|")


def md_table_escaped(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table whose text cells are escaped (:func:`md_text`) unless they are :class:`Markup`."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_table_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
