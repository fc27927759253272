"""Figures sized for a page: a robust axis range with the clipped values marked, coinciding metrics drawn once,
labelled axes on every panel, legends off the data, and text no smaller than the page can show."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

from ua_helpers.analysis import metrics
from ua_helpers.report import plots  # noqa: E402

LAYERS = [0, 4, 8]
NAMES = list(metrics.METRIC_NAMES)


@pytest.fixture(autouse=True)
def _close():
    yield
    plt.close("all")


def _texts(fig):
    return [t for t in fig.findobj(matplotlib.text.Text) if t.get_text().strip() and t.get_visible()]


def _check_page_size(fig):
    assert fig.get_size_inches()[0] <= plots.WIDTH
    small = [(t.get_text(), t.get_fontsize()) for t in _texts(fig) if t.get_fontsize() < plots.TICK_PT]
    assert not small, small
    for ax in fig.axes:
        if ax.axison and ax.get_label() != "<colorbar>":
            assert ax.get_xlabel() and ax.get_ylabel(), ax.get_title()


def test_robust_limits_keep_the_bulk_and_leave_ordinary_data_alone():
    rng = np.random.default_rng(0)
    bulk = rng.normal(size=(3, 200))
    assert plots.robust_limits(bulk) is None  # nothing far out: the full range is readable
    spiked = bulk.copy()
    spiked[1, :3] = [3000.0, -2500.0, 900.0]
    lo, hi = plots.robust_limits(spiked)
    assert -10 < lo < -2 and 2 < hi < 10  # the normal bulk (|x| < ~4) fills the axis
    assert plots.robust_limits(np.full((2, 5), np.nan)) is None


def test_metric_distributions_mark_the_values_beyond_the_axis():
    rng = np.random.default_rng(1)
    values = rng.normal(size=(len(LAYERS), len(NAMES), 120))
    values[2, 4, :2] = [3000.0, -3000.0]  # margin_asymmetry at layer 8
    fig = plots.plot_metric_distributions(values, LAYERS, NAMES)
    _check_page_size(fig)
    margin = fig.axes[4]
    assert margin.get_ylim()[1] < 100 and "2 values beyond the axis" in margin.get_title()
    assert "±3,000" in margin.get_title()
    assert "beyond" not in fig.axes[0].get_title()


def test_strongest_draws_coinciding_metrics_once():
    rng = np.random.default_rng(2)
    values = rng.normal(size=(len(LAYERS), len(NAMES), 50))
    preference = rng.normal(size=50)
    table = pd.DataFrame([{"layer": l, "metric": m, "r": r} for (l, m), r in zip(
        [(l, m) for l in LAYERS for m in NAMES], rng.uniform(-0.1, 0.1, len(LAYERS) * len(NAMES)))])
    table.loc[(table["layer"] == 0) & (table["metric"] == NAMES[0]), "r"] = -0.40
    table.loc[(table["layer"] == 0) & (table["metric"] == NAMES[1]), "r"] = -0.39
    groups = [{"layer": 0, "metrics": [NAMES[0], NAMES[1]]}]
    cats = ["x", "y"] * 25
    fig = plots.plot_strongest(values, preference, table, LAYERS, NAMES, cats, n=3, coinciding=groups)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(titles) == 3 and sum(t.startswith("layer 0 ") for t in titles) == 1  # one panel for the pair
    assert titles[0].startswith(f"layer 0 {NAMES[0]}\n(= {NAMES[1]})")
    assert fig.legends and not any(ax.get_legend() for ax in fig.axes)  # one legend, outside the panels
    _check_page_size(fig)
    plain = plots.plot_strongest(values, preference, table, LAYERS, NAMES, cats, n=3)
    assert [ax.get_xlabel() for ax in plain.axes][:2] == [f"layer 0 {NAMES[0]}", f"layer 0 {NAMES[1]}"]


def test_layer_correlations_and_confounds_fit_a_page():
    rows = [{"layer": l, "metric": m, "r": 0.1, "ci_lower": -0.1, "ci_upper": 0.3, "partial_all_r": 0.05,
             "partial_all_ci_lower": -0.1, "partial_all_ci_upper": 0.2} for l in LAYERS for m in NAMES]
    for fig in (plots.plot_layer_correlations(pd.DataFrame(rows), n_pairs=60), plots.plot_confounds(pd.DataFrame(rows))):
        _check_page_size(fig)
        legend_axes = [ax for ax in fig.axes if ax.get_legend() is not None]
        assert all(not ax.axison for ax in legend_axes)  # the legend sits in a spare panel, not on data


def test_layer_correlations_grey_a_metric_where_it_coincides_with_an_earlier_panel():
    rows = [{"layer": l, "metric": m, "r": 0.2, "ci_lower": 0.1, "ci_upper": 0.3} for l in LAYERS for m in NAMES]
    groups = [{"layer": 0, "metrics": [NAMES[0], NAMES[1]]}, {"layer": 8, "metrics": [NAMES[0], NAMES[1]]}]
    fig = plots.plot_layer_correlations(pd.DataFrame(rows), coinciding=groups)
    first, second = fig.axes[0], fig.axes[1]
    assert first.get_title() == NAMES[0]  # the earlier panel draws the finding
    assert second.get_title() == f"{NAMES[1]}\n(grey: = {NAMES[0]})"
    blue = [c for c in second.containers if c.get_label() == "Pearson r, bootstrap CI"]
    grey = [c for c in second.containers if c.get_label() == "the same finding as an earlier panel"]
    assert list(blue[0].lines[0].get_xdata()) == [4]  # layers 0 and 8 are the earlier panel's finding
    assert list(grey[0].lines[0].get_xdata()) == [0, 8]
    legend = next(ax.get_legend() for ax in fig.axes if ax.get_legend() is not None)
    assert "the same finding as an earlier panel" in [t.get_text() for t in legend.get_texts()]
