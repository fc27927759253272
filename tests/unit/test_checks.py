"""The shared checks and the one t-test of a correlation."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from ua_helpers._checks import t_pvalue

PACKAGE = Path(__file__).resolve().parents[2] / "ua_helpers"


@pytest.mark.parametrize("n", [5, 30, 230])
def test_t_pvalue_takes_degrees_of_freedom(n):
    """df = n - 2 reproduces scipy's Pearson p-value (the same t distribution: agreement to a few ulp of p)."""
    rng = np.random.default_rng(n)
    x, y = rng.normal(size=n), rng.normal(size=n)
    r, p = sps.pearsonr(x, y)
    assert t_pvalue(r, n - 2) == pytest.approx(p, rel=1e-9)
    assert t_pvalue(r, n - 2) != pytest.approx(t_pvalue(r, n), rel=1e-9)  # the item count would be wrong


def test_t_pvalue_edges_and_broadcasting():
    p = t_pvalue(np.array([0.0, 1.0, -1.0, np.nan]), 10)
    assert p[0] == 1.0 and p[1] == 0.0 and p[2] == 0.0 and np.isnan(p[3])
    assert np.isnan(t_pvalue(0.5, 0)) and np.isnan(t_pvalue(0.5, np.nan))
    assert t_pvalue(np.array([0.3, 0.3]), np.array([10, 100])).shape == (2,)


def test_one_definition_of_the_t_test():
    defs = [path.name for path in PACKAGE.rglob("*.py")
            if re.search(r"^def t_pvalue\b", path.read_text(encoding="utf-8"), re.M)]
    assert defs == ["_checks.py"]


def test_excludes_zero_is_false_for_an_undefined_or_straddling_interval():
    from ua_helpers._checks import excludes_zero

    lo = np.array([0.1, -0.3, -0.1, np.nan, 0.0])
    hi = np.array([0.2, -0.1, 0.1, 0.5, 0.2])
    assert excludes_zero(lo, hi).tolist() == [True, True, False, False, False]  # a bound at 0 does not exclude it
    assert bool(excludes_zero(None, 0.3)) is False and bool(excludes_zero(-0.2, -0.1)) is True
