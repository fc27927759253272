"""Category-level UA and Option A random bins against a direct loop of the definitions, the published files'
format and numbers, seeded determinism, and degenerate inputs."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal
from scipy import stats as sps

from ua_helpers.analysis import levels
from ua_helpers.report import levels_tables
from ua_helpers.inputs import published

EPS64 = float(np.finfo(np.float64).eps)
SIZES = {"numeric": 9, "facts": 6, "tech": 12, "life": 7, "biz": 11, "science": 5}  # 50 pairs, 6 categories
LAYERS = [0, 2, 4]


def _data(seed=0, n_layers=3, d_model=7, sizes=SIZES):
    """Random embeddings with a common offset (so cosines are far from 0) and a mildly category-driven preference."""
    rng = np.random.default_rng(seed)
    n = sum(sizes.values())
    cats = [c for c, k in sizes.items() for _ in range(k)]
    shift = {c: rng.normal(size=d_model) for c in sizes}
    emb_a = rng.normal(size=(n_layers, n, d_model)) + 1.5 + np.array([shift[c] for c in cats])
    emb_b = rng.normal(size=(n_layers, n, d_model)) + 1.0
    pref = rng.normal(size=n) + np.array([list(sizes).index(c) * 0.3 for c in cats])
    return emb_a.astype(np.float32), emb_b.astype(np.float32), pref, cats


# --------------------------------------------------------------------------- the definitions, as plain loops
def loop_uniformity(rows) -> float:
    """Mean cosine over unordered pairs of distinct rows, each row / (norm + 1e-10), in plain Python."""
    rows = [np.asarray(r, dtype=np.float64) for r in rows]
    if len(rows) < 2:
        return math.nan
    unit = [r / (math.sqrt(sum(v * v for v in r)) + 1e-10) for r in rows]
    sims = [sum(p * q for p, q in zip(unit[i], unit[j])) for i in range(len(unit)) for j in range(i + 1, len(unit))]
    return sum(sims) / len(sims)


def loop_groups(emb_a, emb_b, pref, groups):
    """Per layer and group (in first-seen order): uniformity A, B, UA; per group mean preference, % preferring A."""
    names = list(dict.fromkeys(groups))
    members = {g: [i for i, x in enumerate(groups) if x == g] for g in names}
    ua = [[loop_uniformity(emb_a[l, members[g]]) - loop_uniformity(emb_b[l, members[g]]) for g in names]
          for l in range(emb_a.shape[0])]
    u_a = [[loop_uniformity(emb_a[l, members[g]]) for g in names] for l in range(emb_a.shape[0])]
    mean_pref = [sum(pref[i] for i in members[g]) / len(members[g]) for g in names]
    pct_a = [100.0 * sum(pref[i] > 0 for i in members[g]) / len(members[g]) for g in names]
    return names, np.array(u_a), np.array(ua), np.array(mean_pref), np.array(pct_a)


def uniformity_tol(d_model: int, n_members: int) -> float:
    """Rounding bound of a mean of cosines: each cosine accumulates ~d_model products, the mean ~n^2 terms
    (gamma_m = m u), twice for the two computations compared and twice for the difference of two sides."""
    return 4 * (d_model + n_members) * EPS64


def r_tol(x, x_err: float) -> float:
    """Bound on the difference of two computations of Pearson r(x, .) when x is known to within x_err.

    r moves by at most about 2 * x_err / sd(x) when x moves by x_err (|dr/dx_i| <= 2 / (n sd(x)) summed over n
    terms); the arithmetic of r itself adds about 8 * n * eps (sums of n products, twice, each side).
    """
    return 2 * x_err / np.std(x) + 16 * len(x) * EPS64


def p_tol(r: float, n: int, dr: float) -> float:
    """Bound on the p-value difference implied by an r difference of dr (the two-sided t test of pearsonr)."""
    def p(v):
        v = min(max(v, -1.0), 1.0)
        t = v * math.sqrt((n - 2) / max(1 - v * v, 1e-300))
        return 2 * sps.t.sf(abs(t), n - 2)
    return abs(p(r + dr) - p(r - dr)) + 16 * EPS64


def boot_tol(x, y, idx, x_err: float) -> float:
    """Bound for resampled r's: r_tol on the worst-conditioned resample used (smallest variance ratio)."""
    ratios = [min(np.var(x[i]) / np.var(x), np.var(y[i]) / np.var(y)) for i in idx
              if np.ptp(x[i]) > 0 and np.ptp(y[i]) > 0]
    return r_tol(x, x_err) / math.sqrt(min(ratios))


