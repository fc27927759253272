"""Which results of several runs depend on a design choice: sign and evidence level across runs.

Runs of a sweep differ in design choices (:data:`CHOICES`: model, revision, pooling, dtype, dataset,
orientation). A (layer, metric) test *keeps* across two runs when r has the same sign in both and the test
reaches the same evidence level. The level is the one ``results.json`` records in its ``evidence`` block where
it has one; a run without it has only two levels: the seed's uncorrected criterion (the CI excludes 0) or none.
Tests of runs with different depths are matched by normalized depth (``layer / num_layers``), nearest layer.

:func:`choice_effects` isolates one choice at a time: it compares only pairs of runs that differ in that choice
and in nothing else of :data:`CHOICES`. :func:`stable_findings` follows the first run's findings through every
run; :func:`stability_markdown` says both in words for the cross-run chapter.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from ..report._markdown import fmt_r, md_table_escaped, md_text
from .rundir import Run

#: The design choices compared, in the order the page names them.
CHOICES = ("model", "revision", "pooling", "dtype", "dataset", "orientation")
#: The level a run without an evidence block reaches at most, and its name.
UNCORRECTED = (1, "CI excludes 0 (uncorrected)")


def run_choices(run: Run) -> dict[str, Any]:
    """Return one run's value of each choice (resolved dtype, the dataset's name, orientation default as-given).

    Parameters
    ----------
    run : dict
        A complete run, as :func:`ua_helpers.runs.rundir.load_run` reads it.
    """
    res, man = run.results, run.manifest
    params = {**(man.get("parameters") or {}), **(res.get("parameters") or {})}
    model, dataset = run.model, run.dataset
    return {"model": res.get("model") or params.get("model"), "revision": params.get("revision"),
            "pooling": params.get("pooling", "mean"), "dtype": model.get("dtype") or params.get("dtype"),
            "dataset": dataset.get("name") or params.get("dataset"),
            "orientation": params.get("orientation", "as-given")}


def run_tests(run: Run):
    """Return one run's tests with sign and evidence level.

    Returns
    -------
    pandas.DataFrame
        One row per (layer, metric): layer, depth, metric, r, sign (-1, 0, 1; 0 also for an undefined r), level,
        level_name, has_ladder (whether the level comes from an evidence block).
    """
    import pandas as pd

    res = run.results
    num_layers = int(res.get("num_layers") or max(int(k) for k in res["results"]) or 1)
    ladder = {(int(t["layer"]), t["metric"]): t for t in ((res.get("evidence") or {}).get("tests") or [])}
    rows = []
    for layer, tests in res["results"].items():
        for metric, t in tests.items():
            r = np.nan if t.get("r") is None else float(t["r"])
            key = (int(layer), metric)
            if key in ladder:
                level, name = int(ladder[key]["level"]), str(ladder[key]["level_name"])
            else:
                lo, hi = t.get("ci_lower"), t.get("ci_upper")
                excl = lo is not None and hi is not None and (float(lo) > 0 or float(hi) < 0)
                level, name = UNCORRECTED if excl else (0, "none")
            rows.append({"layer": int(layer), "depth": int(layer) / num_layers, "metric": metric, "r": r,
                         "sign": 0 if np.isnan(r) else int(np.sign(r)), "level": level, "level_name": name,
                         "has_ladder": key in ladder})
    return pd.DataFrame(rows).sort_values(["metric", "depth"], kind="stable").reset_index(drop=True)


def match(first, second):
    """Pair each test of ``first`` with the test of ``second`` for the same metric at the nearest depth.

    Returns
    -------
    pandas.DataFrame
        ``first``'s columns plus ``other_layer``, ``other_sign``, ``other_level``; a metric missing from
        ``second`` is left out. Levels are compared on the scale both runs have: where either run lacks an
        evidence block, both are cut to the uncorrected level.
    """
    import pandas as pd

    out = []
    for metric, rows in first.groupby("metric", sort=False):
        other = second[second["metric"] == metric]
        if other.empty:
            continue
        depths = other["depth"].to_numpy()
        for row in rows.itertuples(index=False):
            o = other.iloc[int(np.argmin(np.abs(depths - row.depth)))]
            out.append({**row._asdict(), "other_layer": int(o["layer"]), "other_sign": int(o["sign"]),
                        "other_level": int(o["level"]), "other_has_ladder": bool(o["has_ladder"])})
    frame = pd.DataFrame(out)
    if frame.empty:
        return frame
    cut = ~(frame["has_ladder"] & frame["other_has_ladder"])
    frame["level_cmp"] = np.where(cut, np.minimum(frame["level"], UNCORRECTED[0]), frame["level"])
    frame["other_level_cmp"] = np.where(cut, np.minimum(frame["other_level"], UNCORRECTED[0]), frame["other_level"])
    frame["same_sign"] = frame["sign"] == frame["other_sign"]
    frame["same_level"] = frame["level_cmp"] == frame["other_level_cmp"]
    return frame


def choice_effects(runs: Sequence[Run]):
    """For each choice, compare the runs that differ in that choice alone.

    Returns
    -------
    pandas.DataFrame
        One row per choice: choice, n_run_pairs (pairs of runs differing in it alone), values (what it was set
        to, e.g. ``"mean / last"``), n_tests (matched tests over those pairs), sign_kept, level_kept,
        both_kept, flipped (``"layer metric"`` strings of the tests whose sign changed, first pair of runs).
    """
    import pandas as pd

    chosen = [run_choices(r) for r in runs]
    tests = [run_tests(r) for r in runs]
    rows = []
    for choice in CHOICES:
        pairs = [(i, j) for i in range(len(runs)) for j in range(i + 1, len(runs))
                 if chosen[i][choice] != chosen[j][choice]
                 and all(chosen[i][c] == chosen[j][c] for c in CHOICES if c != choice)]
        values = sorted({str(chosen[k][choice]) for p in pairs for k in p})
        frames = [match(tests[i], tests[j]) for i, j in pairs]
        frame = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
        flipped = [] if not frames or frames[0].empty else [
            f"{row.layer} {row.metric}" for row in frames[0].itertuples() if not row.same_sign]
        rows.append({"choice": choice, "n_run_pairs": len(pairs), "values": " / ".join(values),
                     "n_tests": len(frame), "sign_kept": int(frame["same_sign"].sum()) if len(frame) else 0,
                     "level_kept": int(frame["same_level"].sum()) if len(frame) else 0,
                     "both_kept": int((frame["same_sign"] & frame["same_level"]).sum()) if len(frame) else 0,
                     "flipped": flipped})
    return pd.DataFrame(rows)


def stable_findings(runs: Sequence[Run], *, min_level: int = 1):
    """Follow the first run's findings (tests at ``min_level`` or higher) through every other run.

    Returns
    -------
    pandas.DataFrame
        One row per finding of the first run: layer, metric, r, level, level_name, n_runs (other runs it was
        matched in), sign_kept (in how many of them r has the same sign), level_kept (same evidence level),
        lost_in (names of the runs where the sign or the level changed).
    """
    import pandas as pd

    base = run_tests(runs[0])
    findings = base[base["level"] >= min_level]
    rows = []
    others = [(r.name, match(findings, run_tests(r))) for r in runs[1:]]
    for row in findings.itertuples(index=False):
        sign_kept = level_kept = n = 0
        lost = []
        for name, m in others:
            hit = m[(m["layer"] == row.layer) & (m["metric"] == row.metric)] if not m.empty else m
            if hit.empty:
                continue
            n += 1
            s, lv = bool(hit["same_sign"].iat[0]), bool(hit["same_level"].iat[0])
            sign_kept += s
            level_kept += lv
            if not (s and lv):
                lost.append(name)
        rows.append({"layer": row.layer, "metric": row.metric, "r": row.r, "level": row.level,
                     "level_name": row.level_name, "n_runs": n, "sign_kept": sign_kept, "level_kept": level_kept,
                     "lost_in": lost})
    return pd.DataFrame(rows, columns=["layer", "metric", "r", "level", "level_name", "n_runs", "sign_kept",
                                       "level_kept", "lost_in"])


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def stability_markdown(effects, stable, base_run: str) -> str:
    """The chapter's result in words: which findings keep sign and evidence level, which depend on a choice.

    Parameters
    ----------
    effects : pandas.DataFrame
        From :func:`ua_helpers.runs.choices.choice_effects`.
    stable : pandas.DataFrame
        From :func:`ua_helpers.runs.choices.stable_findings` (the first run's findings).
    base_run : str
        The first run's name.
    """
    parts = ["## What holds across the runs\n"]
    if stable.empty:
        parts.append(f"The first run, {md_text(base_run)}, has no test whose CI excludes zero, so there is no "
                     "finding to follow across the runs.\n")
    else:
        n = len(stable)
        both = stable[(stable["sign_kept"] == stable["n_runs"]) & (stable["level_kept"] == stable["n_runs"])]
        sign = stable[stable["sign_kept"] == stable["n_runs"]]
        parts.append(
            f"The first run, {md_text(base_run)}, has {_plural(n, 'test')} whose CI excludes zero (the evidence "
            f"level each reached is below). **{len(sign)} of {n} keep their sign in every other run, and "
            f"{len(both)} of {n} keep their evidence level as well**"
            + ("; the rest depend on at least one of the choices that differ between the runs" if len(both) < n
               else "") + ". A test keeps its level when it reaches the same rung of the evidence "
            "ladder in both runs (where a run has no ladder, only \"CI excludes 0, uncorrected\" is compared).\n")
        rows = [[int(r.layer), r.metric, fmt_r(r.r), r.level_name, f"{r.sign_kept} of {r.n_runs}",
                 f"{r.level_kept} of {r.n_runs}", list(r.lost_in)]
                for r in stable.sort_values(["level", "layer"], ascending=[False, True]).itertuples()]
        parts.append(md_table_escaped(["layer", "metric", "r (first run)", "evidence level", "sign kept", "level kept",
                                "changed in"], rows))
    parts.append("## What depends on a choice\n")
    isolated = effects[effects["n_run_pairs"] > 0]
    if isolated.empty:
        parts.append("No two runs differ in a single choice, so no choice's effect can be isolated here; "
                     "a sweep that varies one parameter at a time can.\n")
    else:
        sentences = []
        for e in isolated.itertuples():
            flips = e.n_tests - e.sign_kept
            sentences.append(
                f"- **{e.choice}** ({md_text(e.values)}; {_plural(e.n_run_pairs, 'pair')} of runs differing in it "
                f"alone): {e.sign_kept} of {e.n_tests} matched tests keep their sign and {e.level_kept} their "
                f"evidence level; {_plural(flips, 'test')} flip"
                + (f" (first pair: {md_text(', '.join(e.flipped[:6]))}{'…' if len(e.flipped) > 6 else ''})"
                   if e.flipped else "") + ".")
        parts.append("Each line compares only runs that differ in that one choice, so what changes is due to it "
                     "(and to bootstrap noise near a threshold):\n\n" + "\n".join(sentences) + "\n")
    missing = effects[effects["n_run_pairs"] == 0]["choice"].tolist()
    if missing:
        parts.append(f"Not isolated by these runs (no two differ in it alone): {', '.join(missing)}.\n")
    return "\n".join(parts)
