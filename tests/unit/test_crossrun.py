"""The cross-run table's sign flips and the cross-run page, from hand-made runs (no model)."""
from __future__ import annotations

import json

from runs_fixtures import edit_results, make_run

from ua_helpers.analysis import metrics
from ua_helpers.runs import crossrun, rundir


def test_crossrun_chapter_says_what_depends_on_a_choice(tmp_path):
    """Two runs that differ in pooling alone: the chapter counts the tests that keep their sign, names the flips."""
    from ua_helpers.runs import crossrun

    def set_pooling(pooling, flip=None):
        def edit(res):
            res["parameters"]["pooling"] = pooling
            if flip:
                t = res["results"][flip[0]][flip[1]]
                t.update(r=-t["r"], ci_lower=-t["ci_upper"], ci_upper=-t["ci_lower"])
        return edit

    mean = edit_results(make_run(tmp_path / "mean"), set_pooling("mean"))
    last = edit_results(make_run(tmp_path / "last"), set_pooling("last", flip=("2", "margin_asymmetry")))
    for path in (mean, last):  # the manifest's parameters say the same as results.json
        manifest = json.loads((path / "manifest.json").read_text())
        manifest["parameters"]["pooling"] = json.loads((path / "results.json").read_text())["parameters"]["pooling"]
        (path / "manifest.json").write_text(json.dumps(manifest))
        rundir.seal(path)
    page = crossrun.write_crossrun_page([mean, last], tmp_path / "book").read_text()
    n = len(metrics.METRIC_NAMES) * 3
    assert f"**pooling** (last / mean; 1 pair of runs differing in it alone): {n - 1} of {n} matched tests keep " \
           "their sign" in page
    assert "1 test flip (first pair: 2 margin\\_asymmetry)" in page
    assert "Not isolated by these runs (no two differ in it alone): model, revision, dtype, dataset" in page
    assert "## What holds across the runs" in page and "keep their sign in every other run" in page


def test_sign_flips_on_a_known_table():
    import pandas as pd

    rows = []
    for layer, r, zero in [(0, 0.3, False), (1, 0.1, True), (2, -0.05, True), (3, float("nan"), True),
                           (4, 0.2, True), (5, -0.4, False)]:
        rows.append({"run": "x", "metric": "m", "layer": layer, "depth": layer / 5, "r": r, "includes_zero": zero})
    rows.append({"run": "y", "metric": "m", "layer": 0, "depth": 0.0, "r": 0.2, "includes_zero": True})
    flips = crossrun.sign_flips(pd.DataFrame(rows)).set_index("run")
    x = flips.loc["x"]
    assert (x.n_flips, x.first_flip_layer, x.first_flip_depth, x.flip_depths) == (3, 2, 0.4, [0.4, 0.8, 1.0])
    assert (x.sign_first, x.sign_last, x.n_flips_ci) == ("+", "-", 1)
    assert flips.loc["y"].n_flips == 0 and pd.isna(flips.loc["y"].first_flip_depth)
