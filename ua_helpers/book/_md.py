"""Markdown helpers shared by the page generators: number formats, tables, and escaping."""
from __future__ import annotations

import math
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


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    elif isinstance(value, dict):
        value = ", ".join(f"{k}: {v}" for k, v in value.items())
    return str(value).replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    text = _cell(value)
    return text if text == "–" else f"`{text}`"


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table (cells are escaped for ``|`` and newlines)."""
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

