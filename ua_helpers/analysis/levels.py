"""The study's two group levels: category-level Uniformity Asymmetry and Option A random bins.

The **uniformity** of a group of statements is the mean cosine similarity over all unordered pairs of distinct
members (each embedding divided by its norm + 1e-10, as the study's ``uniformity_score``). A group's **UA** is
uniformity(its A statements) - uniformity(its B statements), and its preference is the mean of NLL(B) - NLL(A)
over its pairs. The category level correlates UA with mean preference across the dataset's categories (n = 6 for
ua-230); Option A replaces the categories by k random bins of pairs. All layers and all random binnings are
computed at once: for unit rows u_i, sum_{i<j} u_i.u_j = (|sum_i u_i|^2 - sum_i |u_i|^2) / 2, and the group
sums come from one Gram matrix per layer and a sparse membership matrix.

With 6 categories a percentile bootstrap CI of r is honest and wide: a resample of 6 categories often holds
only 2 to 4 distinct ones, so its r is often near +-1, and the interval spans most of [-1, 1].
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy import stats as sps

from .._checks import check_ci_level, check_positive_int, check_seed, t_pvalue
from .._io import to_jsonable
from .bootstrap import (
    bootstrap_indices,
    bootstrap_pearson,
    pearson,
    percentile_interval,
)

EPS = 1e-10  # the study's norm guard
#: Bin counts of the study's Option A distribution.
K_VALUES = (10, 15, 20, 25, 30)
MIN_GROUP_PAIRS = 2  # uniformity needs two statements per side
MIN_GROUPS = 3  # no correlation over fewer groups (as the study)
CATEGORY_METHOD = "Category-level UA: uniformity(A) - uniformity(B) per category vs mean preference"
BINS_METHOD = "Option A: Random Bins (same metric)"
CATEGORY_CAVEAT = ("n = number of categories (6 for ua-230): the bootstrap resamples categories, so the CI is "
                   "wide and r of a single layer is fragile.")
DISTRIBUTION_CI = "fisher_z"  # the cheap interval behind share_ci_excludes_zero
#: How the one seeded binning is drawn (recorded in ``option_a_bins``): the study's own call.
SEEDED_BINNING = "np.random.seed(seed); np.random.randint(0, k_bins, n_pairs)"


def uniformity(emb) -> float:
    """Compute the uniformity of one group: mean cosine similarity over unordered pairs of distinct rows.

    Parameters
    ----------
    emb : array-like of shape (n_members, d_model)

    Returns
    -------
    float
        NaN for fewer than 2 members.
    """
    x = np.asarray(emb, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"emb must be 2-D (n_members, d_model); got shape {x.shape}")
    if len(x) < MIN_GROUP_PAIRS:
        return np.nan
    return float(group_uniformity(x[None], np.zeros((1, len(x)), dtype=int), 1)[0][0, 0, 0])


def group_uniformity(emb, labels, n_groups: int) -> tuple[np.ndarray, np.ndarray]:
    """Compute the uniformity of every group of every labelling, at every layer.

    Parameters
    ----------
    emb : array-like of shape (n_layers, n_pairs, d_model)
        One side's pooled hidden states.
    labels : array-like of int, shape (n_labelings, n_pairs)
        Group of each pair in each labelling (categories: one labelling; random bins: one per binning).
    n_groups : int
        Labels lie in ``0 .. n_groups - 1``.

    Returns
    -------
    uniformity : ndarray of shape (n_layers, n_labelings, n_groups)
        NaN for groups with fewer than 2 members.
    counts : ndarray of int, shape (n_labelings, n_groups)
    """
    x = np.asarray(emb, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"emb must be (n_layers, n_pairs, d_model); got shape {x.shape}")
    return _uniformity_from_gram(unit_gram(x), labels, n_groups)


def unit_gram(emb) -> np.ndarray:
    """Compute the cosine Gram matrix of each layer with the study's norm guard (rows / (norm + 1e-10)).

    Parameters
    ----------
    emb : array-like of shape (n_layers, n_pairs, d_model)

    Returns
    -------
    ndarray of shape (n_layers, n_pairs, n_pairs), float64
    """
    x = np.asarray(emb, dtype=np.float64)
    u = x / (np.linalg.norm(x, axis=-1, keepdims=True) + EPS)  # [layer, pair, d_model]
    return u @ u.transpose(0, 2, 1)  # [layer, pair, pair]


def _uniformity_from_gram(gram: np.ndarray, labels, n_groups: int, chunk: int = 2**24):
    lab = np.asarray(labels)
    n_layers, n, _ = gram.shape
    if lab.ndim != 2 or lab.shape[1] != n or not np.issubdtype(lab.dtype, np.integer):
        raise ValueError(f"labels must be integers of shape (n_labelings, {n}); got {lab.dtype} {lab.shape}")
    if lab.size and (lab.min() < 0 or lab.max() >= n_groups):
        raise ValueError(f"labels must lie in 0..{n_groups - 1}")
    n_lab = lab.shape[0]
    rows = (lab + n_groups * np.arange(n_lab)[:, None]).ravel()  # [labeling * pair]: row of the pair's group
    counts = np.bincount(rows, minlength=n_lab * n_groups)
    within = np.empty((n_layers, n_lab, n))  # per pair j: sum of gram[i, j] over the i in j's group
    step = max(1, chunk // (n * n))
    for s in range(0, n_lab, step):
        same = lab[s:s + step, :, None] == lab[s:s + step, None, :]  # [labeling, pair, pair]
        within[:, s:s + step] = np.einsum("bij,lij->lbj", same, gram, optimize=True)
    diag = np.diagonal(gram, axis1=1, axis2=2)  # [layer, pair]: |u_i|^2
    out = np.full((n_layers, n_lab * n_groups), np.nan)
    ok = counts >= MIN_GROUP_PAIRS
    for layer in range(n_layers):
        total = np.bincount(rows, weights=within[layer].ravel(), minlength=out.shape[1])  # |sum of u|^2
        sq = np.bincount(rows, weights=np.tile(diag[layer], n_lab), minlength=out.shape[1])
        out[layer, ok] = (total[ok] - sq[ok]) / (counts[ok] * (counts[ok] - 1.0))
    return out.reshape(n_layers, n_lab, n_groups), counts.reshape(n_lab, n_groups)


def _group_preference(preference: np.ndarray, labels: np.ndarray, n_groups: int):
    """Mean preference and share preferring A (in percent) per group, shape (n_labelings, n_groups)."""
    n_lab, n = labels.shape
    rows = (labels + n_groups * np.arange(n_lab)[:, None]).ravel()
    counts = np.bincount(rows, minlength=n_lab * n_groups).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.bincount(rows, weights=np.tile(preference, n_lab), minlength=counts.size) / counts
        pct_a = 100.0 * np.bincount(rows, weights=np.tile(preference > 0, n_lab), minlength=counts.size) / counts
    return mean.reshape(n_lab, n_groups), pct_a.reshape(n_lab, n_groups)


def _check_inputs(emb_a, emb_b, preference, layers):
    a, b = np.asarray(emb_a, dtype=np.float64), np.asarray(emb_b, dtype=np.float64)
    p = np.asarray(preference, dtype=np.float64)
    if a.ndim != 3 or a.shape != b.shape:
        raise ValueError(f"emb_a and emb_b must be (n_layers, n_pairs, d_model) of one shape; got {a.shape} and "
                         f"{b.shape}")
    if p.shape != (a.shape[1],):
        raise ValueError(f"preference must have shape ({a.shape[1]},) (n_pairs); got {p.shape}")
    if len(layers) != a.shape[0]:
        raise ValueError(f"{len(layers)} layers given for embeddings of {a.shape[0]} layers")
    for name, v in (("emb_a", a), ("emb_b", b), ("preference", p)):
        if not np.all(np.isfinite(v)):
            raise ValueError(f"{name} has non-finite values")
    return a, b, p, [int(l) for l in layers]


def _check_resampling(n_bootstrap: int, ci_level: float, seed: int) -> None:
    check_positive_int("n_bootstrap", n_bootstrap)
    check_ci_level(ci_level)
    check_seed(seed)


def _correlate(x: np.ndarray, y: np.ndarray, n_bootstrap: int, ci_level: float, seed: int, what: str):
    """Pearson r of each row of x (n_layers, n_groups) with y, percentile bootstrap CI over groups, p-value."""
    n_layers, n = x.shape
    r, p, lo, hi = (np.full(n_layers, np.nan) for _ in range(4))
    if n < MIN_GROUPS:
        return r, lo, hi, p, [f"fewer than {MIN_GROUPS} {what} with a defined UA ({n})"] * n_layers
    notes = ["mean preference is constant across " + what if np.ptp(y) == 0 else
             "UA is constant across " + what if np.ptp(row) == 0 else "" for row in x]
    ok = np.array([not note for note in notes])
    if ok.any():
        boot = bootstrap_pearson(x[ok], y, bootstrap_indices(n, n_bootstrap, seed))  # [layer, resample]
        lo[ok], hi[ok] = percentile_interval(boot, ci_level)
        for i in np.flatnonzero(ok):
            r[i], p[i] = sps.pearsonr(x[i], y)
    return r, lo, hi, p, notes


def _test_entry(r, lo, hi, p, note) -> dict:
    return {"r": r, "ci_lower": lo, "ci_upper": hi, "p_value": p, "includes_zero": not (lo > 0 or hi < 0),
            "note": note}


def category_level(emb_a, emb_b, preference, categories: Sequence[str], layers: Sequence[int], *,
                   n_bootstrap: int = 10000, ci_level: float = 0.95, seed: int = 42) -> dict:
    """Compute category-level UA per layer and correlate it with mean preference across categories.

    Parameters
    ----------
    emb_a, emb_b : array-like of shape (n_layers, n_pairs, d_model)
    preference : array-like of shape (n_pairs,)
        NLL(B) - NLL(A).
    categories : sequence of str, length n_pairs
    layers : sequence of int, length n_layers
    n_bootstrap, ci_level, seed
        Percentile bootstrap over categories from ``numpy.random.default_rng(seed)``; resamples in which UA or
        preference has zero variance are skipped, as the study skips them.

    Returns
    -------
    dict
        JSON-ready (NaN as None): the ``category_level`` block of results.json (layout: ``results.schema.json``).
    """
    a, b, p, layers = _check_inputs(emb_a, emb_b, preference, layers)
    _check_resampling(n_bootstrap, ci_level, seed)
    if len(categories) != len(p):
        raise ValueError(f"categories has {len(categories)} entries for {len(p)} pairs")
    names = list(dict.fromkeys(categories))
    labels = np.array([names.index(c) for c in categories])[None]
    u_a, counts = group_uniformity(a, labels, len(names))
    u_b, _ = group_uniformity(b, labels, len(names))
    u_a, u_b, counts = u_a[:, 0], u_b[:, 0], counts[0]
    ua = u_a - u_b  # [layer, category]
    pref, pct_a = (v[0] for v in _group_preference(p, labels, len(names)))
    kept = counts >= MIN_GROUP_PAIRS
    dropped = [n for n, k in zip(names, kept) if not k]
    r, lo, hi, pv, notes = _correlate(ua[:, kept], pref[kept], n_bootstrap, ci_level, seed, "categories")
    if dropped:
        notes = [("; ".join(filter(None, [note, f"left out (fewer than 2 pairs): {', '.join(dropped)}"])))
                 for note in notes]
    out = {}
    for i, layer in enumerate(layers):
        out[str(layer)] = {
            **_test_entry(r[i], lo[i], hi[i], pv[i], notes[i]), "n_categories": int(kept.sum()),
            "categories": {name: {"n_pairs": int(counts[j]), "uniformity_a": u_a[i, j], "uniformity_b": u_b[i, j],
                                  "asymmetry": ua[i, j], "output_preference": pref[j], "pct_prefer_a": pct_a[j]}
                           for j, name in enumerate(names)},
            "_global_stats": global_stats(ua[i, kept], pref[kept], counts[kept], n_bootstrap=n_bootstrap,
                                          seed=seed),
        }
    return to_jsonable({"method": CATEGORY_METHOD, "n_categories": int(kept.sum()), "n_bootstrap": n_bootstrap,
                        "ci_level": ci_level, "seed": seed, "layer_results": out, "caveat": CATEGORY_CAVEAT})


def global_stats(asymmetry, output_preference, n_pairs, *, n_bootstrap: int = 10000, seed: int = 42) -> dict:
    """Compute the study's ``_global_stats`` of one layer from its per-category values.

    Parameters
    ----------
    asymmetry, output_preference : array-like of shape (n_categories,)
        Per-category UA and mean preference.
    n_pairs : array-like of int, shape (n_categories,)
    n_bootstrap, seed
        Resamples of the categories for ``bootstrap_95ci`` (``numpy.random.default_rng(seed)``).

    Returns
    -------
    dict
        total_pairs, mean_asymmetry, std_asymmetry (population sd, as the study), bootstrap_95ci (95% percentile
        interval of the mean UA over resampled categories, whatever ``ci_level`` the run uses), cohens_d
        (mean / (sd + 1e-10)), ua_output_correlation (Pearson r; NaN if undefined), mean_output_preference
        (unweighted mean over categories, as the study).
    """
    x = np.asarray(asymmetry, dtype=np.float64)
    y = np.asarray(output_preference, dtype=np.float64)
    if x.ndim != 1 or x.shape != y.shape or np.shape(n_pairs) != x.shape:
        raise ValueError(f"asymmetry, output_preference and n_pairs must be 1-D of one length; got {x.shape}, "
                         f"{y.shape} and {np.shape(n_pairs)}")
    if x.size == 0:
        mean = sd = np.nan
    else:
        mean, sd = float(np.mean(x)), float(np.std(x))
    ci = [np.nan, np.nan]
    if x.size >= 2:
        lo, hi = percentile_interval(x[bootstrap_indices(x.size, n_bootstrap, seed)].mean(axis=-1), 0.95)
        ci = [float(lo[0]), float(hi[0])]
    defined = x.size >= MIN_GROUPS and np.ptp(x) > 0 and np.ptp(y) > 0
    return {"total_pairs": int(np.sum(n_pairs)), "mean_asymmetry": mean, "std_asymmetry": sd, "bootstrap_95ci": ci,
            "cohens_d": mean / (sd + EPS), "ua_output_correlation": float(sps.pearsonr(x, y)[0]) if defined else np.nan,
            "mean_output_preference": float(np.mean(y)) if y.size else np.nan}


def random_binnings(n_pairs: int, k: int, n_binnings: int, seed: int) -> np.ndarray:
    """Draw random binnings: each pair falls into one of ``k`` bins uniformly at random (as the study's randint).

    Returns
    -------
    ndarray of int, shape (n_binnings, n_pairs)
        From ``numpy.random.default_rng([seed, k])``: each k has its own stream, so one k's distribution does not
        depend on which other k were asked for.
    """
    return np.random.default_rng([check_seed(seed), k]).integers(0, k, size=(n_binnings, n_pairs))


def study_binning(n_pairs: int, k: int, seed: int = 42) -> np.ndarray:
    """Draw the study's own seeded binning: ``np.random.seed(seed)`` then ``np.random.randint(0, k, n_pairs)``.

    The study's Option A drew its one binning with NumPy's legacy global generator; a ``RandomState(seed)``
    yields the same stream without touching the global state, so with the study's seed (42) and k (20) this is
    the binning behind its published ``bootstrap_results``.

    Returns
    -------
    ndarray of int, shape (n_pairs,)
        The bin of each pair, in ``0 .. k - 1``.
    """
    return np.random.RandomState(check_seed(seed)).randint(0, check_positive_int("k", k), check_positive_int(
        "n_pairs", n_pairs))


def _bin_correlations(ua: np.ndarray, pref: np.ndarray, valid: np.ndarray):
    """Pearson r (:func:`ua_helpers.analysis.bootstrap.pearson`), its p-value and bin count per (layer, binning) over the
    valid bins; NaN where undefined. ``ua`` (n_layers, n_binnings, k), ``pref`` and ``valid`` (n_binnings, k)."""
    n = valid.sum(axis=-1)  # [binning]
    r = np.full(ua.shape[:2], np.nan)
    for b in np.flatnonzero(n >= MIN_GROUPS):
        keep = valid[b]
        # Invalid bins get weight 0; filling them with the valid bins' mean keeps the standardisation (and so the
        # kernel's zero-variance rule) relative to the valid bins' own spread.
        x = np.where(keep, ua[:, b], ua[:, b, keep].mean(axis=-1, keepdims=True))
        y = np.where(keep, pref[b], pref[b, keep].mean())
        r[:, b] = pearson(x, y, keep[None].astype(np.float64))[:, 0]
    bad = np.isnan(r)
    p = t_pvalue(r, np.where(bad, np.nan, n - 2))
    return r, np.where(bad, np.nan, p), n.astype(np.float64)


def option_a_bins(emb_a, emb_b, preference, layers: Sequence[int], *, n_bins: int = 20, n_binnings: int = 200,
                  k_values: Sequence[int] = K_VALUES, n_bootstrap: int = 10000, ci_level: float = 0.95,
                  seed: int = 42) -> dict:
    """Compute Option A: UA on random bins of pairs, correlated with the bins' mean preference.

    Parameters
    ----------
    emb_a, emb_b : array-like of shape (n_layers, n_pairs, d_model)
    preference : array-like of shape (n_pairs,)
    layers : sequence of int, length n_layers
    n_bins : int, default=20
        Bins of the one seeded binning that gets a bootstrap CI over bins: the study's own draw,
        :func:`study_binning` (``np.random.seed(seed)``, ``np.random.randint(0, n_bins, n_pairs)``).
    n_binnings : int, default=200
        Random binnings per k for the distribution of r.
    k_values : sequence of int, default=(10, 15, 20, 25, 30)
    n_bootstrap, ci_level, seed

    Returns
    -------
    dict
        JSON-ready (NaN as None): the ``option_a_bins`` block of results.json (layout: ``results.schema.json``).
        Each random binning's interval is a Fisher z interval, not a bootstrap: cheap enough for every binning.
    """
    a, b, p, layers = _check_inputs(emb_a, emb_b, preference, layers)
    _check_resampling(n_bootstrap, ci_level, seed)
    check_positive_int("n_bins", n_bins)
    check_positive_int("n_binnings", n_binnings)
    ks = [check_positive_int("k", k) for k in k_values]

    gram_a, gram_b = unit_gram(a), unit_gram(b)

    def bin_ua(labels, k):
        u_a, counts = _uniformity_from_gram(gram_a, labels, k)
        u_b, _ = _uniformity_from_gram(gram_b, labels, k)
        pref, _ = _group_preference(p, labels, k)
        return u_a - u_b, pref, counts >= MIN_GROUP_PAIRS  # [layer, binning, bin], [binning, bin] x2

    stable = study_binning(len(p), n_bins, seed)[None]  # [1 binning, pair]: the study's draw
    ua, pref, valid = bin_ua(stable, n_bins)
    keep = valid[0]
    r, lo, hi, pv, notes = _correlate(ua[:, 0, keep], pref[0, keep], n_bootstrap, ci_level, seed, "bins")
    seeded = {str(l): {**_test_entry(r[i], lo[i], hi[i], pv[i], notes[i]), "n_bins": int(keep.sum())}
              for i, l in enumerate(layers)}
    z_crit = sps.norm.ppf(0.5 + ci_level / 2)
    by_k = {}
    for k in ks:
        ua, pref, valid = bin_ua(random_binnings(len(p), k, n_binnings, seed), k)
        rk, pk, nk = _bin_correlations(ua, pref, valid)  # [layer, binning] x2, [binning]
        with np.errstate(invalid="ignore", divide="ignore"):
            excludes = np.abs(np.arctanh(rk)) * np.sqrt(nk - 3) > z_crit  # Fisher z interval misses zero
        by_k[str(k)] = {}
        for i, layer in enumerate(layers):
            ok = np.isfinite(rk[i])
            by_k[str(k)][str(layer)] = {
                "r_mean": float(rk[i, ok].mean()) if ok.any() else np.nan,
                "r_std": float(rk[i, ok].std()) if ok.any() else np.nan,
                "p_mean": float(pk[i, ok].mean()) if ok.any() else np.nan,
                "n_valid": int(ok.sum()),
                "share_ci_excludes_zero": float(excludes[i, ok].mean()) if ok.any() else np.nan,
            }
    return to_jsonable({"method": BINS_METHOD, "k_bins": n_bins, "n_bootstrap": n_bootstrap, "ci_level": ci_level,
                        "seed": seed, "seeded_binning": SEEDED_BINNING, "n_binnings": n_binnings, "k_values": ks,
                        "distribution_ci": DISTRIBUTION_CI,
                        "bootstrap_results": seeded, "results_by_k": by_k})


def analyse_levels(emb_a, emb_b, preference, categories: Sequence[str], layers: Sequence[int], *,
                   n_bootstrap: int = 10000, ci_level: float = 0.95, seed: int = 42, n_bins: int = 20,
                   n_binnings: int = 200, k_values: Sequence[int] = K_VALUES) -> dict:
    """Compute the study's two group levels from one extraction, as the blocks of results.json.

    Parameters
    ----------
    emb_a, emb_b : array-like of shape (n_layers, n_pairs, d_model)
    preference : array-like of shape (n_pairs,)
        NLL(B) - NLL(A), oriented like the embeddings.
    categories : sequence of str, length n_pairs
    layers : sequence of int, length n_layers
    n_bootstrap, ci_level, seed, n_bins, n_binnings, k_values
        See :func:`category_level` and :func:`option_a_bins`.

    Returns
    -------
    dict
        ``{"category_level": ..., "option_a_bins": ...}``, JSON-ready.
    """
    return {
        "category_level": category_level(emb_a, emb_b, preference, categories, layers, n_bootstrap=n_bootstrap,
                                         ci_level=ci_level, seed=seed),
        "option_a_bins": option_a_bins(emb_a, emb_b, preference, layers, n_bins=n_bins, n_binnings=n_binnings,
                                       k_values=k_values, n_bootstrap=n_bootstrap, ci_level=ci_level, seed=seed),
    }
