"""The generated pages of the book: the run page, the data card, the cross-run chapter, and the page registry.

Each generator takes a :class:`~ua_helpers.book.context.BookContext` and returns the page's MyST Markdown.
:data:`GENERATED_PAGES` maps each page's name (``book/<name>.md`` in ``_toc.yml``) to its generator.
"""
from __future__ import annotations

import re
import shlex
from importlib import resources
from typing import Callable

from ..report._markdown import md_code, md_text
from ..runs import crossrun
from ..runs.config import RunConfig
from ..runs.rundir import Run
from ._md import headline, md_table
from .compare import comparison_page, replication_page
from .context import BookContext, model_identity, repo_relative
from .page_controls import controls_page
from .page_findings import findings_page
from .page_intro import abstract_include, glossary_ladder, references_include
from .page_levels import levels_page

#: Packages whose versions can move a number of the run: the reproducibility box lists each.
NUMERIC_PACKAGES = ("numpy", "scipy", "scikit-learn", "pandas", "torch", "transformers", "matplotlib")
_VERSION_ALIASES = {"scikit-learn": ("scikit-learn", "sklearn", "scikit_learn")}


def run_versions(run: Run) -> tuple[dict[str, str], list[str]]:
    """Return the recorded version of each numeric package (manifest, results, extraction) and those missing."""
    found: dict[str, str] = {}
    for source in (((run.results.get("extraction") or {}).get("versions")), run.results.get("versions"),
                   run.manifest.get("versions")):
        for key, value in (source or {}).items():
            if value:
                found[str(key)] = str(value)
    out, missing = {}, []
    for package in NUMERIC_PACKAGES:
        hit = next((found[k] for k in _VERSION_ALIASES.get(package, (package,)) if k in found), None)
        if hit is None:
            missing.append(package)
        else:
            out[package] = hit
    return out, missing


def run_command(run: Run) -> str:
    """The ``ua-book run`` command that repeats this run: every parameter that differs from the defaults.

    The run folder is :func:`repo_relative`, so the command works from the root of any clone.
    """
    defaults = RunConfig().to_parameters()
    args = ["ua-book", "run", "--run-dir", shlex.quote(repo_relative(run.parameters.get("run_dir") or run.path))]
    for name, value in run.parameters.items():
        if name in ("run_dir", "repo_url") or name not in defaults or value == defaults[name]:
            continue
        if isinstance(value, (list, tuple)):
            value = ",".join(str(v) for v in value)
        args += ["-p", name, shlex.quote("none" if value is None else str(value).lower()
                                         if isinstance(value, bool) else str(value))]
    return " ".join(args)


