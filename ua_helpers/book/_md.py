"""Markdown helpers shared by the page generators: tables, the headline count, short hashes."""
from __future__ import annotations

from typing import Any

from ..report._markdown import MISSING, fmt_ci, fmt_r, is_missing, plain_text


def fmt_test(r: Any, lo: Any, hi: Any) -> str:
    """An r and its CI, ``+0.123 [+0.050, +0.190]``, or :data:`~ua_helpers.report._markdown.MISSING`."""
    return f"{fmt_r(r)} {fmt_ci(lo, hi)}" if not is_missing(r) else MISSING


def _cell(value: Any) -> str:
    """A table cell: markup made by the page generators, escaped only for the table's ``|`` and newlines."""
    text = plain_text(value)
    return MISSING if text is None else text.replace("|", "\\|")


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table. Cells are page markup: pass user text through ``_markdown.md_text`` or ``md_code``."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def sha_short(sha: Any) -> str:
    return f"{sha[:12]}…" if isinstance(sha, str) and len(sha) > 12 else _cell(sha)


def headline(res: dict[str, Any], *, bold: bool = False) -> str:
    """The seed's headline count: "33 of 45 tests have a 95% CI that excludes zero"."""
    s = res["summary"]
    ci_level = (res.get("parameters") or {}).get("ci_level") or 0.95
    count = f"{s['significant_tests']} of {s['total_tests']}"
    return f"{f'**{count}**' if bold else count} tests have a {ci_level:.0%} CI that excludes zero"

