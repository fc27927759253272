"""Markdown helpers shared by the page generators: number formats, tables, and escaping."""
from __future__ import annotations

import math
import re
from typing import Any


def _is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _fmt_r(r: Any) -> str:
    return "n/a" if _is_missing(r) else f"{float(r):+.3f}"


def _fmt_ci(lo: Any, hi: Any) -> str:
    return "n/a" if _is_missing(lo) or _is_missing(hi) else f"[{float(lo):+.3f}, {float(hi):+.3f}]"


def _fmt_test(r: Any, lo: Any, hi: Any) -> str:
    return f"{_fmt_r(r)} {_fmt_ci(lo, hi)}" if not _is_missing(r) else "n/a"


def _excludes_zero(lo: Any, hi: Any) -> bool:
    """The CI lies wholly above or below zero (an undefined CI does not)."""
    return not (_is_missing(lo) or _is_missing(hi)) and (float(lo) > 0 or float(hi) < 0)


def _plain(value: Any) -> str | None:
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
    text = _plain(value)
    if text is None:
        return "–"
    return "".join(f"\\{c}" if c in _ACTIVE or (i == 0 and c in _PUNCT) else c for i, c in enumerate(text))


def md_code(value: Any) -> str:
    """Show user-supplied text as an inline code span that no backtick in it can close early.

    The fence is one backtick longer than the longest run of backticks in the text (CommonMark), padded with a
    space where the text starts or ends with a backtick; a missing value is a dash.
    """
    text = _plain(value)
    if text is None:
        return "–"
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") or not text.strip() else ""
    return f"{fence}{pad}{text}{pad}{fence}"


_code = md_code
#: Characters that start markup anywhere in a line; any ASCII punctuation is escaped at the start of the text.
_ACTIVE = frozenset("\\`*_{}[]<>()#+!|~$&:")
_PUNCT = frozenset("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~")


def _cell(value: Any) -> str:
    """A table cell: markup made by the page generators, escaped only for the table's ``|`` and newlines."""
    text = _plain(value)
    return "–" if text is None else text.replace("|", "\\|")


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table. Cells are page markup: pass user text through :func:`md_text` or :func:`md_code`."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _sha_short(sha: Any) -> str:
    return f"{sha[:12]}…" if isinstance(sha, str) and len(sha) > 12 else _cell(sha)


def headline(res: dict[str, Any], *, bold: bool = False) -> str:
    """The seed's headline count: "33 of 45 tests have a 95% CI that excludes zero"."""
    s = res["summary"]
    ci_level = (res.get("parameters") or {}).get("ci_level") or 0.95
    count = f"{s['significant_tests']} of {s['total_tests']}"
    return f"{f'**{count}**' if bold else count} tests have a {ci_level:.0%} CI that excludes zero"