def _code_block(text: str, language: str = "bash") -> str:
    """A fenced code block that no line of ``text`` can close (the fence outgrows every backtick run)."""
    longest = max((len(r) for r in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}\n"


def reproducibility_box(run: Run) -> str:
    """The box a reader cites: the command, the commit, the numeric packages' versions, the model's weights."""
    versions, missing = run_versions(run)
    commit = run.manifest.get("git_commit") or run.results.get("git_commit")
    ident = model_identity(run.model)
    lines = [":::{admonition} Reproduce this run\n:class: tip\n",
             "The command that repeats it (parameters from `manifest.json`, defaults left out):\n",
             _code_block(run_command(run)),
             f"- **Code**: ua_helpers {md_code((run.manifest.get('versions') or {}).get('ua_helpers'))}, git "
             + (f"commit {md_code(commit)}" if commit else "commit not recorded by this run") + ".",
             "- **Model**: " + ", ".join(md_text(x) for x in (
                 str(run.model.get("name")), ident["variant"], ident["size"], ident["training"],
                 ident["weights"] or "weights as published (no quantization)",
                 f"computed in {run.model.get('dtype') or 'an unrecorded dtype'} on "
                 f"{run.model.get('device') or 'an unrecorded device'}") if x) + ".",
             "- **Packages that compute a number**: "
             + (", ".join(f"{md_text(k)} {md_code(v)}" for k, v in versions.items()) or "none recorded")
             + (f"; not recorded by this run: {', '.join(missing)}" if missing else "") + ".",
             ":::\n"]
    return "\n".join(lines)


def run_page(ctx: BookContext) -> str:
    """The "Run" page: how to repeat the run, then its model, dataset, parameters, versions and files."""
    run = ctx.run
    res_link = ctx.attach(run.path / "results.json", "results.json")
    man_link = ctx.attach(run.path / "manifest.json", "manifest.json")
    table_links = [(name, ctx.attach(run.path / name, name)) for name in run.manifest.get("tables", [])]
    m, d = run.model, run.dataset
    parts = [
        "# Run details\n",
        "Every results page of this book, the six notebooks included, shows this one run. The notebooks are "
        "shown as they were executed; the book does not run them again.\n",
        reproducibility_box(run),
        "## Files\n",
        f"- {{download}}`results.json <{res_link}>`: every correlation with its confidence interval, in the "
        "original notebook's schema plus this project's additions (dataset, parameters).\n"
        f"- {{download}}`manifest.json <{man_link}>`: the run's parameters, model, dataset and versions.\n"
        + "".join(f"- {{download}}`{md_text(name)} <{link}>`: every statistic of every (layer, metric) test, one "
                  "row each (the notebooks and pages show a few columns of it).\n" for name, link in table_links),
        "## Headline\n",
        f"{headline(run.results)}, without correction for multiple comparisons (see {{ref}}`multiple-tests`).\n",
        "## Model\n",
        md_table(["field", "value"], [[md_text(k), md_code(v)] for k, v in m.items()]),
        "## Dataset\n",
        md_table(["field", "value"], [[md_text(k), md_code(v)] for k, v in d.items()]),
        "## Parameters\n",
        "The run folder is shown as the reproduce command names it, relative to the repository.\n",
        md_table(["parameter", "value"], [[md_text(k), md_code(repo_relative(v) if k == "run_dir" and v else v)]
                                          for k, v in run.parameters.items()]),
    ]
    versions = run.manifest.get("versions") or {}
    if versions:
        parts += ["## Versions\n",
                  md_table(["package", "version"], [[md_text(k), md_code(v)] for k, v in versions.items()])]
    timing = [[k, md_text(run.manifest[k])] for k in ("started", "finished") if run.manifest.get(k)]
    if timing:
        parts += ["## Timing\n", md_table(["", "time"], timing)]
    return "\n".join(parts)


def _bundled_card(name: str) -> str:
    """A bundled dataset's data card, as shipped in the package, under a page title."""
    card = (resources.files("ua_helpers.inputs") / "datasets" / f"{name}.md").read_text(encoding="utf-8")
    lines = card.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return (f"# Data card: {name}\n\n"
            f"This is the data card shipped with the package as `ua_helpers/datasets/{name}.md`; "
            "\"this folder\" below is `ua_helpers/datasets/`.\n" + "\n".join(lines) + "\n")


def data_card_page(ctx: BookContext) -> str:
    """The bundled replication set's data card, as shipped in the package."""
    return _bundled_card("replication-230")


def neutral_card_page(ctx: BookContext) -> str:
    """The bundled neutral control set's data card, as shipped in the package."""
    return _bundled_card("neutral-60")


def crossrun_page(ctx: BookContext) -> str:
    """Across runs: which findings hold across models, checkpoints and design choices, from a sweep's runs."""
    if ctx.sweep_root is None:
        commands = ("ua-book sweep examples/sweep-embedded.yaml --root runs/sweep-embedded\n"
                    f"ua-book build --run-dir {shlex.quote(repo_relative(ctx.run.path))} "
                    "--sweep-root runs/sweep-embedded")
        return ("# Across models and checkpoints\n\n"
                ":::{admonition} No sweep was given to this build\n:class: note\n\n"
                "This chapter follows the findings across several runs: which keep their sign and evidence level "
                "when the pooling, the dtype, the dataset or the orientation changes, and which depend on the "
                "choice; and r against relative depth, one line per run. The embedded model's sweep runs offline "
                "(`examples/sweep-pythia.yaml` is the same across Pythia sizes and checkpoints, on a GPU):\n\n"
                + _code_block(commands) + ":::\n")
    page = crossrun.write_crossrun_page(crossrun.sweep_run_dirs(ctx.sweep_root), ctx.book_dir)
    return page.read_text(encoding="utf-8")


#: Pages written into the staged ``book/`` folder at build time: name -> generator. Each needs an entry
#: ``book/<name>`` in ``_toc.yml``. To add a chapter, add a generator here and a line to the table of contents.
GENERATED_PAGES: dict[str, Callable[[BookContext], str]] = {
    "run": run_page,
    "findings": findings_page,
    "controls": controls_page,
    "data-card-neutral-60": neutral_card_page,
    "levels": levels_page,
    "comparison": comparison_page,
    "replication": replication_page,
    "data-card-replication-230": data_card_page,
    "crossrun": crossrun_page,
}

#: Fragments written next to the pages and included by a prose page (not pages: no ``_toc.yml`` entry).
GENERATED_INCLUDES: dict[str, Callable[[BookContext], str]] = {
    "abstract": abstract_include,
    "glossary-ladder": glossary_ladder,
    "references": references_include,
}
