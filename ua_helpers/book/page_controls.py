"""The chapter "Controls": what could explain a finding away, drawn and tabled from results.json's ``controls``.

One figure (:func:`ua_helpers.report.plots.plot_controls`): per metric, r by layer beside the random-token band, the
token-embedding line (layer 0) and the shuffled-pairing interval; then the statement-level decomposition, the
lexical covariates, and where the build was given them, the neutral control set's run and the BOS-prefix run.
"""
from __future__ import annotations

import shlex
from typing import Any

from .._io import atomic_write
from ..report import findings, results
from ..report._markdown import MISSING, fmt_ci, fmt_p, fmt_r, md_code, md_text
from ..runs.rundir import Run
from ._md import md_table
from .context import FILES_DIR, BookContext, repo_relative, run_banner

#: The controls figure inside the staged book, and its resolution (420 px wide; see plots.CONTROLS_DPI).
FIGURE = f"{FILES_DIR}/controls.png"


def write_figure(ctx: BookContext) -> str:
    """Draw the controls figure of ``ctx``'s run (with the neutral and BOS runs where given); return its path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from ..report import plots

    random_tokens, shuffled = results.band_frames(ctx.run.results)
    extra = {}
    for label, run in (("neutral-60", ctx.neutral), ("BOS prefix", ctx.bos)):
        if run is not None:
            extra[f"{label}: r"] = results.results_table(run.results)
    fig = plots.plot_controls(results.results_table(ctx.run.results), random_tokens, shuffled, extra=extra)
    path = ctx.book_dir / FIGURE
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=plots.CONTROLS_DPI))
    plt.close(fig)
    return FIGURE


def _statement_table(ctl: dict[str, Any]) -> str:
    rows = [[findings.layer_label(t["layer"]), md_text(t["metric"]), fmt_r(t.get("r_a")), fmt_r(t.get("r_b"))]
            for t in (ctl.get("shuffled_pairing") or {}).get("statement_level") or []]
    return md_table(["layer", "metric", "side A: r(term, NLL(A))", "side B: r(term, NLL(B))"], rows)


def _shuffled_section(res: dict[str, Any]) -> list[str]:
    """How many tests the real pairing carries beyond the re-pairing null, then every test in a dropdown."""
    sp = res["controls"]["shuffled_pairing"]
    rows, n_beyond = [], 0
    for t in sp["tests"]:
        out = findings.beyond(t.get("r_observed"), t.get("null_ci_lower"), t.get("null_ci_upper"))
        n_beyond += out
        rows.append([findings.layer_label(t["layer"]), md_text(t["metric"]), fmt_r(t.get("r_observed")),
                     f"{fmt_r(t.get('null_mean'))} {fmt_ci(t.get('null_ci_lower'), t.get('null_ci_upper'))}",
                     fmt_p(t.get("p_value")),
                     "yes" if out else "no"])
    return [f"In **{n_beyond} of {len(rows)}** tests the real pairing's r lies beyond the null interval on its own "
            "side of 0; in the others the re-paired statements reach it (or go further), so the pair-level r "
            "is a statement-level association in disguise.\n",
            "```{dropdown} Every test: the real pairing beside the re-pairing null\n"
            + md_table(["layer", "metric", "r (real pairing)", "re-paired at random: mean [interval]", "p",
                        "beyond the null"], rows) + "```\n"]


def _covariate_table(ctl: dict[str, Any]) -> str:
    lex = ctl.get("lexical") or {}
    rows = [[md_text(c["name"]), md_text(c.get("description", "")), fmt_r(c.get("r"))]
            for c in lex.get("covariates") or []]
    return md_table(["covariate (B − A)", "what it is", "r with the preference"], rows)


def _other_run_section(title: str, run: Run | None, main: Run, *, what: str, command: str) -> list[str]:
    """The neutral or BOS run's r beside this run's, per metric and layer; or how to make that run."""
    parts = [f"## {title}\n", what + "\n"]
    if run is None:
        parts.append("This build was not given that run. Make it and pass it to the build:\n\n```bash\n"
                     + command + "\n```\n")
        return parts
    ours, theirs = results.results_table(main.results), results.results_table(run.results)
    other = {(int(r.layer), r.metric): r for r in theirs.itertuples()}
    rows = []
    for r in ours.itertuples():
        o = other.get((int(r.layer), r.metric))
        rows.append([findings.layer_label(r.layer), md_text(r.metric), f"{fmt_r(r.r)} {fmt_ci(r.ci_lower, r.ci_upper)}",
                     MISSING if o is None else f"{fmt_r(o.r)} {fmt_ci(o.ci_lower, o.ci_upper)}"])
    name = md_code(run.dataset_name)

    def strongest(t):
        row = t.loc[t["r"].abs().idxmax()]
        return f"{md_text(row.metric)} at {findings.layer_label(row.layer)}, r = {fmt_r(row.r)}"

    ps, rs = main.results["summary"], run.results["summary"]
    parts += [f"That run: model {md_code(run.model.get('name'))} on {name} ({md_text(run.results.get('n_pairs'))} "
              f"pairs), prefix {md_code((run.parameters or {}).get('prefix', 'none'))}; its r is drawn in the "
              f"figure above as a thin line. There, {rs['significant_tests']} of {rs['total_tests']} tests have a "
              f"CI that excludes 0 (uncorrected; here {ps['significant_tests']} of {ps['total_tests']}), and the "
              f"largest |r| is {strongest(theirs)} (here: {strongest(ours)}).\n",
              "```{dropdown} r per layer and metric, this run beside that run\n"
              + md_table(["layer", "metric", "this run: r [CI]", "that run: r [CI]"], rows) + "```\n"]
    return parts


def controls_page(ctx: BookContext) -> str:
    """The "Controls" chapter."""
    run, res = ctx.run, ctx.run.results
    parts = ["# Controls: what could explain a finding away\n", run_banner(run)]
    ctl = res.get("controls")
    if not isinstance(ctl, dict) or "random_tokens" not in ctl:
        parts.append(":::{admonition} This run has no controls\n:class: warning\n\n"
                     "Its `results.json` has no `controls` block: it was made before runs computed them. Run it "
                     "again with this version to fill this chapter.\n:::\n")
        return "\n".join(parts)
    rt, sp = ctl["random_tokens"], ctl["shuffled_pairing"]
    figure = write_figure(ctx)
    caption = ("r with the preference by layer, per metric: this run in blue with its 95% CI; orange, the range of "
               f"r over the random-token baseline's {len(rt['seeds'])} seeds; purple dashed, this run's r at "
               "layer 0 (token embeddings); green, the shuffled-pairing null interval per layer"
               + ("; thin lines, the other runs named in the legend" if ctx.neutral or ctx.bos else "") + ".")
    parts += [
        "A correlation between geometry and preference means little until it is set beside what would produce it "
        "without the model's computation. This run computed three controls from its own extraction, with no "
        "further forward pass; every finding on the [findings page](findings.md) names the ones it survives and "
        "the ones that explain it.\n",
        f"- **Random tokens.** Each token id replaced by a seeded random vector of the model's width, pooled over "
        f"the same positions as the hidden states ({len(rt['seeds'])} seeds). No model at all: what this "
        "representation correlates with comes from which tokens a statement has and how many.\n"
        "- **Layer 0 (token embeddings).** The first index of `hidden_states` is the model's input embedding of "
        "each token, before any block: a deeper layer's r that does not go beyond layer 0's is a property of the "
        "tokens.\n"
        f"- **Shuffled pairing.** Each A statement re-paired with a random B statement ({sp['n_shuffles']:,} "
        "re-pairings). Four metrics and the preference are differences of per-statement terms, so an r inside "
        "this null is a statement-level association: the real pairing adds nothing.\n"
        "- **Lexical covariates.** The partial r given token count (n, log n, 1/√n), character length, a "
        "frequency proxy, the share of digit tokens, the category, the same metric on random tokens and, above "
        "layer 0, at layer 0.\n",
        f"```{{figure}} {figure}\n:name: controls-figure\n:alt: {md_text(caption)}\n\n{md_text(caption)}\n```\n",
        md_text(findings.read_controls(res)) + "\n",
        "## Statement-level or pair-level?\n",
        "Re-pairing keeps every statement's own terms and changes only who is paired with whom.\n",
        *_shuffled_section(res),
        "For the metrics that are a difference of per-statement terms, the r of each side's term with that "
        "statement's own NLL, over the statements of that side: the decomposition behind the null above.\n",
        "```{dropdown} Statement-level decomposition, per layer and metric\n" + _statement_table(ctl) + "```\n",
        "## Lexical covariates\n",
        f"Frequency proxy: {md_text((ctl.get('lexical') or {}).get('frequency_proxy', 'not recorded'))}\n",
        _covariate_table(ctl),
    ]
    run_dir = shlex.quote(repo_relative(run.path))
    parts += _other_run_section(
        "The neutral set", ctx.neutral, run,
        what=("`neutral-60` pairs say one thing in two wordings, with no framing difference between the sides "
              "(see its [data card](data-card-neutral-60.md)). An r as strong there as here is lexical: "
              "it needs no framing."),
        command=f"ua-book run -p dataset neutral-60 --run-dir runs/neutral-60\n"
                f"ua-book build --run-dir {run_dir} --neutral-run-dir runs/neutral-60")
    parts += _other_run_section(
        "With a BOS prefix", ctx.bos, run,
        what=("Without a beginning-of-sequence token, pooling over tokens 1..T−1 drops each statement's first word "
              "and the NLL never scores it. The same run with `prefix bos` pools and scores every word."),
        command=f"ua-book run -p prefix bos --run-dir runs/prefix-bos\n"
                f"ua-book build --run-dir {run_dir} --bos-run-dir runs/prefix-bos")
    return "\n".join(parts)
