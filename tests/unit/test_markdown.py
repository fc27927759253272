"""Markdown for user-supplied text and numbers (``ua_helpers.report._markdown``): one precision for r, one missing
value, escapes that no text can break out of (checked by rendering with markdown-it, an independent parser), and
tables whose cells stay cells."""
from __future__ import annotations

import re

import numpy as np
import pytest
from markdown_it import MarkdownIt

from ua_helpers.report._markdown import (MISSING, R_DECIMALS, Markup, fmt_ci, fmt_r, is_missing, md_code, md_table_escaped,
                                         md_text, plain_text)

#: Raw HTML on: the worst case a page could be rendered with.
MD = MarkdownIt("commonmark", {"html": True}).enable("table")
HOSTILE = ["<img src=x onerror=alert(1)>", "*em* _u_ `code` [link](javascript:alert(2)) {ref}`y` $x$ ~~s~~ &amp;",
           "# heading", "- item", "> quote", "\\`x`", "|a|b|",
           "1. item", "12) item"]  # an ordered-list marker: its punctuation is escaped after the digits


def test_one_precision_for_r_and_one_missing_value():
    assert R_DECIMALS == 3  # the seed prints r={r:+.3f} and CI=[{lo:+.3f}, {hi:+.3f}]
    assert (fmt_r(-0.6774), fmt_r(0.0), fmt_r(np.float32(0.12345))) == ("-0.677", "+0.000", "+0.123")
    assert fmt_ci(-0.7654, -0.5566) == "[-0.765, -0.557]"
    for missing in (None, float("nan"), float("inf")):
        assert fmt_r(missing) == fmt_ci(missing, 0.1) == fmt_ci(0.1, missing) == MISSING == "n/a"
    assert md_text(None) == md_code(None) == MISSING


def test_is_missing_is_none_or_a_non_finite_number():
    assert [is_missing(x) for x in (None, float("nan"), float("inf"), -np.inf, np.float32("nan"))] == [True] * 5
    assert [is_missing(x) for x in (0, 0.0, -1e308, np.float64(0.5), "abc", "nan")] == [False] * 5 + [True]


def test_plain_text_is_one_line():
    assert plain_text(None) is None
    assert plain_text(["a", 2]) == "a, 2" and plain_text({"k": 1, "j": "x"}) == "k: 1, j: x"
    assert plain_text("two\nlines\r") == "two lines "


@pytest.mark.parametrize("text", HOSTILE)
def test_md_text_renders_as_the_same_text_and_nothing_else(text):
    """Rendered, the escaped text is one paragraph holding exactly the text: no tag, link, emphasis or heading."""
    html = MD.render(md_text(text))
    assert re.fullmatch(r"<p>(.*)</p>\n", html, re.S), html
    inner = html[3:-5]
    unescaped = inner.replace("&lt;", "<").replace("&gt;", ">").replace("&quot;", '"').replace("&amp;", "&")
    assert unescaped == text


def test_md_text_escapes_by_hand():
    assert md_text("a*b") == "a\\*b" and md_text("-x") == "\\-x" and md_text("x-y") == "x-y"
    assert md_text("<b>") == "\\<b\\>" and md_text(["a", "b"]) == "a, b"


@pytest.mark.parametrize("text, expected", [
    ("plain", "`plain`"),
    ("a`b", "``a`b``"),          # a fence one longer than the longest run of backticks inside
    ("x``y`", "``` x``y` ```"),  # padded where the text ends with a backtick
    ("   ", "`     `"),          # blank text is padded, so the span is not empty
])
def test_md_code_fence_is_longer_than_any_backtick_run(text, expected):
    assert md_code(text) == expected
    html = MD.render(md_code(text))
    code = re.search(r"<code>(.*)</code>", html, re.S).group(1)
    assert code == (text if text.strip() else text + "  ")  # CommonMark strips one pad space on each side


def test_md_table_cells_stay_cells():
    table = md_table_escaped(["a", "b"], [[1, 0.12345], ["x|y", Markup("*m*")], [None, []], [float("nan"), [1, "p*q"]]])
    assert table == ("| a | b |\n|---|---|\n| 1 | 0.123 |\n| x\\\\|y | *m* |\n| n/a | none |\n"
                     "| n/a | 1, p\\*q |\n")
    cells = re.findall(r"<td>(.*?)</td>", MD.render(table))
    assert cells == ["1", "0.123", "x|y", "<em>m</em>", "n/a", "none", "n/a", "1, p*q"]  # Markup is kept as markup


def test_one_format_for_p_values():
    from ua_helpers.report._markdown import fmt_p, p_phrase

    assert [fmt_p(p) for p in (0.0123, 0.33, 0.0005, 0.001, None, float("nan"))] == [
        "0.012", "0.330", "< 0.001", "0.001", MISSING, MISSING]
    assert p_phrase("BH q", 0.0123) == "BH q = 0.012"
    assert p_phrase("max-statistic p", 1e-5) == "max-statistic p < 0.001"
    assert p_phrase("p", None) == f"p = {MISSING}"