# --------------------------------------------------------------------------- vectorized == loop
def test_group_uniformity_equals_the_loop():
    emb_a, _, _, cats = _data()
    names = list(dict.fromkeys(cats))
    labels = np.array([[names.index(c) for c in cats]])
    got, counts = levels.group_uniformity(emb_a, labels, len(names))
    want = [[loop_uniformity(emb_a[l, [i for i, c in enumerate(cats) if c == g]]) for g in names]
            for l in range(len(LAYERS))]
    assert got.shape == (3, 1, 6) and counts.tolist() == [list(SIZES.values())]
    assert_allclose(got[:, 0], want, rtol=0, atol=uniformity_tol(7, 50))
    assert abs(levels.uniformity(emb_a[0, :9]) - want[0][0]) <= uniformity_tol(7, 9)


def test_category_level_equals_the_loop():
    emb_a, emb_b, pref, cats = _data()
    block = levels.category_level(emb_a, emb_b, pref, cats, LAYERS, n_bootstrap=500, seed=7)
    names, u_a, ua, mean_pref, pct_a = loop_groups(emb_a, emb_b, pref, cats)
    tol = uniformity_tol(7, 50)
    for l, layer in enumerate(LAYERS):
        entry = block["layer_results"][str(layer)]
        got = entry["categories"]
        assert list(got) == names
        assert_allclose([got[c]["uniformity_a"] for c in names], u_a[l], rtol=0, atol=tol)
        assert_allclose([got[c]["asymmetry"] for c in names], ua[l], rtol=0, atol=2 * tol)
        assert_allclose([got[c]["output_preference"] for c in names], mean_pref, rtol=0,
                        atol=4 * 50 * EPS64 * np.abs(pref).max())
        assert [got[c]["pct_prefer_a"] for c in names] == pytest.approx(pct_a, abs=0)
        assert [got[c]["n_pairs"] for c in names] == list(SIZES.values())
        r, p = sps.pearsonr(ua[l], mean_pref)
        dr = r_tol(ua[l], 2 * tol)
        assert entry["r"] == pytest.approx(r, abs=dr) and entry["p_value"] == pytest.approx(p, abs=p_tol(r, 6, dr))
        assert entry["r"] == entry["_global_stats"]["ua_output_correlation"]
        # the bootstrap over categories, as a loop over the same seeded resamples (degenerate ones skipped)
        idx = np.random.default_rng(7).integers(0, 6, size=(500, 6))
        boot = [sps.pearsonr(ua[l][i], mean_pref[i])[0] for i in idx
                if np.ptp(ua[l][i]) > 0 and np.ptp(mean_pref[i]) > 0]
        lo, hi = np.percentile(boot, [2.5, 97.5])
        db = boot_tol(ua[l], mean_pref, idx, 2 * tol)
        assert entry["ci_lower"] == pytest.approx(lo, abs=db) and entry["ci_upper"] == pytest.approx(hi, abs=db)
        assert entry["includes_zero"] == (not (lo > 0 or hi < 0))
        gs = entry["_global_stats"]
        assert gs["mean_asymmetry"] == pytest.approx(np.mean(ua[l]), abs=2 * tol)
        assert gs["std_asymmetry"] == pytest.approx(np.std(ua[l]), abs=4 * tol)
        means = [np.mean(ua[l][i]) for i in idx]
        assert_allclose(gs["bootstrap_95ci"], np.percentile(means, [2.5, 97.5]), rtol=0, atol=4 * tol)
        assert gs["total_pairs"] == 50
        assert gs["mean_output_preference"] == pytest.approx(np.mean(mean_pref), abs=8 * 50 * EPS64 * np.abs(pref).max())


