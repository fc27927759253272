"""Confounds: partial correlations given covariates (with bootstrap CIs), the covariate sets, per-category tests."""
from __future__ import annotations

from typing import Any, Mapping, NamedTuple, Sequence

import numpy as np

from .._checks import (as_tests, as_vector, check_ci_level, check_positive_int, check_seed, check_table_inputs,
                       excludes_zero, layer_metric_columns, row_notes, t_pvalue, zscore_rows)
from .bootstrap import (CountChunk, Resamples, bootstrap_pearson, chunk_counts, chunk_rows, index_chunks, map_chunks,
                        pearson, percentile_interval)
from .multiplicity import benjamini_hochberg, holm

#: Names of the covariate sets of the confound analysis, in table order.
COVARIATE_SETS = ("tokens", "length", "category", "all")
COVARIATE_DESCRIPTIONS = {
    "tokens": "n_tokens_b - n_tokens_a",
    "length": "len(stmt_b) - len(stmt_a) (characters)",
    "category": "category fixed effects (one-hot, first-seen category dropped)",
    "all": "token-count difference + character-length difference + category fixed effects",
}
PARTIAL_CI_METHOD = ("pairs resampled; both variables residualized on covariates + intercept inside every resample "
                     "(least squares weighted by the resample counts, via normal equations)")


class PartialCorrelation(NamedTuple):
    """Partial Pearson r of x and y given covariates, its two-sided p-value and degrees of freedom."""

    r: float
    p_value: float
    df: int


def covariate_design(covariates, n: int) -> np.ndarray:
    """Intercept plus covariates, each non-constant covariate z-scored (constant ones centred to zero)."""
    z = np.asarray(covariates, dtype=np.float64)
    if z.ndim == 1:
        z = z[:, None]
    if z.ndim != 2 or z.shape[0] != n:
        raise ValueError(f"covariates must have shape (n, k) or (n,) with n = {n}; got {z.shape}")
    if not np.all(np.isfinite(z)):
        raise ValueError("covariates have non-finite values")
    zc = z - z.mean(axis=0)
    sd = np.sqrt((zc**2).mean(axis=0))
    zc = zc / np.where(sd > 0, sd, 1.0)
    return np.column_stack([np.ones(n), zc])


def _partial_df(design: np.ndarray) -> int:
    """Degrees of freedom of a partial correlation: n - 2 - k, k the covariates' rank beside the intercept."""
    return int(design.shape[0] - 2 - (np.linalg.matrix_rank(design) - 1))


def partial_dof(covariates, n: int) -> int:
    """Return the degrees of freedom of a partial correlation of n pairs given covariates (n, k).

    ``n - 2 - k``, with ``k`` the rank of the covariates beside the intercept.
    """
    return _partial_df(covariate_design(covariates, n))


