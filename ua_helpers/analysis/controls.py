"""Controls: what could produce a geometry-preference correlation without the model's computation.

Computed from a run's own extraction, with no forward pass:

- :func:`random_token_baseline`: every token id replaced by a seeded Gaussian vector of width ``d_model``, pooled
  over the same positions as the hidden states (:func:`~ua_helpers.inputs.extraction.random_token_embeddings`), and the
  five metrics correlated with the real preference, for several seeds. A model-free representation carries the
  statements' token counts and token identities, and nothing else.
- :func:`shuffled_pairing_null`: statement A of pair i re-paired with statement B of pair pi(i). Four metrics are
  differences of a per-statement term (:func:`statement_terms`), and the preference NLL(B) - NLL(A) is one too,
  so under a re-pairing each side keeps its own terms: the null is exact, and a pair-level r inside it is a
  statement-level association in disguise. ``within_pair_sim`` is recomputed from the re-paired cosines.
- :func:`lexical_covariates` and :func:`lexical_controls`: the partial r of every (layer, metric) test given
  token count (linear, log and 1/sqrt forms), character length, a frequency proxy, the share of digit tokens,
  the category, the same metric on the random-token representation and, above layer 0, at layer 0.

:func:`compute_controls` runs all three; :meth:`Controls.to_json` is the ``controls`` block of ``results.json``;
:func:`ua_helpers.report.findings.read_controls` says in words what the block shows.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
from scipy import stats as sps

from .._checks import check_ci_level, check_positive_int, check_seed, t_pvalue
from .._io import to_jsonable
from ..inputs.extraction import Extraction, random_token_embeddings
from .bootstrap import pearson
from .confounds import category_dummies, covariate_design, partial_r_rows
from .metrics import (
    EPS,
    METRIC_NAMES,
    compute_pair_metrics,
    cos_to,
    knn_density,
    zscore,
)
from .multiplicity import holm

if TYPE_CHECKING:
    import pandas as pd

SCHEMA_VERSION = 1
#: Metrics that are a difference ``term_a[i] - term_b[i]`` of per-statement terms (all but within_pair_sim).
ADDITIVE_METRICS = ("centroid_asymmetry", "cross_centroid", "knn_density_asymmetry", "margin_asymmetry")
N_BASELINE_SEEDS = 5
N_SHUFFLES = 2000
_PAIRING_STREAM = 4  # spawn key of the re-pairings' SeedSequence (permutations of the preference use 1)
FREQUENCY_PROXY = ("mean of log(1 + token id) over the tokens the NLL scores (positions 1..T-1): byte-pair "
                   "vocabularies number tokens in merge order, so a low id is an early, frequent merge")
CI_METHOD = ("Fisher z interval of the partial r, z = atanh(r) +/- q / sqrt(df - 1) with df = n - 2 - k (k covariates "
             "beside the intercept); p from Student's t with df degrees of freedom")
COVARIATE_DESCRIPTIONS = {
    "tokens": "n_b - n_a, n = tokens the NLL scores and mean pooling averages (T - 1)",
    "log_tokens": "log(n_b) - log(n_a)",
    "inv_sqrt_tokens": "1/sqrt(n_b) - 1/sqrt(n_a): mean pooling of n random vectors has spread ~ 1/sqrt(n)",
    "length": "len(stmt_b) - len(stmt_a) (characters)",
    "frequency": "frequency proxy of B minus that of A (see frequency_proxy)",
    "digits": "share of B's scored tokens that contain a digit minus that of A",
    "category": "category fixed effects (one-hot, first-seen category dropped); r is the multiple correlation",
}
PER_TEST_COVARIATES = {
    "random_tokens": "the same metric on the random-token representation, mean over the baseline's seeds",
    "layer0": "above layer 0: the same metric at layer 0 (the token embeddings)",
}


def baseline_seeds(seed: int = 42, n_seeds: int = N_BASELINE_SEEDS) -> list[int]:
    """Return the random-token baseline's seeds: ``seed + 1, ..., seed + n_seeds``.

    A run with ``representation="random-tokens"`` draws its own vectors with ``seed`` itself, so its
    representation is never one of its baseline's.
    """
    seed = check_seed(seed)
    return [seed + 1 + i for i in range(check_positive_int("n_seeds", n_seeds))]


# --------------------------------------------------------------------------------------------------------------
# Per-statement terms and the shuffled-pairing null
# --------------------------------------------------------------------------------------------------------------

def statement_terms(emb_a, emb_b, k: int = 10) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Return the per-statement terms of the additive metrics at one layer.

    Each additive metric of :func:`~ua_helpers.analysis.metrics.compute_pair_metrics` is ``term_a[i] - term_b[i]``, where
    statement A's term depends only on A_i and the set of A statements (and the other side's centroid), not on
    which B it is paired with: a re-pairing keeps every term.

    Parameters
    ----------
    emb_a, emb_b : ndarray of shape (n_pairs, d_model)
    k : int, default=10
        kNN neighbours, clamped to ``n_pairs - 1`` as the metrics do.

    Returns
    -------
    dict of str to (ndarray of shape (n_pairs,), ndarray of shape (n_pairs,))
        ``centroid_asymmetry``: (cos(A_i, mu_A), cos(B_i, mu_B)); ``cross_centroid``: (cos(A_i, mu_B),
        cos(B_i, mu_A)); ``knn_density_asymmetry``: (z(density_A)_i, z(density_B)_i); ``margin_asymmetry``:
        (||A_i - m||, ||B_i - m||), m the midpoint of the two centroids.
    """
    a = np.asarray(emb_a, dtype=np.float64)
    b = np.asarray(emb_b, dtype=np.float64)
    if a.ndim != 2 or a.shape != b.shape or a.shape[0] < 3:
        raise ValueError(f"emb_a and emb_b must both be (n_pairs >= 3, d_model); got {a.shape} and {b.shape}")
    k = min(int(check_positive_int("k", k)), a.shape[0] - 1)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    mid = (mu_a + mu_b) / 2
    return {
        "centroid_asymmetry": (cos_to(a, mu_a), cos_to(b, mu_b)),
        "cross_centroid": (cos_to(a, mu_b), cos_to(b, mu_a)),
        "knn_density_asymmetry": (zscore(knn_density(a, k)), zscore(knn_density(b, k))),
        "margin_asymmetry": (np.linalg.norm(a - mid, axis=1), np.linalg.norm(b - mid, axis=1)),
    }


