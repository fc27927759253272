"""The package's one Pearson kernel (:func:`ua_helpers.analysis.bootstrap.pearson`): weights, zero variance, one definition."""
from __future__ import annotations

import ast
import re
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from ua_helpers.analysis import bootstrap

PACKAGE = Path(__file__).resolve().parents[2] / "ua_helpers"
EPS = np.finfo(np.float64).eps


def test_weighted_rows_equal_numpy_on_repeated_and_kept_items():
    rng = np.random.default_rng(0)
    n = 40
    x, y = rng.normal(3.0, 2.0, size=(5, n)), rng.normal(-1.0, 0.5, size=n)
    counts = rng.integers(0, 3, size=(6, n))  # a resample's counts, or a 0/1 subset
    r = bootstrap.pearson(x, y, counts)
    assert r.shape == (5, 6)
    ref = [[np.corrcoef(np.repeat(row, c), np.repeat(y, c))[0, 1] for c in counts] for row in x]
    # standardised values are O(sqrt(n)) at most; n-term sums of their products round to ~ n * eps relative,
    # and the variance E[z^2] - E[z]^2 of a subset loses at most a factor (E[z^2] / var) ~ 10 here
    assert_allclose(r, ref, rtol=0, atol=10 * n * EPS)
    assert_allclose(bootstrap.pearson(x, y)[:, 0], [np.corrcoef(row, y)[0, 1] for row in x], rtol=0, atol=n * EPS)


def test_zero_variance_rule():
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(2, 20)), rng.normal(size=20)
    x[1] = 4.0  # constant over all items
    w = np.ones((3, 20))
    w[1, 2:] = 0  # two items kept: r is +-1, defined
    w[2] = 0
    w[2, 5] = 3  # one item, drawn three times: no spread
    r = bootstrap.pearson(x, y, w)
    assert np.all(np.isnan(r[1]))
    assert np.isfinite(r[0, 0]) and abs(r[0, 1]) == pytest.approx(1.0) and np.isnan(r[0, 2])
    # spread of the kept items at 1e-7 of the sample's sd is below ZERO_VARIANCE (variance ratio 1e-14): NaN
    x2 = np.concatenate([rng.normal(size=10), 5.0 + 1e-7 * rng.normal(size=10)])
    keep = np.r_[np.zeros(10), np.ones(10)][None]
    assert np.isnan(bootstrap.pearson(x2, y, keep)[0, 0])
    assert np.isfinite(bootstrap.pearson(x2 * 1e-3 + 5.0, y)[0, 0])  # a small scale alone is spread


def test_arguments_are_checked():
    with pytest.raises(ValueError, match="y must be"):
        bootstrap.pearson(np.ones((2, 5)), np.ones(4))
    with pytest.raises(ValueError, match="weights must be"):
        bootstrap.pearson(np.ones((2, 5)), np.arange(5.0), np.ones(5))


#: Functions that compute a correlation by their own arithmetic, and why each is not the Pearson kernel.
OTHER_CORRELATIONS = {
    ("bootstrap.py", "pearson"): "the kernel",
    ("bootstrap.py", "rho_of"): "Spearman on resamples in exact integer rank sums",
    ("bootstrap.py", "jackknife_pearson"): "leave-one-out r by closed-form downdating, O(n) per test",
    ("confounds.py", "partial_r_rows"): "partial r of residuals",
    ("confounds.py", "partial_of"): "partial r on resamples (Schur complement)",
    ("controls.py", "shuffled_pairing_null"): "r under re-pairing, from permuted sums of products",
    ("multiplicity.py", "_permutation_core"): "max-statistic permutation null: z-scores against permuted z-scores",
    ("agreement.py", "sign_agreement_null"): "the signs of r under permutations, from z-scores",
}
# a division by the root of a product (of sums of squares), a product with z-scores, or NumPy's own
PEARSON_ARITHMETIC = re.compile(r"/\s*np\.sqrt\([^\n]*[^*]\*[^*]|zscore_rows\([^)]*\)\s*@|@\s*yz\b|np\.corrcoef\(")


def _innermost_functions(tree):
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            inner = [n for n in ast.walk(node) if n is not node and isinstance(n, (ast.FunctionDef,
                                                                                   ast.AsyncFunctionDef))]
            yield node, inner


def test_one_definition_of_the_pearson_kernel():
    """No function outside the listed ones divides by a root of variances or multiplies z-scores itself."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        for fn, inner in _innermost_functions(ast.parse(text)):
            lines = text.splitlines()[fn.lineno - 1:fn.end_lineno]
            skip = {i for f in inner for i in range(f.lineno - fn.lineno, f.end_lineno - fn.lineno + 1)}
            body = "\n".join(line for i, line in enumerate(lines) if i not in skip)
            if PEARSON_ARITHMETIC.search(body):
                found.add((path.name, fn.name))
    unexpected = found - set(OTHER_CORRELATIONS)
    assert not unexpected, f"correlation arithmetic outside bootstrap.pearson: {sorted(unexpected)}"
    assert ("bootstrap.py", "pearson") in found  # the scan sees the kernel itself
    defs = [(p.name, m) for p in PACKAGE.rglob("*.py")
            for m in re.findall(r"^\s*def (\w*(?:pearson|corr)\w*)\(", p.read_text(encoding="utf-8"), re.M)]
    assert [d for d in defs if d[1] in ("pearson", "pearson_rows", "_pearson", "_weighted_corr",
                                        "_bin_correlations")] == [("bootstrap.py", "pearson"),
                                                                  ("levels.py", "_bin_correlations"),
                                                                  ("robustness.py", "pearson_rows")]
