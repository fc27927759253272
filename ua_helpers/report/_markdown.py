"""Escape user-supplied text for MyST Markdown (shared by the book's pages and the cross-run chapter)."""
from __future__ import annotations

import math
import re
from typing import Any, Iterable, Sequence


#: Decimals of every r, ρ and CI bound that a page, table or sentence prints (the seed prints ``r={r:+.3f}``).
R_DECIMALS = 3
#: How every page, table and sentence shows a missing or undefined value.
MISSING = "n/a"


def is_missing(x: Any) -> bool:
    """Tell whether ``x`` is missing: ``None`` or a non-finite number."""
    if x is None:
        return True
    try:
        return not math.isfinite(float(x))
    except (TypeError, ValueError):
        return False


def fmt_r(x: Any) -> str:
    """Format a correlation (or a CI bound) with its sign and :data:`R_DECIMALS` decimals, or :data:`MISSING`."""
    return MISSING if is_missing(x) else f"{float(x):+.{R_DECIMALS}f}"


def fmt_p(p: Any) -> str:
    """Format a p-value with 3 decimals, ``< 0.001`` below 0.001, or :data:`MISSING`."""
    return MISSING if is_missing(p) else "< 0.001" if float(p) < 0.001 else f"{float(p):.3f}"


def p_phrase(label: str, p: Any) -> str:
    """``"label = 0.012"``, ``"label < 0.001"`` or ``"label = n/a"`` (:func:`fmt_p`)."""
    text = fmt_p(p)
    return f"{label} {text}" if text.startswith("<") else f"{label} = {text}"


def fmt_ci(lo: Any, hi: Any) -> str:
    """Format an interval as ``[-0.470, -0.240]`` (bounds as :func:`fmt_r`), or :data:`MISSING` if a bound is."""
    return MISSING if is_missing(lo) or is_missing(hi) else f"[{fmt_r(lo)}, {fmt_r(hi)}]"


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
    and so is a punctuation character at the start or after leading digits (a list marker, a heading underline), so no emphasis, link,
    code span, role, substitution, math or raw HTML (``<img onerror=...>``) can form from the text; a missing
    value is :data:`MISSING`.
    """
    text = plain_text(value)
    if text is None:
        return MISSING
    marker = re.match(r"\d{1,9}[.)](?=\s|$)", text)  # an ordered-list marker: its punctuation is escaped
    at = marker.end() - 1 if marker else -1
    return "".join(f"\\{c}" if c in _ACTIVE or (i in (0, at) and c in _PUNCT) else c for i, c in enumerate(text))


def md_code(value: Any) -> str:
    """Show user-supplied text as an inline code span that no backtick in it can close early.

    The fence is one backtick longer than the longest run of backticks in the text (CommonMark), padded with a
    space where the text starts or ends with a backtick; a missing value is :data:`MISSING`.
    """
    text = plain_text(value)
    if text is None:
        return MISSING
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
    """A table cell from a value: floats with :data:`R_DECIMALS` decimals, integers as they are, text escaped, an
    empty list "none"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    if isinstance(value, Markup):
        return str(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(_table_cell(v) for v in value) or "none"
    if isinstance(value, float):
        return f"{value:.{R_DECIMALS}f}"
    if isinstance(value, int):
        return str(value)
    return md_text(value).replace("|", "\\|")


def md_table_escaped(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A Markdown table whose text cells are escaped (:func:`md_text`) unless they are :class:`Markup`."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_table_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"