def pairing_permutations(n: int, n_shuffles: int = N_SHUFFLES, seed: int = 42) -> np.ndarray:
    """Draw the re-pairings, shape (n_shuffles, n): row s pairs A_i with B_{perm[s, i]}.

    From ``default_rng(SeedSequence(seed, spawn_key=(4,)))``, a stream of its own (the preference's permutations
    use spawn key 1, the bootstrap the seed itself).
    """
    n = check_positive_int("n", n)
    n_shuffles = check_positive_int("n_shuffles", n_shuffles)
    rng = np.random.default_rng(np.random.SeedSequence(check_seed(seed), spawn_key=(_PAIRING_STREAM,)))
    return rng.permuted(np.broadcast_to(np.arange(n, dtype=np.int64), (n_shuffles, n)), axis=1)


@dataclass
class ShuffledPairing:
    """Result of :func:`shuffled_pairing_null`.

    Attributes
    ----------
    layers : list of int
    metric_names : list of str
    r_observed : ndarray of shape (n_layers, n_metrics)
        r under the real pairing.
    r_null : ndarray of shape (n_layers, n_metrics, n_shuffles)
        r under each re-pairing.
    r_a, r_b : ndarray of shape (n_layers, n_metrics)
        Additive metrics: Pearson r of each side's per-statement term with that statement's NLL (NaN for
        within_pair_sim).
    n_shuffles, seed : int
    """

    layers: list[int]
    metric_names: list[str]
    r_observed: np.ndarray
    r_null: np.ndarray
    r_a: np.ndarray
    r_b: np.ndarray
    n_shuffles: int
    seed: int

    def p_values(self) -> np.ndarray:
        """Two-sided p of the observed r around the null's median: ``(1 + #{|r* - med| >= |r - med|}) / (1 + S)``.

        Shape (n_layers, n_metrics); NaN where the null is undefined.
        """
        med = np.median(self.r_null, axis=-1)
        dev = np.abs(self.r_observed - med)
        count = (np.abs(self.r_null - med[..., None]) >= dev[..., None] * (1 - 1e-12)).sum(axis=-1)
        p = (1 + count) / (1 + self.n_shuffles)
        return np.where(np.isfinite(dev), p, np.nan)

    def table(self, ci_level: float = 0.95) -> pd.DataFrame:
        """One row per (layer, metric): r_observed, null_mean, null_median, null_ci_lower, null_ci_upper, p_value."""
        import pandas as pd

        ci_level = check_ci_level(ci_level)
        tail = (1 - ci_level) / 2
        lo, hi = np.quantile(self.r_null, [tail, 1 - tail], axis=-1)
        return pd.DataFrame({
            "layer": np.repeat(self.layers, len(self.metric_names)),
            "metric": np.tile(self.metric_names, len(self.layers)),
            "r_observed": self.r_observed.ravel(), "null_mean": self.r_null.mean(-1).ravel(),
            "null_median": np.median(self.r_null, axis=-1).ravel(), "null_ci_lower": lo.ravel(),
            "null_ci_upper": hi.ravel(), "p_value": self.p_values().ravel()})