def test_option_a_seeded_binning_equals_the_loop():
    emb_a, emb_b, pref, _ = _data(seed=1)
    block = levels.option_a_bins(emb_a, emb_b, pref, LAYERS, n_bins=8, n_binnings=3, k_values=(5,),
                                 n_bootstrap=300, seed=11)
    bins = levels.study_binning(50, 8, 11)  # the documented seeded binning
    kept = [g for g in range(8) if (bins == g).sum() >= 2]
    groups = [int(g) for g in bins]
    names, _, ua, mean_pref, _ = loop_groups(emb_a, emb_b, pref, groups)
    order = [names.index(g) for g in kept]
    for l, layer in enumerate(LAYERS):
        entry = block["bootstrap_results"][str(layer)]
        r, p = sps.pearsonr(ua[l][order], mean_pref[order])
        dr = r_tol(ua[l][order], 2 * uniformity_tol(7, 50))
        assert entry["n_bins"] == len(kept)
        assert entry["r"] == pytest.approx(r, abs=dr)
        assert entry["p_value"] == pytest.approx(p, abs=p_tol(r, len(kept), dr))


def test_the_seeded_binning_is_the_studys_legacy_numpy_draw():
    """np.random.seed(42); np.random.randint(0, k, n): the study's call, on the global generator (state restored)."""
    saved = np.random.get_state()
    try:
        for n, k, seed in ((230, 20, 42), (50, 8, 11), (7, 3, 0)):
            np.random.seed(seed)
            legacy = np.random.randint(0, k, n)
            np.random.seed(seed + 1)  # the package's draw must not read (or depend on) the global state
            assert_array_equal(levels.study_binning(n, k, seed), legacy)
    finally:
        np.random.set_state(saved)
    # option_a_bins uses this draw: test_option_a_seeded_binning_equals_the_loop checks its r bin by bin


def test_option_a_distribution_equals_the_loop():
    emb_a, emb_b, pref, _ = _data(seed=2)
    block = levels.option_a_bins(emb_a, emb_b, pref, LAYERS, n_bins=6, n_binnings=15, k_values=(4, 9),
                                 n_bootstrap=200, ci_level=0.9, seed=3)
    z = sps.norm.ppf(0.95)
    for k in (4, 9):
        binnings = levels.random_binnings(50, k, 15, 3)
        assert binnings.shape == (15, 50) and binnings.max() < k
        for l, layer in enumerate(LAYERS):
            rs, ps, excl, drs, dps = [], [], [], [], []
            for labels in binnings:
                names, _, ua, mean_pref, _ = loop_groups(emb_a, emb_b, pref, [int(g) for g in labels])
                keep = [i for i, g in enumerate(names) if (labels == g).sum() >= 2]
                if len(keep) < 3:
                    continue
                r, p = sps.pearsonr(ua[l][keep], mean_pref[keep])
                rs.append(r), ps.append(p)
                drs.append(r_tol(ua[l][keep], 2 * uniformity_tol(7, 50)))
                dps.append(p_tol(r, len(keep), drs[-1]))
                excl.append(abs(math.atanh(r)) * math.sqrt(len(keep) - 3) > z)
            got = block["results_by_k"][str(k)][str(layer)]
            assert got["n_valid"] == len(rs)
            assert got["r_mean"] == pytest.approx(np.mean(rs), abs=max(drs))
            assert got["r_std"] == pytest.approx(np.std(rs), abs=2 * max(drs))
            assert got["p_mean"] == pytest.approx(np.mean(ps), abs=max(dps))
            assert got["share_ci_excludes_zero"] == pytest.approx(np.mean(excl), abs=0)


