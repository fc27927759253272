"""The generated pages of the book: the run page, the data card, the cross-run chapter, and the page registry.

Each generator takes a :class:`~ua_helpers.book.context.BookContext` and returns the page's MyST Markdown.
:data:`GENERATED_PAGES` maps each page's name (``book/<name>.md`` in ``_toc.yml``) to its generator.
"""
from __future__ import annotations

from importlib import resources
from typing import Callable

from .. import results
from ._md import _code, _cell, headline, md_table
from .compare import comparison_page, replication_page
from .context import BookContext


def run_page(ctx: BookContext) -> str:
    """The "Run" page: model, dataset, parameters, versions and the run's files, from manifest.json."""
    run = ctx.run
    res_link = ctx.attach(run.path / "results.json", "results.json")
    man_link = ctx.attach(run.path / "manifest.json", "manifest.json")
    m, d = run.model, run.dataset
    parts = [
        "# Run details\n",
        "Every results page of this book, the six notebooks included, shows this one run. The notebooks are "
        "shown as they were executed; the book does not run them again.\n",
        "## Files\n",
        f"- {{download}}`results.json <{res_link}>`: every correlation with its confidence interval, in the "
        "seed notebook's schema plus this project's additions (dataset, parameters).\n"
        f"- {{download}}`manifest.json <{man_link}>`: the run's parameters, model, dataset and versions.\n",
        "## Headline\n",
        f"{headline(run.results)}, without correction for multiple comparisons (see {{ref}}`multiple-tests`).\n",
        "## Model\n",
        md_table(["field", "value"], [[k, _code(v)] for k, v in m.items()]),
        "## Dataset\n",
        md_table(["field", "value"], [[k, _code(v)] for k, v in d.items()]),
        "## Parameters\n",
        md_table(["parameter", "value"], [[k, _code(v)] for k, v in run.parameters.items()]),
    ]
    versions = run.manifest.get("versions") or {}
    if versions:
        parts += ["## Versions\n", md_table(["package", "version"], [[k, _code(v)] for k, v in versions.items()])]
    timing = [[k, _cell(run.manifest[k])] for k in ("started", "finished") if run.manifest.get(k)]
    if timing:
        parts += ["## Timing\n", md_table(["", "time"], timing)]
    return "\n".join(parts)



def data_card_page(ctx: BookContext) -> str:
    """The bundled dataset's data card, as shipped in the package."""
    card = (resources.files("ua_helpers") / "datasets" / "replication-230.md").read_text(encoding="utf-8")
    lines = card.splitlines()
    if lines and lines[0].startswith("# "):
        lines = lines[1:]
    return ("# Data card: replication-230\n\n"
            "This is the data card shipped with the package as `ua_helpers/datasets/replication-230.md`; "
            "\"this folder\" below is `ua_helpers/datasets/`.\n" + "\n".join(lines) + "\n")


def crossrun_page(ctx: BookContext) -> str:
    """Across models and checkpoints: from a sweep's run directories, or how to make one."""
    if ctx.sweep_root is None:
        return ("# Across models and checkpoints\n\n"
                ":::{admonition} No sweep was given to this build\n:class: note\n\n"
                "This chapter compares runs of several models or training checkpoints (r against relative depth, "
                "one line per run, and where the sign flips). Make a sweep and pass its folder:\n\n"
                "```bash\nua-book sweep examples/sweep-pythia.yaml --root runs/sweep-pythia\n"
                f"ua-book build --run-dir {ctx.run.path} --sweep-root runs/sweep-pythia\n```\n:::\n")
    from .. import crossrun

    page = crossrun.write_crossrun_page(crossrun.sweep_run_dirs(ctx.sweep_root), ctx.book_dir)
    return page.read_text(encoding="utf-8")


#: Pages written into the staged ``book/`` folder at build time: name -> generator. Each needs an entry
#: ``book/<name>`` in ``_toc.yml``. To add a chapter, add a generator here and a line to the table of contents.
GENERATED_PAGES: dict[str, Callable[[BookContext], str]] = {
    "run": run_page,
    "comparison": comparison_page,
    "replication": replication_page,
    "data-card-replication-230": data_card_page,
    "crossrun": crossrun_page,
}