def shuffled_pairing_null(emb_a, emb_b, nll_a, nll_b, layers: Sequence[int], k: int = 10,
                          n_shuffles: int = N_SHUFFLES, seed: int = 42,
                          metric_names: Sequence[str] = METRIC_NAMES) -> ShuffledPairing:
    """Correlate every metric with the preference under random re-pairings of the A and B statements.

    Re-pairing A_i with B_pi(i) leaves both sides' sets unchanged, so their centroids, kNN densities and the
    centroids' midpoint are unchanged: each additive metric is ``term_a[i] - term_b[pi(i)]``
    (:func:`statement_terms`), ``within_pair_sim`` is cos(A_i, B_pi(i)) and the preference is
    ``nll_b[pi(i)] - nll_a[i]``. These are exactly the metrics :func:`~ua_helpers.analysis.metrics.compute_pair_metrics`
    gives on ``(emb_a, emb_b[pi])``, computed without recomputing them.

    Parameters
    ----------
    emb_a, emb_b : ndarray of shape (n_layers, n_pairs, d_model)
    nll_a, nll_b : ndarray of shape (n_pairs,)
    layers : sequence of int, length n_layers
    k : int, default=10
    n_shuffles : int, default=2000
    seed : int, default=42
        Seed of :func:`pairing_permutations`.
    metric_names : sequence of str, default=METRIC_NAMES

    Returns
    -------
    ShuffledPairing
    """
    a_all = np.asarray(emb_a, dtype=np.float64)
    b_all = np.asarray(emb_b, dtype=np.float64)
    if a_all.ndim != 3 or a_all.shape != b_all.shape or a_all.shape[0] != len(layers):
        raise ValueError(f"emb_a and emb_b must both be (n_layers={len(layers)}, n_pairs, d_model); got "
                         f"{a_all.shape} and {b_all.shape}")
    n = a_all.shape[1]
    nll_a = np.asarray(nll_a, dtype=np.float64)
    nll_b = np.asarray(nll_b, dtype=np.float64)
    if nll_a.shape != (n,) or nll_b.shape != (n,) or not np.all(np.isfinite(nll_a) & np.isfinite(nll_b)):
        raise ValueError(f"nll_a and nll_b must be finite, of shape ({n},)")
    names = list(metric_names)
    unknown = sorted(set(names) - set(METRIC_NAMES))
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; known: {', '.join(METRIC_NAMES)}")
    perms = pairing_permutations(n, n_shuffles, seed)  # [S, n]
    inverse = np.argsort(perms, axis=1)  # [S, n]: pi^-1
    rows = np.arange(n)[None, :]
    y_obs = nll_b - nll_a
    # Under re-pairing s, y_i = nll_b[pi(i)] - nll_a[i]. Its sum is fixed; its sum of squares and its cross
    # products with x need only sums of u_i v_pi(i), i.e. products with gathered rows (one gather per vector).
    nb_p = nll_b[perms]  # [S, n]: nll_b[pi(i)]
    na_inv = nll_a[inverse]  # [S, n]: nll_a[pi^-1(j)]
    y_sum = nll_b.sum() - nll_a.sum()
    y_ss = (nll_b**2).sum() + (nll_a**2).sum() - 2 * nb_p @ nll_a - y_sum**2 / n  # [S]: centred sum of squares
    shape = (len(layers), len(names))
    r_obs, r_a, r_b = np.full(shape, np.nan), np.full(shape, np.nan), np.full(shape, np.nan)
    r_null = np.full(shape + (perms.shape[0],), np.nan)
    for li in range(len(layers)):
        a, b = a_all[li], b_all[li]
        terms = statement_terms(a, b, k)
        for mi, name in enumerate(names):
            if name in terms:
                ta, tb = terms[name]
                # x_i = ta[i] - tb[pi(i)]: sum fixed; sum x y and sum x^2 from products with gathered rows.
                x_sum = ta.sum() - tb.sum()
                sxy = (nb_p @ ta - ta @ nll_a - tb @ nll_b + na_inv @ tb) - x_sum * y_sum / n
                sxx = (ta**2).sum() + (tb**2).sum() - 2 * ta[inverse] @ tb - x_sum**2 / n
                x_obs = ta - tb
                r_a[li, mi], r_b[li, mi] = pearson(ta, nll_a)[0, 0], pearson(tb, nll_b)[0, 0]
            elif name == "within_pair_sim":
                cos = (a @ b.T) / (np.linalg.norm(a, axis=1)[:, None] * np.linalg.norm(b, axis=1)[None, :] + EPS)
                x_null = cos[rows, perms]  # [S, n]: cos(A_i, B_pi(i))
                x_sum = x_null.sum(axis=1)
                sxy = np.einsum("sn,sn->s", x_null, nb_p) - x_null @ nll_a - x_sum * y_sum / n
                sxx = np.einsum("sn,sn->s", x_null, x_null) - x_sum**2 / n
                x_obs = np.diagonal(cos).copy()
            else:  # pragma: no cover - METRIC_NAMES and the branches above agree
                raise ValueError(f"no null for metric {name!r}")
            r_obs[li, mi] = pearson(x_obs, y_obs)[0, 0]
            with np.errstate(invalid="ignore", divide="ignore"):
                ok = (sxx > 1e-12 * max(1.0, float(np.abs(x_obs).max()) ** 2 * n)) & (y_ss > 0)
                r_null[li, mi] = np.where(ok, np.clip(sxy / np.sqrt(np.where(ok, sxx * y_ss, 1.0)), -1, 1), np.nan)
    return ShuffledPairing([int(l) for l in layers], names, r_obs, r_null, r_a, r_b, int(perms.shape[0]),
                           int(seed))


