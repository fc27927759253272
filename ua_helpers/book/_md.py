"""Markdown helpers shared by the page generators: number formats, tables, and escaping."""
from __future__ import annotations

import math
from typing import Any

from ..report._markdown import fmt_r as _fmt_r
from ..report._markdown import plain_text


def is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def fmt_r(r: Any) -> str:
    """An r on a book page: three decimals (the notebooks' sentences use two)."""
    return _fmt_r(r, 3)


def fmt_ci(lo: Any, hi: Any) -> str:
    return "n/a" if is_missing(lo) or is_missing(hi) else f"[{float(lo):+.3f}, {float(hi):+.3f}]"


def fmt_test(r: Any, lo: Any, hi: Any) -> str:
    return f"{fmt_r(r)} {fmt_ci(lo, hi)}" if not is_missing(r) else "n/a"


def excludes_zero(lo: Any, hi: Any) -> bool:
    """The CI lies wholly above or below zero (an undefined CI does not)."""
    return not (is_missing(lo) or is_missing(hi)) and (float(lo) > 0 or float(hi) < 0)



def _cell(value: Any) -> str:
    """A table cell: markup made by the page generators, escaped only for the table's ``|`` and newlines."""
    text = plain_text(value)
    return "–" if text is None else text.replace("|", "\\|")


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

