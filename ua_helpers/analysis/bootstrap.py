"""Bootstrap machinery: resample indices, Pearson and Spearman on every resample, jackknife, percentile and BCa
intervals.

Resample indices come from one seeded ``numpy.random.Generator`` (:func:`bootstrap_indices`) and are shared by
every statistic of a run; a resample enters the computation as a count vector (how often each pair is drawn), so
each resample's statistic is a weighted statistic of the original data, computed for all tests at once with a
few matrix products. :mod:`ua_helpers.analysis.stats` (the seed's API) and the extended analysis both use this engine.
"""
from __future__ import annotations

import os
import sys
from collections import deque
from typing import Callable, Iterable, Iterator, TypeVar

import numpy as np
from scipy import special
from scipy import stats as sps

from .._checks import (
    as_tests,
    as_vector,
    check_ci_level,
    check_indices,
    check_positive_int,
    zscore_rows,
)

#: Elements (resamples x pairs) that one chunk of a resampling loop may hold: every loop over resamples or
#: permutations works on at most about this many numbers per array and chunk (2**22 float64 = 32 MiB), and on
#: :data:`CHUNK_THREADS` chunks at once, so peak memory does not grow with n_bootstrap x n_pairs.
CHUNK_ELEMENTS = 2**22


#: Threads a resampling loop spreads its chunks over (NumPy's array loops release the GIL); at most this many
#: chunks (plus the one being drawn) are held at once. Results do not depend on it: chunks are computed alone,
#: from resamples drawn in order, and stored in order.
CHUNK_THREADS = max(1, min(4, os.cpu_count() or 1))

_C = TypeVar("_C")
_T = TypeVar("_T")


def map_chunks(fn: Callable[[_C], _T], chunks: Iterable[_C], n_threads: int | None = None) -> Iterator[tuple[_C, _T]]:
    """Yield ``(chunk, fn(chunk))`` for each chunk in order, computing up to ``n_threads`` chunks at once.

    ``chunks`` is consumed in order in the calling thread (a seeded Generator's stream stays as it is); ``fn``
    must only read shared arrays. Default :data:`CHUNK_THREADS`; 1 runs everything in the calling thread.
    """
    n_threads = CHUNK_THREADS if n_threads is None else check_positive_int("n_threads", n_threads)
    if n_threads == 1:
        for chunk in chunks:
            yield chunk, fn(chunk)
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(n_threads) as pool:
        pending: deque = deque()
        for chunk in chunks:
            pending.append((chunk, pool.submit(fn, chunk)))
            if len(pending) >= n_threads:
                done, future = pending.popleft()
                yield done, future.result()
        while pending:
            done, future = pending.popleft()
            yield done, future.result()