# --------------------------------------------------------------------------------------------------------------
# The random-token baseline
# --------------------------------------------------------------------------------------------------------------

@dataclass
class RandomTokenBaseline:
    """Result of :func:`random_token_baseline`.

    Attributes
    ----------
    seeds : list of int
    metric_names : list of str
    values : ndarray of shape (n_seeds, n_metrics, n_pairs)
        The metrics on each seed's random-token representation.
    r : ndarray of shape (n_seeds, n_metrics)
        Pearson r of each seed's metric with the preference.
    """

    seeds: list[int]
    metric_names: list[str]
    values: np.ndarray
    r: np.ndarray

    def mean_values(self) -> np.ndarray:
        """The metrics averaged over the seeds, shape (n_metrics, n_pairs): a per-test covariate."""
        return self.values.mean(axis=0)


def random_token_baseline(ext: Extraction, seeds: Sequence[int], k: int = 10,
                          metric_names: Sequence[str] = METRIC_NAMES) -> RandomTokenBaseline:
    """Compute the metrics on random-token representations of an extraction's statements, one per seed.

    Each token id becomes a seeded standard-normal vector of the extraction's width
    (:func:`~ua_helpers.inputs.extraction.random_token_vectors`), pooled over the positions the hidden states were
    pooled over (``ext.meta["pooling"]``, the stored token ids including any prefix). The same vectors serve
    every layer: no model is involved, and the preference is the extraction's.

    Parameters
    ----------
    ext : Extraction
        With token ids (``ext.require_tokens()``).
    seeds : sequence of int
        E.g. :func:`baseline_seeds`.
    k : int, default=10
    metric_names : sequence of str, default=METRIC_NAMES

    Returns
    -------
    RandomTokenBaseline
    """
    ids, offsets, _ = ext.require_tokens()
    seeds = [check_seed(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds is empty")
    names = list(metric_names)
    n, d_model = ext.n_pairs, int(ext.emb_a.shape[-1])
    pooling = ext.meta.get("pooling", "mean")
    values = np.empty((len(seeds), len(names), n))
    for si, s in enumerate(seeds):
        pooled = random_token_embeddings(ids, offsets, d_model, s, pooling)  # [2 n, d_model]
        m = compute_pair_metrics(pooled[:n], pooled[n:], k)
        values[si] = [m[name] for name in names]
    r = pearson(values.reshape(-1, n), ext.preference)[:, 0].reshape(values.shape[:2])
    return RandomTokenBaseline(seeds, names, values, r)


# --------------------------------------------------------------------------------------------------------------
# Lexical covariates and the partial r beyond them
# --------------------------------------------------------------------------------------------------------------

def statement_lexicon(ext: Extraction) -> dict[str, np.ndarray]:
    """Per-statement lexical features from the stored token ids, each of shape (2 * n_pairs,), A statements first.

    ``n_scored``: tokens the NLL scores and mean pooling averages (positions 1..T-1); ``frequency``: mean
    log(1 + id) over them (:data:`FREQUENCY_PROXY`); ``digits``: the share of them whose text holds a digit.
    """
    ids, offsets, digit = ext.require_tokens()
    lengths = np.diff(offsets)
    position = np.arange(ids.size) - np.repeat(offsets[:-1], lengths)
    scored = position >= 1
    owner = np.repeat(np.arange(lengths.size), lengths)[scored]
    n_scored = np.bincount(owner, minlength=lengths.size).astype(np.float64)
    freq = np.bincount(owner, weights=np.log1p(ids[scored].astype(np.float64)), minlength=lengths.size)
    digits = np.bincount(owner, weights=digit[scored].astype(np.float64), minlength=lengths.size)
    return {"n_scored": n_scored, "frequency": freq / n_scored, "digits": digits / n_scored}


def lexical_covariates(ext: Extraction, stmt_a: Sequence[str], stmt_b: Sequence[str],
                       categories: Sequence[str]) -> dict[str, np.ndarray]:
    """Build the lexical covariates shared by every test: B's value minus A's (as the preference NLL(B) - NLL(A)).

    Parameters
    ----------
    ext : Extraction
        With token ids.
    stmt_a, stmt_b : sequence of str, length n_pairs
    categories : sequence of str, length n_pairs

    Returns
    -------
    dict of str to ndarray of shape (n_pairs, k)
        The keys of :data:`COVARIATE_DESCRIPTIONS`, in its order (``category``: k = n_categories - 1).
    """
    n = ext.n_pairs
    if not (len(stmt_a) == len(stmt_b) == len(categories) == n):
        raise ValueError(f"stmt_a, stmt_b and categories must have n_pairs = {n} entries")
    lex = statement_lexicon(ext)
    ns = lex["n_scored"]

    def diff(v):
        v = np.asarray(v, dtype=np.float64)
        return (v[n:] - v[:n])[:, None]

    chars = np.array([len(s) for s in stmt_a] + [len(s) for s in stmt_b], dtype=np.float64)
    return {"tokens": diff(ns), "log_tokens": diff(np.log(ns)), "inv_sqrt_tokens": diff(1 / np.sqrt(ns)),
            "length": diff(chars), "frequency": diff(lex["frequency"]), "digits": diff(lex["digits"]),
            "category": category_dummies(categories)}


def covariate_correlations(covariates: dict[str, np.ndarray], preference) -> list[dict[str, Any]]:
    """Return, per covariate, its Pearson r with the preference (None for several columns) and the multiple R."""
    y = np.asarray(preference, dtype=np.float64)
    out = []
    for name, cov in covariates.items():
        cov = np.asarray(cov, dtype=np.float64)
        r = float(pearson(cov[:, 0], y)[0, 0]) if cov.shape[1] == 1 and np.ptp(cov) > 0 else None
        design = covariate_design(cov, y.size)
        fit = design @ np.linalg.lstsq(design, y, rcond=None)[0]
        multiple = float(np.sqrt(max(0.0, 1 - ((y - fit) ** 2).sum() / ((y - y.mean()) ** 2).sum())))
        out.append({"name": name, "description": COVARIATE_DESCRIPTIONS.get(name, name), "r": r,
                    "multiple_r": multiple})
    return out


def lexical_controls(metric_values, preference, layers: Sequence[int], metric_names: Sequence[str],
                     covariates: dict[str, np.ndarray], random_token_values, *, ci_level: float = 0.95) -> pd.DataFrame:
    """Compute every test's partial r given the lexical covariates, its random-token twin and its layer-0 twin.

    The covariates of test (layer, metric) are all of ``covariates``, the same metric on the random-token
    representation (``random_token_values``, e.g. :meth:`RandomTokenBaseline.mean_values`) and, for a layer
    above 0, the same metric at layer 0. Where layer 0 was not extracted, tests above it get NaN and a note.

    Parameters
    ----------
    metric_values, preference, layers, metric_names : the standard arrays of :mod:`ua_helpers.analysis`
    covariates : dict of str to ndarray of shape (n_pairs, k)
        From :func:`lexical_covariates`.
    random_token_values : ndarray of shape (n_metrics, n_pairs)
    ci_level : float, default=0.95

    Returns
    -------
    pandas.DataFrame
        One row per (layer, metric): layer, metric, partial_r, ci_lower, ci_upper (:data:`CI_METHOD`), p_value,
        p_holm (Holm over the defined tests), df, note.
    """
    import pandas as pd

    values = np.asarray(metric_values, dtype=np.float64)
    names = list(metric_names)
    layers = [int(l) for l in layers]
    if values.ndim != 3 or values.shape[:2] != (len(layers), len(names)):
        raise ValueError(f"metric_values must be ({len(layers)}, {len(names)}, n_pairs); got {values.shape}")
    n = values.shape[2]
    y = np.asarray(preference, dtype=np.float64)
    rt = np.asarray(random_token_values, dtype=np.float64)
    if y.shape != (n,) or rt.shape != (len(names), n):
        raise ValueError(f"preference must be ({n},) and random_token_values ({len(names)}, {n})")
    q = sps.norm.ppf(0.5 + check_ci_level(ci_level) / 2)
    common = np.column_stack([np.asarray(c, dtype=np.float64) for c in covariates.values()])
    rows = []
    for li, layer in enumerate(layers):
        for mi, name in enumerate(names):
            x = values[li, mi]
            row = {"layer": layer, "metric": name, "partial_r": np.nan, "ci_lower": np.nan, "ci_upper": np.nan,
                   "p_value": np.nan, "df": 0, "note": ""}
            extra = [rt[mi]]
            if layer > 0:
                if 0 not in layers:
                    row["note"] = "layer 0 was not extracted"
                    rows.append(row)
                    continue
                extra.append(values[layers.index(0), mi])
            if not np.all(np.isfinite(x)) or np.ptp(x) == 0:
                row["note"] = "metric is constant or not finite"
                rows.append(row)
                continue
            design = covariate_design(np.column_stack([common, *extra]), n)
            r, df = partial_r_rows(x[None], y, design)
            r = float(r[0])
            if df < 2 or not np.isfinite(r):
                row["note"] = "no residual variance left once the covariates are removed"
                rows.append(row)
                continue
            z, se = np.arctanh(np.clip(r, -1 + 1e-15, 1 - 1e-15)), 1 / np.sqrt(df - 1)
            row.update(partial_r=r, ci_lower=float(np.tanh(z - q * se)), ci_upper=float(np.tanh(z + q * se)),
                       p_value=float(t_pvalue(np.array([r]), df)[0]), df=int(df))
            rows.append(row)
    out = pd.DataFrame(rows)
    out.insert(out.columns.get_loc("p_value") + 1, "p_holm", holm(out["p_value"].to_numpy(dtype=float)))
    return out


# --------------------------------------------------------------------------------------------------------------
# All controls of a run
# --------------------------------------------------------------------------------------------------------------

@dataclass
class Controls:
    """Result of :func:`compute_controls`; :meth:`to_json` is the ``controls`` block of ``results.json``.

    Attributes
    ----------
    representation, prefix : str
        The run's geometry and prompt prefix (``ext.meta``).
    layers : list of int
    metric_names : list of str
    baseline : RandomTokenBaseline
    shuffled : ShuffledPairing
    covariates : dict of str to ndarray of shape (n_pairs, k)
    lexical : pandas.DataFrame
        :func:`lexical_controls`.
    preference : ndarray of shape (n_pairs,)
    ci_level : float
    """

    representation: str
    prefix: str
    layers: list[int]
    metric_names: list[str]
    baseline: RandomTokenBaseline
    shuffled: ShuffledPairing
    covariates: dict[str, np.ndarray]
    lexical: pd.DataFrame
    preference: np.ndarray
    ci_level: float

    def to_json(self) -> dict[str, Any]:
        """Return the ``controls`` block of ``results.json`` (plain types, NaN as None; layout: ``results.schema.json``)."""
        rt_rows = []
        for layer in self.layers:
            for mi, name in enumerate(self.metric_names):
                r = self.baseline.r[:, mi]
                rt_rows.append({"layer": layer, "metric": name, "r_mean": r.mean(), "r_min": r.min(),
                                "r_max": r.max(), "r": list(r)})
        null = self.shuffled.table(self.ci_level)
        stmt = [{"layer": layer, "metric": name, "r_a": self.shuffled.r_a[li, mi], "r_b": self.shuffled.r_b[li, mi]}
                for li, layer in enumerate(self.layers) for mi, name in enumerate(self.metric_names)
                if name in ADDITIVE_METRICS]
        lex_cols = ["layer", "metric", "partial_r", "ci_lower", "ci_upper", "p_value", "p_holm", "df", "note"]
        return to_jsonable({
            "schema_version": SCHEMA_VERSION, "representation": self.representation, "prefix": self.prefix,
            "random_tokens": {"seeds": self.baseline.seeds, "description": "each token id's seeded N(0, 1) "
                              "vector of width d_model, pooled over the positions the hidden states are pooled over",
                              "tests": rt_rows},
            "shuffled_pairing": {"n_shuffles": self.shuffled.n_shuffles, "seed": self.shuffled.seed,
                                 "ci_level": self.ci_level, "tests": null.to_dict(orient="records"),
                                 "statement_level": stmt},
            "lexical": {"frequency_proxy": FREQUENCY_PROXY, "ci_method": CI_METHOD,
                        "covariates": covariate_correlations(self.covariates, self.preference),
                        "per_test_covariates": [{"name": k, "description": v}
                                                for k, v in PER_TEST_COVARIATES.items()],
                        "tests": self.lexical[lex_cols].to_dict(orient="records")},
        })


def compute_controls(ext: Extraction, metric_values, stmt_a: Sequence[str], stmt_b: Sequence[str],
                     categories: Sequence[str], *, k: int = 10, seed: int = 42, n_seeds: int = N_BASELINE_SEEDS,
                     n_shuffles: int = N_SHUFFLES, ci_level: float = 0.95,
                     metric_names: Sequence[str] = METRIC_NAMES) -> Controls:
    """Run the three controls on a run's extraction: random tokens, shuffled pairing, lexical covariates.

    Parameters
    ----------
    ext : Extraction
        With token ids; its preference is NLL(B) - NLL(A).
    metric_values : ndarray of shape (n_layers, n_metrics, n_pairs)
        :func:`~ua_helpers.analysis.metrics.compute_all_layers` of ``ext`` with the same ``k``.
    stmt_a, stmt_b, categories : sequences of length n_pairs
    k : int, default=10
    seed : int, default=42
        The run's seed: the baseline uses :func:`baseline_seeds`, the re-pairings :func:`pairing_permutations`.
    n_seeds : int, default=5
    n_shuffles : int, default=2000
    ci_level : float, default=0.95
    metric_names : sequence of str, default=METRIC_NAMES

    Returns
    -------
    Controls
    """
    seed = check_seed(seed)
    pref = np.asarray(ext.preference, dtype=np.float64)
    baseline = random_token_baseline(ext, baseline_seeds(seed, n_seeds), k, metric_names)
    shuffled = shuffled_pairing_null(ext.emb_a, ext.emb_b, ext.nll_a, ext.nll_b, ext.layers, k, n_shuffles, seed,
                                     metric_names)
    covariates = lexical_covariates(ext, stmt_a, stmt_b, categories)
    lexical = lexical_controls(metric_values, pref, ext.layers, metric_names, covariates, baseline.mean_values(),
                               ci_level=ci_level)
    return Controls(ext.meta.get("representation", "hidden-states"), ext.meta.get("prefix", "none"),
                    [int(l) for l in ext.layers], list(metric_names), baseline, shuffled, covariates, lexical, pref,
                    check_ci_level(ci_level))