def partial_r_rows(x: np.ndarray, y: np.ndarray, design: np.ndarray) -> tuple[np.ndarray, int]:
    """Partial r of each row of ``x`` (T, n) with ``y`` given ``design`` (n, q) incl. intercept; and the df."""
    n = x.shape[1]
    coef, _, rank, _ = np.linalg.lstsq(design, np.column_stack([x.T, y]), rcond=None)
    resid = np.column_stack([x.T, y]) - design @ coef  # [n, T + 1]
    ex, ey = resid[:, :-1], resid[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (ex * ey[:, None]).sum(axis=0) / np.sqrt((ex**2).sum(axis=0) * (ey**2).sum())
    return np.clip(r, -1.0, 1.0), int(n - 2 - (rank - 1))


def partial_correlation(x, y, covariates) -> PartialCorrelation:
    """Compute the partial Pearson correlation of x and y controlling for covariates.

    Both variables are residualized on the covariates plus an intercept by least squares; r is the Pearson r
    of the residuals, and the p-value is two-sided from Student's t with ``n - 2 - k`` degrees of freedom,
    ``k`` the rank of the covariates (beside the intercept).

    Parameters
    ----------
    x, y : array-like of shape (n,)
    covariates : array-like of shape (n, k) or (n,)

    Returns
    -------
    PartialCorrelation
        ``(r, p_value, df)``; r and p are NaN when a residual is identically zero.
    """
    x = as_vector(x, None, "x")
    n = x.shape[0]
    y = as_vector(y, n, "y")
    design = covariate_design(covariates, n)
    r, df = partial_r_rows(x[None], y, design)
    if df < 1:
        raise ValueError(f"no degrees of freedom left: n = {n} with {n - 2 - df} covariates")
    return PartialCorrelation(float(r[0]), float(t_pvalue(r, df)[0]), df)


def bootstrap_partial(x, y, covariates, indices, *, chunk_size: int | None = None) -> np.ndarray:
    """Compute the partial r of every row of ``x`` with ``y`` given covariates, on every bootstrap resample.

    One covariate set of :func:`bootstrap_partial_sets` (see there for the method).

    Parameters
    ----------
    x : ndarray of shape (n_tests, n) or (n,)
    y : ndarray of shape (n,)
    covariates : ndarray of shape (n, k) or (n,)
    indices : ndarray of int, shape (n_bootstrap, n), or Resamples
    chunk_size : int, optional
        Resamples per chunk; default as in :func:`bootstrap_partial_sets`.

    Returns
    -------
    ndarray of shape (n_tests, n_bootstrap)
        NaN where a resample leaves no residual variance in x or y.
    """
    return bootstrap_partial_sets(x, y, {"covariates": covariates}, indices, chunk_size=chunk_size)["covariates"]


def _shared_design(covariate_sets: Mapping[str, Any], n: int):
    """One basis for several covariate sets' designs, and each set's design as columns of it.

    The distinct covariate columns of all sets (each once, first-seen order) are split into indicators (0/1
    columns no two of which are 1 in one row, e.g. :func:`category_dummies`; all 0/1 columns or none) and the
    rest. The basis is one 0/1 column per group of rows (the rows of each indicator, and the rows of none:
    together they span the intercept), then the other columns z-scored as in :func:`covariate_design`. A set's
    design (intercept + its covariates) spans the same columns as ``basis @ t`` with ``t`` of 0s and 1s (the
    intercept is the sum of the groups; a z-scored indicator is an affine map of its group and the intercept),
    and the residuals of least squares depend only on the span.

    Returns
    -------
    (groups, cont, picks)
        ``groups``: list of row-index arrays, one per group (one group of all rows without indicators);
        ``cont`` (n, p): the other columns, z-scored; ``picks``: per set, ``t`` of shape (n_groups + p, q_set).
    """
    columns: list[np.ndarray] = []
    set_cols = {}
    for name, cov in covariate_sets.items():
        z = np.asarray(cov, dtype=np.float64)
        if z.ndim == 1:
            z = z[:, None]
        if z.ndim != 2 or z.shape[0] != n:
            raise ValueError(f"covariates {name!r} must have shape (n, k) or (n,) with n = {n}; got {z.shape}")
        cols = []
        for col in z.T:
            same = [j for j, seen in enumerate(columns) if np.array_equal(col, seen)]
            if not same:
                columns.append(col)
            cols.append(same[0] if same else len(columns) - 1)
        set_cols[name] = cols
    raw = np.column_stack(columns) if columns else np.empty((n, 0))
    covariate_design(raw, n)  # the checks (finite values)
    is01 = np.all((raw == 0) | (raw == 1), axis=0)
    if not (is01.any() and raw[:, is01].sum(axis=1).max() <= 1):
        is01[:] = False
    ind, other = np.flatnonzero(is01), np.flatnonzero(~is01)
    label = raw[:, ind] @ np.arange(1, len(ind) + 1) if len(ind) else np.zeros(n)  # 0: no indicator
    groups = [np.flatnonzero(label == g) for g in range(len(ind) + 1)]
    cont = covariate_design(raw[:, other], n)[:, 1:]
    place = {int(c): 1 + len(ind) + k for k, c in enumerate(other)} | {int(c): 1 + k for k, c in enumerate(ind)}
    picks = {}
    for name, cols in set_cols.items():
        t = np.zeros((len(groups) + len(other), 1 + len(cols)))
        t[:len(groups), 0] = 1.0  # the intercept: every group
        for j, c in enumerate(cols):
            t[place[c], 1 + j] = 1.0
        picks[name] = t
    return groups, cont, picks


def bootstrap_partial_sets(x, y, covariate_sets: Mapping[str, Any], indices, *,
                           chunk_size: int | None = None) -> dict[str, np.ndarray]:
    """Compute the partial r of every row of ``x`` with ``y`` on every bootstrap resample, for each covariate set.

    Residualization happens inside each resample: a resample with counts ``c`` is ordinary least squares on the
    drawn rows, i.e. least squares weighted by ``c`` on the original rows. With ``M`` the count-weighted
    second-moment matrix of ``[design, x, y]``, the residual (co)variances are the Schur complement
    ``M_vv - M_vz M_zz^+ M_zv`` (Frisch-Waugh), so all tests and resamples need one batched pseudo-inverse of
    the small ``M_zz`` per resample (it covers resamples that miss a category). The sets share one basis
    (:func:`_shared_design`: a 0/1 column per category, then the other covariates z-scored), so every set's
    moments are ``t' M t`` of that basis's: per chunk of resamples one matrix product per category, ``counts
    (chunk, n_g) @ products (n_g, P)`` over its rows (P = q(q+1)/2 + q n_tests + q + 2 n_tests + 1, q = 1 + the
    other covariates), serves all sets; the categories need no products of their own (a row is in one). This
    exact route is fast enough that there is no need for the cheaper approximation of residualizing once on the
    full sample and bootstrapping the residual correlation, which would ignore the uncertainty of the covariate
    fit.

    Parameters
    ----------
    x : ndarray of shape (n_tests, n) or (n,)
    y : ndarray of shape (n,)
    covariate_sets : mapping of str to ndarray of shape (n, k) or (n,)
    indices : ndarray of int, shape (n_bootstrap, n), or Resamples
    chunk_size : int, optional
        Resamples per chunk; default at most 2,000, fewer where the chunk's float64 arrays (counts: ``n``, or
        the largest category's pairs; moments ``n_groups P``; the basis' products ``2 q_basis n_tests`` per
        resample) would exceed ``bootstrap.CHUNK_ELEMENTS``.

    Returns
    -------
    dict of str to ndarray of shape (n_tests, n_bootstrap)
        One entry per covariate set, in the mapping's order; NaN where a resample leaves no residual variance in
        x or y.
    """
    x = as_tests(x)
    n = x.shape[1]
    y = as_vector(y, n, "y")
    groups, cont, picks = _shared_design(covariate_sets, n)
    n_groups, p = len(groups), cont.shape[1]
    z = np.column_stack([np.ones(n), cont])  # [n, q]: within a group, its 0/1 column is the intercept
    q, qb = 1 + p, n_groups + p  # q: per group; qb: the shared basis
    n_tests = x.shape[0]
    iu, ju = np.triu_indices(q)
    n_zz = len(iu)
    n_cols = n_zz + q * n_tests + q + 2 * n_tests + 1
    if chunk_size is None:  # float64 per resample: the counts (or a group's), moments, the basis' products
        widest = n if n_groups == 1 else max(len(rows) for rows in groups)
        chunk_size = min(2000, chunk_rows(widest + n_groups * n_cols + 2 * qb * n_tests))
    n_boot, chunks = index_chunks(indices, n, chunk_size)
    xz, yz = zscore_rows(x), zscore_rows(y[None])[0]
    # every product whose count-weighted mean a set needs, divided by n once here (not the counts in each chunk)
    products = np.empty((n, n_cols))  # [n, P]: zz (upper triangle), zx, zy, xy, xx, yy
    products[:, :n_zz] = z[:, iu] * z[:, ju]
    products[:, n_zz:n_zz + q * n_tests] = (z[:, :, None] * xz.T[:, None, :]).reshape(n, q * n_tests)
    at = n_zz + q * n_tests
    products[:, at:at + q] = z * yz[:, None]
    products[:, at + q:at + q + n_tests] = (xz * yz).T
    products[:, at + q + n_tests:at + q + 2 * n_tests] = (xz**2).T
    products[:, -1] = yz**2
    products /= n
    by_group = [products] if n_groups == 1 else [np.ascontiguousarray(products[rows]) for rows in groups]
    gi = np.arange(n_groups)
    ci = n_groups + np.arange(p)

    def partial_of(idx) -> list[np.ndarray]:
        """Partial r of every test on the chunk's resamples, (n_tests, chunk), for each covariate set."""
        if n_groups == 1:
            m = (chunk_counts(idx, n, np.float64) @ products)[:, None]  # [B, 1, P]
        else:  # each group's columns of the counts, gathered as they are stored (1 byte each if kept)
            c = idx.counts if isinstance(idx, CountChunk) else chunk_counts(idx, n, np.int32)  # [B, n]
            m = np.stack([np.take(c, rows, axis=1).astype(np.float64) @ prod
                          for rows, prod in zip(groups, by_group)], axis=1)  # [B, n_groups, P]
        b = m.shape[0]
        mg = np.empty((b, n_groups, q, q))
        mg[:, :, iu, ju] = m[:, :, :n_zz]
        mg[:, :, ju, iu] = m[:, :, :n_zz]
        gzx = m[:, :, n_zz:at].reshape(b, n_groups, q, n_tests)
        gzy = m[:, :, at:at + q]
        # the basis' moments: groups against groups (diagonal), against the others, and the others' summed
        mzz = np.zeros((b, qb, qb))
        mzz[:, gi, gi] = mg[:, :, 0, 0]
        mzz[:, gi[:, None], ci] = mg[:, :, 0, 1:]
        mzz[:, ci[:, None], gi] = mg[:, :, 1:, 0].transpose(0, 2, 1)
        mzz[:, ci[:, None], ci] = mg[:, :, 1:, 1:].sum(axis=1)
        mzx_all = np.concatenate([gzx[:, :, 0], gzx[:, :, 1:].sum(axis=1)], axis=1)  # [B, qb, T]
        mzy_all = np.concatenate([gzy[:, :, 0], gzy[:, :, 1:].sum(axis=1)], axis=1)  # [B, qb]
        rest = m[:, :, at + q:].sum(axis=1)
        mxy, mxx, myy = rest[:, :n_tests], rest[:, n_tests:2 * n_tests], rest[:, -1]
        out = []
        for t in picks.values():
            g = np.linalg.pinv(t.T @ mzz @ t, 1e-12, hermitian=True)  # [B, q_set, q_set]
            mzx = t.T @ mzx_all  # [B, q_set, T]
            mzy = mzy_all @ t  # [B, q_set]
            gzx = g @ mzx  # [B, q_set, T]
            gzy = np.einsum("bij,bj->bi", g, mzy)
            sxy = mxy - np.einsum("bqt,bq->bt", mzx, gzy)
            sxx = mxx - np.einsum("bqt,bqt->bt", mzx, gzx)
            syy = myy - np.einsum("bq,bq->b", mzy, gzy)
            bad = (sxx <= 1e-12) | (syy[:, None] <= 1e-12)
            r = sxy / np.sqrt(np.where(bad, 1.0, sxx * syy[:, None]))
            r[bad] = np.nan
            out.append(np.clip(r, -1.0, 1.0).T)
        return out

    out = {name: np.empty((n_tests, n_boot)) for name in picks}
    start = 0
    for idx, rs in map_chunks(partial_of, chunks):
        for r, boot in zip(rs, out.values()):
            boot[:, start:start + len(idx)] = r
        start += len(idx)
    return out


def category_dummies(categories) -> np.ndarray:
    """One-hot encode categories, dropping the first-seen category (the reference level).

    Parameters
    ----------
    categories : sequence of hashable, length n

    Returns
    -------
    ndarray of shape (n, n_categories - 1)
        Column j is 1 for pairs of the (j + 2)-th category in first-seen order.
    """
    cats = list(categories)
    if not cats:
        raise ValueError("categories is empty")
    levels = list(dict.fromkeys(cats))
    codes = np.array([levels.index(c) for c in cats])
    return (codes[:, None] == np.arange(1, len(levels))[None, :]).astype(np.float64)


def confound_covariates(n_tokens_a, n_tokens_b, len_a, len_b, categories) -> dict[str, np.ndarray]:
    """Build the covariate sets of the confound analysis.

    Parameters
    ----------
    n_tokens_a, n_tokens_b : array-like of shape (n_pairs,)
        Token counts of statements A and B.
    len_a, len_b : array-like of shape (n_pairs,)
        Character lengths of statements A and B.
    categories : sequence of str, length n_pairs

    Returns
    -------
    dict of str to ndarray of shape (n_pairs, k)
        ``tokens`` (k=1): n_tokens_b - n_tokens_a; ``length`` (k=1): len_b - len_a; ``category``
        (k=n_categories-1): one-hot, first-seen category dropped; ``all``: the three side by side.
    """
    ta = as_vector(n_tokens_a, None, "n_tokens_a")
    n = ta.shape[0]
    tb = as_vector(n_tokens_b, n, "n_tokens_b")
    la, lb = as_vector(len_a, n, "len_a"), as_vector(len_b, n, "len_b")
    if len(categories) != n:
        raise ValueError(f"categories has {len(categories)} entries; expected {n}")
    sets = {"tokens": (tb - ta)[:, None], "length": (lb - la)[:, None], "category": category_dummies(categories)}
    sets["all"] = np.column_stack([sets["tokens"], sets["length"], sets["category"]])
    return sets


def confound_table(metric_values, preference, layers: Sequence[int], metric_names: Sequence[str],
                   covariates: Mapping[str, np.ndarray], *, n_bootstrap: int = 10000, ci_level: float = 0.95,
                   seed: int = 42, indices: np.ndarray | None = None):
    """Tabulate raw and partial correlations for every (layer, metric) and every covariate set.

    Parameters
    ----------
    metric_values, preference, layers, metric_names : the standard arrays of :mod:`ua_helpers.analysis`
    covariates : mapping of str to ndarray of shape (n_pairs, k)
        E.g. from :func:`confound_covariates`.
    n_bootstrap : int, default=10000
    ci_level : float, default=0.95
    seed : int, default=42
        Seed of :func:`ua_helpers.analysis.bootstrap.bootstrap_indices`.
    indices : ndarray of shape (n_bootstrap, n_pairs) or Resamples, optional
        Resamples to use instead of drawing them from ``seed``.

    Returns
    -------
    pandas.DataFrame
        One row per (layer, metric): layer, metric, r, then for each covariate set ``s``:
        ``partial_{s}_r``, ``partial_{s}_ci_lower``, ``partial_{s}_ci_upper`` (percentile bootstrap),
        ``partial_{s}_p_value`` (t with n - 2 - k df), ``partial_{s}_p_holm`` and ``partial_{s}_p_bh`` (Holm
        and Benjamini-Hochberg adjustments of ``partial_{s}_p_value`` over the family of defined tests of that
        covariate set). Constant or non-finite metrics give NaN.
    """
    import pandas as pd

    flat, y = check_table_inputs(metric_values, preference, layers, metric_names)
    check_ci_level(ci_level)
    n = flat.shape[1]
    if indices is None:
        indices = Resamples(n, check_positive_int("n_bootstrap", n_bootstrap), check_seed(seed))
    ok = np.array([note == "" for note in row_notes(flat)])
    cols: dict[str, Any] = layer_metric_columns(layers, metric_names)
    r = np.full(len(flat), np.nan)
    if ok.any():
        r[ok] = pearson(flat[ok], y)[:, 0]
    cols["r"] = r
    # every covariate set's bootstrap from one pass over the resamples (one product per chunk for all sets)
    boots = bootstrap_partial_sets(flat[ok], y, covariates, indices) if ok.any() else {}
    for name, cov in covariates.items():
        pr, lo, hi, p = (np.full(len(flat), np.nan) for _ in range(4))
        design = covariate_design(cov, n)
        if ok.any():
            pr[ok], df = partial_r_rows(flat[ok], y, design)
            p[ok] = t_pvalue(pr[ok], df)
            lo[ok], hi[ok] = percentile_interval(boots.pop(name), ci_level)
        cols[f"partial_{name}_r"] = pr
        cols[f"partial_{name}_ci_lower"] = lo
        cols[f"partial_{name}_ci_upper"] = hi
        cols[f"partial_{name}_p_value"] = p
        cols[f"partial_{name}_p_holm"] = holm(p)
        cols[f"partial_{name}_p_bh"] = benjamini_hochberg(p)
    return pd.DataFrame(cols)


def per_category_table(metric_values, preference, layers: Sequence[int], metric_names: Sequence[str],
                       categories: Sequence[str], *, n_bootstrap: int = 10000, ci_level: float = 0.95,
                       seed: int = 42, min_pairs: int = 4):
    """Correlate every (layer, metric) with the preference within each category, with bootstrap CIs.

    Each category is analysed as if alone: its pairs are resampled with ``bootstrap_indices(n_category,
    n_bootstrap, seed)``, so a row equals ``stats.bootstrap_correlation`` on that category's pairs.

    Parameters
    ----------
    metric_values, preference, layers, metric_names : the standard arrays of :mod:`ua_helpers.analysis`
    categories : sequence of str, length n_pairs
    n_bootstrap : int, default=10000
    ci_level : float, default=0.95
    seed : int, default=42
    min_pairs : int, default=4
        Categories with fewer pairs get NaN rows with a note.

    Returns
    -------
    pandas.DataFrame
        One row per (layer, metric, category), categories in first-seen order: layer, metric, category, n, r,
        ci_lower, ci_upper, p_value, p_bh (Benjamini-Hochberg over every defined row of the table: the family is
        all per-category tests), excludes_zero, exploratory (always True: small subgroups chosen after the fact
        are for exploration, never for a finding), note.
    """
    import pandas as pd

    flat, y = check_table_inputs(metric_values, preference, layers, metric_names)
    check_ci_level(ci_level)
    n_bootstrap = check_positive_int("n_bootstrap", n_bootstrap)
    seed = check_seed(seed)
    cats = np.asarray(list(categories), dtype=object)
    if cats.shape != (flat.shape[1],):
        raise ValueError(f"categories has {cats.shape[0]} entries; expected {flat.shape[1]}")
    lm = layer_metric_columns(layers, metric_names)
    frames = []
    for cat in dict.fromkeys(cats.tolist()):
        mask = cats == cat
        xc, yc = flat[:, mask], y[mask]
        nc = int(mask.sum())
        r, lo, hi, p = (np.full(len(flat), np.nan) for _ in range(4))
        if nc < min_pairs:
            notes = [f"fewer than {min_pairs} pairs"] * len(flat)
        elif np.ptp(yc) == 0:
            notes = ["preference is constant in this category"] * len(flat)
        else:
            notes = row_notes(xc)
        ok = np.array([note == "" for note in notes])
        if ok.any():
            r[ok] = pearson(xc[ok], yc)[:, 0]
            p[ok] = t_pvalue(r[ok], nc - 2)
            boot = bootstrap_pearson(xc[ok], yc, Resamples(nc, n_bootstrap, seed))
            lo[ok], hi[ok] = percentile_interval(boot, ci_level)
        frames.append(pd.DataFrame({**lm, "category": cat, "n": nc, "r": r, "ci_lower": lo, "ci_upper": hi,
                                    "p_value": p, "excludes_zero": excludes_zero(lo, hi), "note": notes}))
    # frames are category-major; interleave to (layer, metric, category) order
    out = pd.concat(frames, keys=range(len(frames)), names=["_cat", "_test"]).reset_index()
    out = out.sort_values(["_test", "_cat"], kind="stable").drop(columns=["_cat", "_test"]).reset_index(drop=True)
    out.insert(out.columns.get_loc("p_value") + 1, "p_bh", benjamini_hochberg(out["p_value"].to_numpy()))
    out.insert(out.columns.get_loc("excludes_zero") + 1, "exploratory", True)
    return out