def chunk_rows(n: int, per_row: int = 1, budget: int = CHUNK_ELEMENTS) -> int:
    """Return how many resamples of ``n`` items (``per_row`` numbers each per item) fit one chunk; at least 1."""
    return max(1, budget // max(1, n * per_row))


def bootstrap_indices(n: int, n_bootstrap: int = 10000, seed: int | None = 42) -> np.ndarray:
    """Draw resample indices, shape (n_bootstrap, n), from ``numpy.random.default_rng(seed)``.

    The whole matrix at once (``n_bootstrap x n`` int64); :class:`Resamples` draws the same rows chunk by chunk.
    """
    if n_bootstrap < 1:
        raise ValueError(f"n_bootstrap must be a positive integer; got {n_bootstrap}")
    return np.random.default_rng(seed).integers(0, n, size=(n_bootstrap, n))


class Resamples:
    """The resamples of :func:`bootstrap_indices`, drawn lazily in chunks so they never sit in memory at once.

    ``Resamples(n, n_bootstrap, seed).chunks(m)`` yields the rows of ``bootstrap_indices(n, n_bootstrap, seed)``
    in order, ``m`` at a time: the Generator's stream is the same whether it fills one ``(n_bootstrap, n)``
    array or consecutive ``(m, n)`` arrays (a test checks it). Every bootstrap function accepts a
    :class:`Resamples` wherever it accepts an index matrix.

    With ``keep_counts=True`` the resamples are drawn and counted once, on first use, and kept as a compact
    ``(n_bootstrap, n)`` count matrix (uint8, 1 byte a count; wider only if some item is drawn more than 255
    times): every bootstrap that then uses this object reads its chunks from it instead of drawing and counting
    again. The counts are the same integers either way, so the statistics are the same bit for bit; it is for
    callers that run several bootstraps on the same resamples (:func:`ua_helpers.analysis.inference.extended_analysis`
    runs six), at the price of ``n_bootstrap x n`` bytes.

    Parameters
    ----------
    n : int
        Items per resample (pairs).
    n_bootstrap : int, default=10000
    seed : int or None, default=42
    keep_counts : bool, default=False
    """

    def __init__(self, n: int, n_bootstrap: int = 10000, seed: int | None = 42, *, keep_counts: bool = False):
        self.n = check_positive_int("n", n)
        self.n_bootstrap = check_positive_int("n_bootstrap", n_bootstrap)
        self.seed = seed
        self.keep_counts = bool(keep_counts)
        self._counts: np.ndarray | None = None

    @property
    def shape(self) -> tuple[int, int]:
        """``(n_bootstrap, n)``, the shape of the index matrix these resamples stand for."""
        return (self.n_bootstrap, self.n)

    def chunks(self, chunk_size: int) -> Iterator[np.ndarray]:
        """Yield the index matrix's rows in order, ``chunk_size`` at a time, each of shape (<= chunk_size, n)."""
        chunk_size = check_positive_int("chunk_size", chunk_size)
        rng = np.random.default_rng(self.seed)
        for start in range(0, self.n_bootstrap, chunk_size):
            yield rng.integers(0, self.n, size=(min(chunk_size, self.n_bootstrap - start), self.n))

    def counts(self) -> np.ndarray:
        """Return the count matrix ``(n_bootstrap, n)`` of all resamples (unsigned integers), drawn and counted
        on the first call and kept (only with ``keep_counts=True``)."""
        if not self.keep_counts:
            raise ValueError("counts are kept only by Resamples(..., keep_counts=True)")
        if self._counts is None:
            kept = np.empty(self.shape, dtype=np.uint8)
            start = 0
            for idx, c in map_chunks(lambda idx: resample_counts(idx, self.n), self.chunks(chunk_rows(self.n))):
                if c.max() > np.iinfo(kept.dtype).max:  # an item drawn more than 255 times: widen, exactly
                    kept = kept.astype(np.min_scalar_type(self.n))
                kept[start:start + len(idx)] = c
                start += len(idx)
            self._counts = kept
        return self._counts

    def __repr__(self) -> str:
        return (f"Resamples(n={self.n}, n_bootstrap={self.n_bootstrap}, seed={self.seed!r}"
                + (", keep_counts=True)" if self.keep_counts else ")"))


class CountChunk:
    """A chunk of resamples given by their counts ``(chunk, n)`` (a slice of :meth:`Resamples.counts`) instead
    of their indices; ``len`` is the number of resamples. :func:`chunk_counts` reads either kind."""

    __slots__ = ("counts",)

    def __init__(self, counts: np.ndarray):
        self.counts = counts

    def __len__(self) -> int:
        return self.counts.shape[0]


def chunk_counts(chunk, n: int, dtype=np.int64) -> np.ndarray:
    """Counts ``(chunk, n)`` of a chunk from :func:`index_chunks` (an index matrix or a :class:`CountChunk`), as
    ``dtype`` (the same integers in any dtype that holds them: one conversion, straight to what the caller
    computes with)."""
    if isinstance(chunk, CountChunk):
        return chunk.counts.astype(dtype)
    counts = resample_counts(chunk, n)
    return counts if counts.dtype == dtype else counts.astype(dtype)


def index_chunks(indices, n: int, chunk_size: int) -> tuple[int, Iterator[np.ndarray]]:
    """Return the number of resamples and an iterator over chunks of at most ``chunk_size`` resamples.

    Parameters
    ----------
    indices : ndarray of int, shape (n_resamples, n), or Resamples
    n : int
    chunk_size : int

    Returns
    -------
    (n_resamples, iterator of ndarray of int, shape (<= chunk_size, n))
        Index chunks, or :class:`CountChunk` where ``indices`` keeps its counts; :func:`chunk_counts` counts
        either.
    """
    chunk_size = check_positive_int("chunk_size", chunk_size)
    if isinstance(indices, Resamples):
        if indices.n != n:
            raise ValueError(f"resamples are of {indices.n} items; expected {n}")
        if indices.keep_counts:
            kept = indices.counts()
            return indices.n_bootstrap, (CountChunk(kept[s:s + chunk_size])
                                         for s in range(0, indices.n_bootstrap, chunk_size))
        return indices.n_bootstrap, indices.chunks(chunk_size)
    idx = check_indices(indices, n)
    return idx.shape[0], (idx[s:s + chunk_size] for s in range(0, idx.shape[0], chunk_size))


def resample_counts(idx: np.ndarray, n: int) -> np.ndarray:
    """Count how often each item is drawn in each resample.

    Parameters
    ----------
    idx : ndarray of int, shape (n_resamples, n)
    n : int

    Returns
    -------
    ndarray of int64, shape (n_resamples, n)
    """
    b = idx.shape[0]
    if n < 512:  # short rows: one bincount over offset indices (a call per row would cost more than its counting)
        flat = (idx + n * np.arange(b)[:, None]).ravel()
        return np.bincount(flat, minlength=b * n).reshape(b, n)
    out = np.empty(idx.shape, dtype=np.int64)
    for row, draws in zip(out, idx):  # row by row: no (n_resamples x n) offset copy, each count row in cache
        row[:] = np.bincount(draws, minlength=n)  # (measured: 2.1 against 4.5 ns a draw at 9,200 pairs)
    return out


#: The zero-variance rule of :func:`pearson`: a weighted variance at or below this, of values standardised over
#: all items (mean 0, population variance 1), is no spread (the kept items' sd is below 1e-6 of the sample's).
ZERO_VARIANCE = 1e-12
#: ... and a row whose population sd over all items is at most this many eps times its largest magnitude is
#: constant up to rounding (its standardised values would be rounding noise).
CONSTANT_EPS = 64


def pearson(x, y, weights=None) -> np.ndarray:
    """Compute the weighted Pearson r of every row of ``x`` with ``y`` under every row of ``weights``.

    The package's one Pearson kernel: a bootstrap resample is a row of counts, a subset of items a 0/1 row, the
    plain r one row of ones. ``x`` and ``y`` are standardised over all ``n`` items first (an affine map, which
    leaves r unchanged and keeps the weighted moments ``E_w[xy] - E_w[x] E_w[y]`` well conditioned), so every
    resample costs a few matrix products. NaN where there is no spread: a weighted variance of the standardised
    values at or below :data:`ZERO_VARIANCE`, a row constant over all items up to rounding
    (:data:`CONSTANT_EPS`), or a weight row summing to 0.

    Parameters
    ----------
    x : ndarray of shape (n_tests, n) or (n,)
    y : ndarray of shape (n,)
    weights : ndarray of shape (n_weightings, n), optional
        Non-negative; each row is normalised to sum 1. Default: one row of ones.

    Returns
    -------
    ndarray of shape (n_tests, n_weightings)
    """
    x = as_tests(x)
    n = x.shape[1]
    y = np.asarray(y, dtype=np.float64)
    if y.shape != (n,):
        raise ValueError(f"y must be 1-D of length {n}; got shape {y.shape}")
    w = np.ones((1, n)) if weights is None else np.asarray(weights, dtype=np.float64)
    if w.ndim != 2 or w.shape[1] != n:
        raise ValueError(f"weights must be (n_weightings, {n}); got shape {w.shape}")
    with np.errstate(invalid="ignore", divide="ignore"):
        w = w / w.sum(axis=1, keepdims=True)
        xz, yz = zscore_rows(x), zscore_rows(y[None])[0]
        mx, my = w @ xz.T, w @ yz  # [B, T], [B]
        vx = w @ (xz**2).T - mx**2
        vy = w @ yz**2 - my**2
        cxy = w @ (xz * yz).T - mx * my[:, None]
        bad = ~((vx > ZERO_VARIANCE) & (vy[:, None] > ZERO_VARIANCE))
        tiny = CONSTANT_EPS * np.finfo(np.float64).eps
        bad |= (x.std(axis=1) <= tiny * np.max(np.abs(x), axis=1))[None, :] | (y.std() <= tiny * np.max(np.abs(y)))
        r = cxy / np.sqrt(np.where(bad, 1.0, vx * vy[:, None]))
    r[bad] = np.nan
    return np.clip(r, -1.0, 1.0).T


def bootstrap_pearson(x, y, indices, *, chunk_size: int | None = None) -> np.ndarray:
    """Compute Pearson r of every row of ``x`` with ``y`` on every bootstrap resample of the pairs.

    The engine behind :func:`ua_helpers.analysis.stats.bootstrap_correlation`, computed in chunks of resamples so that memory
    stays bounded for any ``n_bootstrap``.

    Parameters
    ----------
    x : ndarray of shape (n_tests, n) or (n,)
        Rows must be finite and not constant.
    y : ndarray of shape (n,)
    indices : ndarray of int, shape (n_bootstrap, n), or Resamples
        From :func:`bootstrap_indices`, or :class:`Resamples` to draw them chunk by chunk.
    chunk_size : int, optional
        Resamples per chunk; default :func:`chunk_rows` of n (memory about ``CHUNK_ELEMENTS`` per array).

    Returns
    -------
    ndarray of shape (n_tests, n_bootstrap)
        NaN where a resample has zero variance in x or y.
    """
    x = as_tests(x)
    n = x.shape[1]
    y = as_vector(y, n, "y")
    n_boot, chunks = index_chunks(indices, n, chunk_rows(n) if chunk_size is None else chunk_size)
    out = np.empty((x.shape[0], n_boot))
    start = 0
    for idx, r in map_chunks(lambda idx: pearson(x, y, chunk_counts(idx, n, np.float64)), chunks):
        out[:, start:start + len(idx)] = r
        start += len(idx)
    return out


def _rank_bounds(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort order of each row and, per item, the sorted positions bounding its tie group, (..., n) each.

    ``lo`` is the 0-based position of the group's first member and ``hi`` one past its last, so in a
    zero-padded cumulative sum ``cum0`` of counts in sorted order, ``cum0[lo]`` counts the draws strictly below
    the item and ``cum0[hi]`` those below or tied with it.
    """
    order = np.argsort(x, axis=-1, kind="stable")
    lo = sps.rankdata(x, method="min", axis=-1).astype(np.int64) - 1
    hi = sps.rankdata(x, method="max", axis=-1).astype(np.int64)
    return order, lo, hi


def _doubled_resample_ranks(c: np.ndarray, order: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Twice the average rank, minus (n + 1), of every item within every resample, in integers.

    An item with ``c_lower`` draws strictly below it and ``c_group`` draws in its tie group (its own copies and
    those of tied items) has average rank ``c_lower + (c_group + 1) / 2`` in the resample -- exactly
    ``rankdata(resample, "average")``. ``c`` (B, n) are integer counts; ``order``, ``lo``, ``hi`` of shape (n,)
    give (B, n), of shape (T, n) give (B, T, n). Centring by the mean rank (n + 1) / 2 (the same for every
    resample) and doubling keeps everything an exact integer.
    """
    n = c.shape[-1]
    sorted_c = c[:, order]  # [B, n] or [B, T, n]
    cum = np.zeros(sorted_c.shape[:-1] + (n + 1,), dtype=c.dtype)
    np.cumsum(sorted_c, axis=-1, dtype=c.dtype, out=cum[..., 1:])
    if order.ndim == 1:
        return cum[:, lo] + cum[:, hi] - n
    return np.take_along_axis(cum, lo[None], axis=-1) + np.take_along_axis(cum, hi[None], axis=-1) - n


#: Items x resamples that the per-order buffers of :func:`_sorted_cumsum_dot` hold (int16 and int32: 768 KiB,
#: a core's L2 cache): gathers into larger buffers miss the cache (measured at 9,200 pairs: 12 resamples a chunk
#: ran twice as fast as 50).
_CACHE_ELEMENTS = 2**17

#: Four int16 lanes of a uint64 word: multiplying a word by it adds every lane into the lanes above it.
_LANES = np.uint64(0x0001_0001_0001_0001)


def _cumsum_int16_lanes(cs: np.ndarray) -> None:
    """Cumulative sum along axis 1, in place, of non-negative int16 ``cs`` (B, 4 m) whose row sums are < 2**15.

    Each row is read as m uint64 words of four int16 lanes (little-endian: lane 0 is the first element).
    Multiplying a word by ``_LANES`` turns its lanes into their running sums (no lane exceeds 2**15, so nothing
    carries into the next lane); the words' totals (lane 3) are then summed along the row (a quarter of the
    elements of a plain cumsum) and each word's preceding total is added to all four of its lanes. Every step
    is exact integer arithmetic: the result equals ``np.cumsum(cs, axis=1)``.
    """
    w = cs.view(np.uint64)  # [B, m]
    w *= _LANES
    total = w >> np.uint64(48)  # [B, m]: each word's sum
    before = np.cumsum(total, axis=1)
    before -= total  # the sum of the words before each word
    before *= _LANES
    w += before


def _sorted_cumsum_dot(c: np.ndarray, v: np.ndarray, orders: np.ndarray) -> np.ndarray:
    """``sum_k cumsum(c[:, o])[:, k] * v[:, o][:, k]`` for every order ``o`` in ``orders``, exactly, in int64.

    ``c`` (B, n) non-negative integer counts whose row sums fit ``c.dtype``; ``v`` (B, n) integers; ``orders``
    (T, n) permutations of ``range(n)``; returns (B, T). The same integers as gathering every order at once
    (``np.take(c, orders, axis=1)``, (B, T, n)) and one ``einsum``, but one order at a time into buffers that
    are reused: (B, n) arrays stay in cache and no fresh memory is touched per chunk. int16 counts on a
    little-endian machine take the cumulative sum four lanes at a time (:func:`_cumsum_int16_lanes`).
    """
    b, n = c.shape
    out = np.empty((b, orders.shape[0]), dtype=np.int64)
    lanes = c.dtype == np.int16 and sys.byteorder == "little"
    width = -(-n // 4) * 4 if lanes else n
    padded = np.zeros((b, width), dtype=c.dtype)  # the zero padding to whole words stays zero
    cs = padded[:, :n]  # [B, n]: c in the order, then its cumulative sum in place
    vs = np.empty(v.shape, dtype=v.dtype)  # [B, n]: v in the order
    for t, order in enumerate(orders):
        # mode "clip": the orders are permutations, so nothing is clipped; the default "raise" checks every
        # index and writes through a temporary copy of out (measured: the Spearman bootstrap 1.8x slower)
        np.take(c, order, axis=1, out=cs, mode="clip")
        if lanes:
            _cumsum_int16_lanes(padded)
        else:
            np.cumsum(cs, axis=1, out=cs)
        np.take(v, order, axis=1, out=vs, mode="clip")
        out[:, t] = np.einsum("bn,bn->b", cs, vs, dtype=np.int64)
    return out


def bootstrap_spearman(x, y, indices, *, chunk_size: int | None = None) -> np.ndarray:
    """Compute Spearman's rho of every row of ``x`` with ``y`` on every bootstrap resample of the pairs.

    Ranks are recomputed within each resample (average ranks for the ties that resampling creates), exactly as
    ``scipy.stats.spearmanr(x[:, i], y[i])`` for each resample ``i``. Sorting every resampled array instead
    (``scipy.stats.rankdata`` along an axis of ``x[:, indices]``) takes ~8 s for 45 tests x 10,000 resamples x
    230 pairs on two cores, so each row is sorted once and the rank of an item in a resample is read off the
    cumulative resample counts in that order; rho is the count-weighted Pearson r of the ranks. All of it is
    exact integer arithmetic (doubled, centred ranks), which is also what makes the cumulative sums fast. For
    rows without ties the sum of squared ranks has the closed form ``sum j^2 - sum_i (c_i^3 - c_i) / 12`` over
    the resample counts ``c``, and the cross sums are taken one test's order at a time
    (:func:`_sorted_cumsum_dot`, buffers that stay in cache). The test suite checks the result against
    ``rankdata`` on the resampled arrays.

    Parameters
    ----------
    x : ndarray of shape (n_tests, n) or (n,)
        Rows must be finite.
    y : ndarray of shape (n,)
    indices : ndarray of int, shape (n_bootstrap, n), or Resamples
    chunk_size : int, optional
        Resamples per chunk; memory is about ``(3 * n_tests_with_ties + 8) * chunk_size * n`` integers. Default:
        50 (fastest on the paper's shape), fewer when that would exceed ``CHUNK_ELEMENTS`` or ``chunk_size * n``
        would exceed ``_CACHE_ELEMENTS``.

    Returns
    -------
    ndarray of shape (n_tests, n_bootstrap)
        NaN where a resample has all-tied x or y.
    """
    x = as_tests(x)
    n = x.shape[1]
    y = as_vector(y, n, "y")
    if not np.all(np.isfinite(x)):
        raise ValueError("x has non-finite values")
    # Counts, cumulative counts and doubled centred ranks are <= n, their products <= n^2: int32 holds them
    # (and moves half the memory of int64) while n^2 fits; sums are accumulated in int64.
    itype = np.int32 if n * n < np.iinfo(np.int32).max else np.int64
    # Counts and their cumulative sums are <= n: int16 while n fits (half the bytes again to gather and add).
    ctype = np.int16 if n <= np.iinfo(np.int16).max else itype
    ox, lox, hix = _rank_bounds(x)
    oy, loy, hiy = _rank_bounds(y)
    no_ties = np.all(hix - lox == 1, axis=1)  # rows whose values are all distinct
    nt, wt = np.flatnonzero(no_ties), np.flatnonzero(~no_ties)
    ox_nt = ox[nt]
    if chunk_size is None:  # rows with ties hold (chunk, n) integers thrice per test, the others a few in all
        chunk_size = min(50, chunk_rows(n, 3 * wt.size + 8), chunk_rows(n, 1, _CACHE_ELEMENTS))
    n_boot, chunks = index_chunks(indices, n, chunk_size)

    def rho_of(idx: np.ndarray) -> np.ndarray:
        """Spearman rho of every test on the chunk's resamples, (n_tests, chunk)."""
        c = chunk_counts(idx, n, itype)  # [B, n]
        ry = _doubled_resample_ranks(c, oy, loy, hiy)  # [B, n]: 2 * rank - (n + 1)
        cry = c * ry
        syy = np.einsum("bn,bn->b", cry, ry, dtype=np.int64).astype(np.float64)
        sxy = np.empty((c.shape[0], x.shape[0]))
        sxx = np.empty((c.shape[0], x.shape[0]))
        if nt.size:
            # Distinct values: in sorted order the doubled centred rank is 2 cum - c_sorted - n, so
            # sum_k rank2_k cry_k = 2 sum_k cum_k cry_k - sum_i c_i cry_i (the n-term vanishes: sum cry = 0).
            sxy[:, nt] = (2 * _sorted_cumsum_dot(c.astype(ctype), cry, ox_nt)
                          - np.einsum("bn,bn->b", c, cry, dtype=np.int64)[:, None])
            c64 = c.astype(np.int64)
            # sum over the resample of (2 rank - (n + 1))^2 = 4 sum rank^2 - n (n + 1)^2, where
            # sum rank^2 = n (n + 1) (2n + 1) / 6 - sum_i (c_i^3 - c_i) / 12 (tie groups are the copies of an item)
            ties = (c64**3 - c64).sum(axis=1)
            sxx[:, nt] = ((4 * n * (n + 1) * (2 * n + 1) - 2 * ties - 6 * n * (n + 1) ** 2) / 6.0)[:, None]
        if wt.size:
            rx = _doubled_resample_ranks(c, ox[wt], lox[wt], hix[wt])  # [B, T'', n]
            sxy[:, wt] = np.einsum("btn,bn->bt", rx, cry, dtype=np.int64)
            sxx[:, wt] = np.einsum("btn,btn,bn->bt", rx, rx, c, dtype=np.int64)
        bad = (sxx <= 0) | (syy[:, None] <= 0)
        rho = sxy / np.sqrt(np.where(bad, 1.0, sxx * syy[:, None]))
        rho[bad] = np.nan
        return np.clip(rho, -1.0, 1.0).T

    out = np.empty((x.shape[0], n_boot))
    start = 0
    for idx, rho in map_chunks(rho_of, chunks):
        out[:, start:start + len(idx)] = rho
        start += len(idx)
    return out


def jackknife_pearson(x, y) -> np.ndarray:
    """Compute the leave-one-out Pearson r of every row of ``x`` with ``y``.

    Closed form from the centered sums (O(n_tests * n), no loop over the left-out item): removing item i from
    data centered on the full means changes the sums by ``S_xy - n/(n-1) dx_i dy_i`` and likewise for S_xx, S_yy.

    Parameters
    ----------
    x : ndarray of shape (n_tests, n) or (n,)
    y : ndarray of shape (n,)

    Returns
    -------
    ndarray of shape (n_tests, n)
        Entry ``[t, i]`` is the r of ``x[t]`` and ``y`` without item ``i``; NaN where no spread is left.
    """
    x = as_tests(x)
    n = x.shape[1]
    y = as_vector(y, n, "y")
    xc = x - x.mean(axis=1, keepdims=True)
    yc = y - y.mean()
    f = n / (n - 1)
    sxy = (xc @ yc)[:, None] - f * xc * yc  # [tests, n]
    sxx = (xc**2).sum(axis=1, keepdims=True) - f * xc**2
    syy = (yc**2).sum() - f * yc**2
    # A sum of squares below n * (64 eps * the largest deviation)^2 is rounding noise: no spread is left.
    eps = 64 * np.finfo(np.float64).eps
    bad = (sxx <= n * (eps * np.max(np.abs(xc), axis=1, keepdims=True)) ** 2) \
        | (syy <= n * (eps * np.max(np.abs(yc))) ** 2)[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = sxy / np.sqrt(sxx * syy)
    r[bad] = np.nan
    return np.clip(r, -1.0, 1.0)


def _quantile_rows(boot: np.ndarray, q) -> np.ndarray:
    """Linear-interpolation quantile (NumPy's default) of each row's finite values, at per-row levels ``q``."""
    s = np.sort(boot, axis=-1)  # NaN sorts last
    m = np.isfinite(s).sum(axis=-1)
    q = np.broadcast_to(np.asarray(q, dtype=np.float64), m.shape)
    out = np.full(m.shape, np.nan)
    ok = (m > 0) & np.isfinite(q)
    rows = np.flatnonzero(ok)
    v = q[ok] * (m[ok] - 1)
    lo = np.floor(v).astype(np.int64)
    hi = np.minimum(lo + 1, m[ok] - 1)
    g = v - lo
    a, b = s[rows, lo], s[rows, hi]
    diff = b - a
    out[ok] = np.where(g >= 0.5, b - diff * (1 - g), a + diff * g)
    return out


def percentile_interval(theta_boot, ci_level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Compute the percentile bootstrap interval of each row of a bootstrap distribution.

    Parameters
    ----------
    theta_boot : ndarray of shape (n_tests, n_bootstrap) or (n_bootstrap,)
        NaN entries (degenerate resamples) are skipped, as the seed skips them.
    ci_level : float, default=0.95

    Returns
    -------
    (ci_lower, ci_upper) : ndarrays of shape (n_tests,)
        NumPy's default (linear) percentiles at ``(1 - ci_level) / 2`` and ``(1 + ci_level) / 2``.
    """
    alpha = 1 - check_ci_level(ci_level)
    boot = as_tests(theta_boot, name="theta_boot")
    return _quantile_rows(boot, alpha / 2), _quantile_rows(boot, 1 - alpha / 2)


def bca_interval(theta_hat, theta_boot, theta_jack, ci_level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Compute the bias-corrected and accelerated (BCa) bootstrap interval (Efron & Tibshirani 1993, 14.3).

    ``z0 = Phi^-1(share of theta_boot below theta_hat)``, ties counting half (as SciPy's
    ``_percentile_of_score``); the acceleration ``a = sum d^3 / (6 (sum d^2)^1.5)`` with ``d = mean(theta_jack) -
    theta_jack``; the interval is the linear-interpolation quantile of ``theta_boot`` at ``Phi(z0 + (z0 + z) /
    (1 - a (z0 + z)))`` for ``z = Phi^-1(alpha / 2)`` and ``Phi^-1(1 - alpha / 2)``. Given the same bootstrap
    distribution this equals ``scipy.stats.bootstrap(..., method="BCa")``.

    Parameters
    ----------
    theta_hat : float or ndarray of shape (n_tests,)
        The statistic on the full sample.
    theta_boot : ndarray of shape (n_tests, n_bootstrap) or (n_bootstrap,)
        Bootstrap distribution; NaN entries are skipped.
    theta_jack : ndarray of shape (n_tests, n) or (n,)
        Leave-one-out (jackknife) values of the statistic, e.g. from :func:`jackknife_pearson`.
    ci_level : float, default=0.95

    Returns
    -------
    (bca_lower, bca_upper) : ndarrays of shape (n_tests,)
    """
    alpha = 1 - check_ci_level(ci_level)
    boot = as_tests(theta_boot, name="theta_boot")
    jack = as_tests(theta_jack, name="theta_jack")
    hat = np.atleast_1d(np.asarray(theta_hat, dtype=np.float64)).ravel()
    if not (hat.shape[0] == boot.shape[0] == jack.shape[0]):
        raise ValueError(f"theta_hat {hat.shape}, theta_boot {boot.shape} and theta_jack {jack.shape} must "
                         "describe the same number of tests")
    finite = np.isfinite(boot)
    n_finite = finite.sum(axis=1)
    below = ((boot < hat[:, None]) & finite).sum(axis=1) + ((boot <= hat[:, None]) & finite).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        z0 = special.ndtri(below / (2.0 * n_finite))
        d = jack.mean(axis=1, keepdims=True) - jack
        a = (d**3).sum(axis=1) / (6.0 * ((d**2).sum(axis=1)) ** 1.5)
        z_lo = special.ndtri(alpha / 2)
        z_hi = -z_lo
        q_lo = special.ndtr(z0 + (z0 + z_lo) / (1 - a * (z0 + z_lo)))
        q_hi = special.ndtr(z0 + (z0 + z_hi) / (1 - a * (z0 + z_hi)))
    return _quantile_rows(boot, q_lo), _quantile_rows(boot, q_hi)