def test_swapping_every_pair_negates_ua_and_keeps_r():
    emb_a, emb_b, pref, cats = _data(seed=4)
    one = levels.category_level(emb_a, emb_b, pref, cats, LAYERS, n_bootstrap=200)
    two = levels.category_level(emb_b, emb_a, -pref, cats, LAYERS, n_bootstrap=200)
    for layer in map(str, LAYERS):  # negation is exact in floating point, so these hold exactly
        e1, e2 = one["layer_results"][layer], two["layer_results"][layer]
        assert e2["r"] == e1["r"] and e2["p_value"] == e1["p_value"]
        for c in SIZES:
            assert e2["categories"][c]["asymmetry"] == -e1["categories"][c]["asymmetry"]
            assert e2["categories"][c]["output_preference"] == -e1["categories"][c]["output_preference"]
            assert e2["categories"][c]["pct_prefer_a"] == pytest.approx(100 - e1["categories"][c]["pct_prefer_a"],
                                                                         abs=100 * EPS64)


# --------------------------------------------------------------------------- the published files
def test_global_stats_reproduce_the_published_numbers():
    """From the published per-category values at Pythia-6.9B's last layer, the study's global numbers follow."""
    pub = published.load("pythia-6.9b_category_level_last_layer")
    cats = {k: v for k, v in pub.items() if not k.startswith("_")}
    gs = levels.global_stats([c["asymmetry"] for c in cats.values()], [c["output_preference"] for c in cats.values()],
                             [c["n_pairs"] for c in cats.values()], n_bootstrap=1000, seed=42)
    want = pub["_global_stats"]
    assert list(gs) == list(want)
    # the same float64 formulas on the same 6 values: a few roundings of 6-term sums apart (cohens_d, r: ratios)
    for key in ("mean_asymmetry", "std_asymmetry", "cohens_d", "ua_output_correlation", "mean_output_preference"):
        assert gs[key] == pytest.approx(want[key], rel=32 * 6 * EPS64), key
    assert gs["total_pairs"] == want["total_pairs"] == 230
    assert gs["bootstrap_95ci"][0] < gs["mean_asymmetry"] < gs["bootstrap_95ci"][1]  # another RNG than the study's
    by_layer = published.load("pythia-6.9b_category_level_bootstrap_ci")["layer_results"]
    assert gs["ua_output_correlation"] == pytest.approx(by_layer["32"]["r"], rel=32 * 6 * EPS64)


def test_blocks_have_the_published_key_names():
    emb_a, emb_b, pref, cats = _data()
    out = levels.analyse_levels(emb_a, emb_b, pref, cats, LAYERS, n_bootstrap=200, n_bins=10, n_binnings=5)
    assert list(out) == ["category_level", "option_a_bins"]
    json.dumps(out, allow_nan=False)  # strict JSON as it stands
    cat, bins = out["category_level"], out["option_a_bins"]
    pub_ci = published.load("pythia-6.9b_category_level_bootstrap_ci")
    pub_last = published.load("pythia-6.9b_category_level_last_layer")
    pub_bins = published.load("pythia-6.9b_option_a_bins")
    assert {"n_categories", "n_bootstrap", "ci_level", "layer_results"} <= set(cat) & set(pub_ci)
    assert {"method", "k_bins", "n_bootstrap", "bootstrap_results"} <= set(bins) & set(pub_bins)
    assert list(cat["layer_results"]) == list(bins["bootstrap_results"]) == [str(l) for l in LAYERS]
    for layer in map(str, LAYERS):
        entry = cat["layer_results"][layer]
        assert set(pub_ci["layer_results"]["32"]) <= set(entry)
        assert list(entry["_global_stats"]) == list(pub_last["_global_stats"])
        for c, vals in entry["categories"].items():
            assert list(vals) == list(pub_last["ground_truth_numeric"]), c
        assert set(pub_bins["bootstrap_results"]["32"]) <= set(bins["bootstrap_results"][layer])
        assert isinstance(entry["includes_zero"], bool) and isinstance(entry["_global_stats"]["bootstrap_95ci"], list)
    assert list(bins["results_by_k"]) == ["10", "15", "20", "25", "30"]
    assert set(bins["results_by_k"]["20"]["0"]) == {"r_mean", "r_std", "p_mean", "n_valid", "share_ci_excludes_zero"}


def test_levels_table_reads_ours_and_the_published_files_alike():
    emb_a, emb_b, pref, cats = _data()
    ours = levels.analyse_levels(emb_a, emb_b, pref, cats, LAYERS, n_bootstrap=200, n_bins=10, n_binnings=5)
    table = levels_tables.levels_table(ours, num_layers=4)
    assert list(table.columns) == list(levels_tables.COLUMNS)
    assert table["level"].astype(str).tolist() == ["category"] * 3 + ["bins"] * 3
    assert table["relative_depth"].tolist() == [0, 0.5, 1] * 2
    assert table["n"].tolist() == [6] * 3 + [ours["option_a_bins"]["bootstrap_results"]["0"]["n_bins"]] * 3
    row = table.iloc[1]
    assert row["r"] == ours["category_level"]["layer_results"]["2"]["r"]
    pub = levels_tables.published_levels_table(pair_metric="centroid_asymmetry")
    assert len(pub) == 27 and pub["relative_depth"].max() == 1.0
    last = pub[(pub["level"] == "category") & (pub["layer"] == 32)].iloc[0]
    assert last["r"] == -0.8736180006342785 and not last["includes_zero"] and last["n"] == 6
    assert len(levels_tables.distribution_table(ours["option_a_bins"])) == 5 * 3
    cat_rows = levels_tables.category_table(ours["category_level"], 2)
    assert cat_rows["category"].tolist() == list(SIZES)
    scaling = levels_tables.published_scaling_table()
    assert set(scaling["model"]) == {"Pythia-410M", "Pythia-1.4B", "Pythia-6.9B", "Pythia-12B"}
    with pytest.raises(ValueError, match="not among the results' metrics"):
        levels_tables.levels_table({**published.load(published.PAIR_LEVEL)}, pair_metric="nope")


# --------------------------------------------------------------------------- determinism and degenerate input
def test_seeded_and_deterministic():
    emb_a, emb_b, pref, cats = _data(seed=5)
    kw = dict(n_bootstrap=300, n_bins=7, n_binnings=20, k_values=(5, 8))
    one = levels.analyse_levels(emb_a, emb_b, pref, cats, LAYERS, seed=1, **kw)
    assert levels.analyse_levels(emb_a, emb_b, pref, cats, LAYERS, seed=1, **kw) == one
    other = levels.analyse_levels(emb_a, emb_b, pref, cats, LAYERS, seed=2, **kw)
    assert other["category_level"]["layer_results"]["0"]["r"] == one["category_level"]["layer_results"]["0"]["r"]
    assert other["category_level"]["layer_results"]["0"]["ci_lower"] != one["category_level"]["layer_results"]["0"][
        "ci_lower"]
    assert other["option_a_bins"]["results_by_k"] != one["option_a_bins"]["results_by_k"]
    # one k's distribution does not depend on which other k were asked for
    alone = levels.option_a_bins(emb_a, emb_b, pref, LAYERS, seed=1, **{**kw, "k_values": (8,)})
    assert alone["results_by_k"]["8"] == one["option_a_bins"]["results_by_k"]["8"]


def test_a_category_with_one_pair_is_nan_with_a_reason():
    sizes = {**SIZES, "lonely": 1}
    emb_a, emb_b, pref, cats = _data(sizes=sizes)
    block = levels.category_level(emb_a, emb_b, pref, cats, LAYERS, n_bootstrap=200)
    entry = block["layer_results"]["0"]
    lonely = entry["categories"]["lonely"]
    assert lonely["uniformity_a"] is None and lonely["asymmetry"] is None and lonely["n_pairs"] == 1
    assert "left out (fewer than 2 pairs): lonely" in entry["note"]
    assert entry["n_categories"] == 6 and entry["r"] is not None
    names, _, ua, mean_pref, _ = loop_groups(emb_a, emb_b, pref, cats)
    assert entry["r"] == pytest.approx(sps.pearsonr(ua[0][:6], mean_pref[:6])[0],
                                       abs=r_tol(ua[0][:6], 2 * uniformity_tol(7, 51)))
    assert entry["_global_stats"]["total_pairs"] == 50


def test_constant_preference_and_too_few_groups_give_nan_with_a_reason():
    emb_a, emb_b, pref, cats = _data()
    flat = np.full_like(pref, 0.25)
    block = levels.category_level(emb_a, emb_b, flat, cats, LAYERS, n_bootstrap=200)
    entry = block["layer_results"]["0"]
    assert entry["r"] is None and entry["ci_lower"] is None and entry["p_value"] is None
    assert entry["includes_zero"] is True and entry["note"] == "mean preference is constant across categories"
    two = levels.category_level(emb_a, emb_b, pref, ["x"] * 20 + ["y"] * 30, LAYERS, n_bootstrap=200)
    assert two["layer_results"]["0"]["r"] is None
    assert two["layer_results"]["0"]["note"] == "fewer than 3 categories with a defined UA (2)"
    bins = levels.option_a_bins(emb_a, emb_b, flat, LAYERS, n_bins=5, n_binnings=4, k_values=(5,), n_bootstrap=100)
    assert bins["bootstrap_results"]["0"]["r"] is None and "constant" in bins["bootstrap_results"]["0"]["note"]
    assert bins["results_by_k"]["5"]["0"]["n_valid"] == 0 and bins["results_by_k"]["5"]["0"]["r_mean"] is None
    sparse_bins = levels.option_a_bins(emb_a, emb_b, pref, LAYERS, n_bins=200, n_binnings=2, k_values=(5,),
                                       n_bootstrap=100)
    assert sparse_bins["bootstrap_results"]["0"]["n_bins"] < 50  # bins with < 2 pairs are dropped


@pytest.mark.parametrize("kwargs, match", [
    (dict(preference=np.zeros(3)), r"preference must have shape \(50,\)"),
    (dict(layers=[0, 1]), "2 layers given for embeddings of 3 layers"),
    (dict(categories=["a"] * 3), "categories has 3 entries for 50 pairs"),
    (dict(n_bootstrap=0), "n_bootstrap must be a positive integer"),
    (dict(ci_level=1.5), r"ci_level must be in \(0, 1\)"),
])
def test_bad_arguments(kwargs, match):
    emb_a, emb_b, pref, cats = _data()
    args = {**dict(emb_a=emb_a, emb_b=emb_b, preference=pref, categories=cats, layers=LAYERS), **kwargs}
    with pytest.raises(ValueError, match=match):
        levels.category_level(**args)
    nan_emb = emb_a.copy()
    nan_emb[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="emb_a has non-finite values"):
        levels.option_a_bins(nan_emb, emb_b, pref, LAYERS)


def test_plot_levels_draws_each_level_with_its_ci():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ua_helpers.report import plots

    emb_a, emb_b, pref, cats = _data()
    ours = levels.analyse_levels(emb_a, emb_b, pref, cats, LAYERS, n_bootstrap=200, n_bins=10, n_binnings=5)
    fig = plots.plot_levels(levels_tables.levels_table(ours, num_layers=4), levels_tables.published_levels_table())
    ax = fig.axes[0]
    labels = [t.get_text() for t in ax.get_legend().get_texts()]
    assert labels == ["category (n = 6)", "bins (n = 10)", "category (n = 6), published", "bins (n = 20), published"]
    assert len(ax.containers) == 4 and ax.get_xlabel().startswith("relative depth")
    plt.close(fig)
