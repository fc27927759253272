"""Build the HTML book from a completed run: stage the sources, generate the data pages, run Jupyter Book.

:func:`build_book` copies ``_config.yml``, ``_toc.yml`` and ``book/`` into a staging folder, adds the run's
executed notebooks, writes the pages that depend on the run's data (:data:`GENERATED_PAGES`) and builds the copy
with ``jupyter-book build -W -n --keep-going``. Notebooks are never executed here.

This module is also a small Sphinx extension (``extra_extensions: [ua_helpers.book]`` in ``_config.yml``): it
serves MathJax from the book's own ``_static/mathjax/`` folder instead of a CDN, so a built book fetches nothing
from the network when it is read.
"""
from __future__ import annotations

import html
import importlib.util
import json
import math
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Callable

from . import data, results
from ._io import sha256_file

#: The project's root (where ``_config.yml`` and ``_toc.yml`` live) for a checkout or an editable install.
PROJECT_ROOT = Path(__file__).resolve().parents[1]
#: What of the book's source is staged: configuration, table of contents, prose pages and static files.
BOOK_SOURCES = ("_config.yml", "_toc.yml", "book")
#: The run's executed notebooks, in reading order (``RUN_DIR/notebooks/<name>.ipynb``).
NOTEBOOKS = ("01_setup", "02_extraction", "03_metrics", "04_correlation", "05_visualization", "06_summary")
#: Where generated pages put the files their readers can download (relative to the staged ``book/``).
FILES_DIR = "files"
BUILD_LOG_TAIL = 60


class BookError(RuntimeError):
    """A book that cannot be built: an incomplete run, a missing input, or a failed Jupyter Book build."""


# --------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class Run:
    """A completed run directory: its manifest and its results."""

    path: Path
    manifest: dict[str, Any]
    results: dict[str, Any]

    @property
    def model(self) -> dict[str, Any]:
        return self.manifest.get("model") or {"name": self.results.get("model")}

    @property
    def dataset(self) -> dict[str, Any]:
        return self.manifest.get("dataset") or self.results.get("dataset") or {}

    @property
    def parameters(self) -> dict[str, Any]:
        return self.manifest.get("parameters") or self.results.get("parameters") or {}

    @property
    def dataset_name(self) -> str:
        return str(self.dataset.get("name") or "unknown dataset")


def load_run(run_dir: str | os.PathLike) -> Run:
    """Read a run directory made by ``ua-book run``; raise :class:`BookError` unless it is complete.

    A run is complete when ``manifest.json`` says ``"status": "complete"`` and ``results.json`` has the seed's
    schema.
    """
    path = Path(run_dir).expanduser()
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise BookError(f"{path} is not a run directory (it has no manifest.json). "
                        f"Make one with: ua-book run --run-dir {path}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BookError(f"{manifest_path} is not valid JSON: {exc}") from None
    status = manifest.get("status")
    if status != "complete":
        raise BookError(f"the run in {path} is not complete (manifest status {status!r}, not 'complete'). "
                        f"Run it again: ua-book run --run-dir {path}")
    try:
        res = results.load_results(path / "results.json")
    except (FileNotFoundError, ValueError) as exc:
        raise BookError(f"the run in {path} has no usable results.json: {exc}") from None
    return Run(path, manifest, res)


# --------------------------------------------------------------------------- reference results
@dataclass(frozen=True)
class Reference:
    """Results to compare a run with: ``results`` (``None`` when they could not be had, ``note`` saying why),
    ``about`` (where they come from, for readers) and whether they are the published Pythia-6.9B file."""

    results: dict[str, Any] | None = None
    about: str = ""
    published: bool = False
    note: str = "No reference results were given to this build."


def load_reference(reference: str | os.PathLike | None) -> Reference:
    """Read the reference results; ``"published"`` that cannot be had (offline) gives a note, not an error.

    A path or URL that cannot be read raises :class:`BookError`: it was asked for by name.
    """
    if reference is None:
        return Reference()
    src = os.fspath(reference)
    try:
        res = results.load_results(src)
    except (FileNotFoundError, ValueError) as exc:
        if src == "published":
            return Reference(note=f"The published results could not be loaded: {exc}")
        raise BookError(f"the reference results {src} cannot be read: {exc}") from None
    if src in ("published", results.PUBLISHED_URL):
        return Reference(res, f"the published file `{results.PUBLISHED_URL}` (SHA-256 "
                              f"`{results.PUBLISHED_SHA256}`, verified)", published=True)
    if src.startswith(("http://", "https://")):
        return Reference(res, f"`{src}`")
    sha = sha256_file(src)
    published = sha == results.PUBLISHED_SHA256
    return Reference(res, f"`{Path(src).name}` (SHA-256 `{sha}`"
                          + (", byte for byte the published file)" if published else ")"), published=published)


# --------------------------------------------------------------------------- generated pages
@dataclass
class BookContext:
    """Everything a generated page may draw on: the run, the second run for the replication chapter (or
    ``None``), the reference results for the comparison, and a sweep's root folder for the cross-run chapter (or
    ``None``). ``book_dir`` is the staged ``book/`` folder."""

    run: Run
    book_dir: Path
    replication: Run | None = None
    reference: Reference = field(default_factory=Reference)
    sweep_root: Path | None = None

    def attach(self, src: Path, name: str) -> str:
        """Copy ``src`` next to the generated pages for a ``{download}`` link; return its path from a page."""
        rel = f"{FILES_DIR}/{name}"
        (self.book_dir / FILES_DIR).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, self.book_dir / rel)
        return rel


def _is_missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def _fmt_r(r: Any) -> str:
    return "n/a" if _is_missing(r) else f"{float(r):+.3f}"


def _fmt_ci(lo: Any, hi: Any) -> str:
    return "n/a" if _is_missing(lo) or _is_missing(hi) else f"[{float(lo):+.3f}, {float(hi):+.3f}]"


def _fmt_test(r: Any, lo: Any, hi: Any) -> str:
    return f"{_fmt_r(r)} {_fmt_ci(lo, hi)}" if not _is_missing(r) else "n/a"


def _excludes_zero(lo: Any, hi: Any) -> bool:
    """The CI lies wholly above or below zero (an undefined CI does not)."""
    return not (_is_missing(lo) or _is_missing(hi)) and (float(lo) > 0 or float(hi) < 0)


def _cell(value: Any) -> str:
    if value is None:
        return "–"
    if isinstance(value, (list, tuple)):
        value = ", ".join(str(v) for v in value)
    elif isinstance(value, dict):
        value = ", ".join(f"{k}: {v}" for k, v in value.items())
    return str(value).replace("|", "\\|").replace("\n", " ")


def _code(value: Any) -> str:
    text = _cell(value)
    return text if text == "–" else f"`{text}`"


def md_table(headers: list[str], rows: list[list[Any]]) -> str:
    """A Markdown table (cells are escaped for ``|`` and newlines)."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def _sha_short(sha: Any) -> str:
    return f"{sha[:12]}…" if isinstance(sha, str) and len(sha) > 12 else _cell(sha)


def headline(res: dict[str, Any], *, bold: bool = False) -> str:
    """The seed's headline count: "33 of 45 tests have a 95% CI that excludes zero"."""
    s = res["summary"]
    ci_level = (res.get("parameters") or {}).get("ci_level") or 0.95
    count = f"{s['significant_tests']} of {s['total_tests']}"
    return f"{f'**{count}**' if bold else count} tests have a {ci_level:.0%} CI that excludes zero"


def run_line(run: Run) -> str:
    """One line naming a run: model (revision, dtype, device), dataset (pairs, SHA-256)."""
    m, d = run.model, run.dataset
    model_bits = ", ".join(str(m[k]) for k in ("revision", "dtype", "device") if m.get(k))
    return (f"model `{m.get('name')}`" + (f" ({model_bits})" if model_bits else "")
            + f" on dataset `{run.dataset_name}` ({d.get('n_pairs', run.results.get('n_pairs'))} pairs, "
            f"SHA-256 `{d.get('sha256', 'unknown')}`)")


def run_banner(run: Run) -> str:
    """The box at the top of every generated results page: which run its numbers come from."""
    return (f":::{{admonition}} Run\n:class: note\n\nThe numbers on this page come from the run of "
            f"{run_line(run)}. Every parameter is listed on the [run page](run.md).\n:::\n")


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


def _describe_results(res: dict[str, Any], run: Run | None = None) -> dict[str, Any]:
    ds = (run.dataset if run else None) or res.get("dataset") or {}
    params = (run.parameters if run else None) or res.get("parameters") or {}
    layers = res.get("layers") or sorted(int(k) for k in res["results"])
    return {
        "model": res.get("model"),
        "dataset": ds.get("name"),
        "dataset SHA-256": _sha_short(ds.get("sha256")),
        "pairs": res.get("n_pairs"),
        "bootstrap resamples": res.get("n_bootstrap"),
        "dtype": (run.model.get("dtype") if run else None) or params.get("dtype"),
        "layers": layers,
        "tests with CI excluding zero": f"{res['summary']['significant_tests']} of {res['summary']['total_tests']}",
    }


def _published_identity(res: dict[str, Any]) -> dict[str, Any]:
    """The published file's identity, with what it does not record itself (its provenance says: ua-230, float16)."""
    return {**_describe_results(res), "dataset": "ua-230", "dataset SHA-256": _sha_short(data.UA230_SHA256),
            "dtype": "float16"}


def _side_by_side(table, first: str, second: str, *, agree: str, metric_order: list[str]) -> list[str]:
    """Per-metric tables from a :func:`ua_helpers.results.compare_results` frame, metrics in ``metric_order``."""
    parts = []
    for metric in metric_order:
        rows = table[table["metric"] == metric]
        if rows.empty:
            continue
        body = []
        for row in rows.itertuples():
            a = _excludes_zero(row.ci_lower, row.ci_upper)
            b = _excludes_zero(row.ref_ci_lower, row.ref_ci_upper)
            excl = {(True, True): "both", (True, False): f"{first} only", (False, True): f"{second} only",
                    (False, False): "neither"}[(a, b)]
            body.append([f"{row.depth:.2f}", row.layer, _fmt_test(row.r, row.ci_lower, row.ci_upper),
                         row.ref_layer, _fmt_test(row.ref_r, row.ref_ci_lower, row.ref_ci_upper),
                         "yes" if row.same_sign else "no", excl])
        headers = ["depth", f"layer ({first})", f"r [CI] ({first})", f"layer ({second})",
                   f"r [CI] ({second})", agree, "CI excludes zero"]
        parts += [f"### {metric}\n", md_table(headers, body)]
    return parts


def _agreement_counts(table) -> dict[str, int]:
    a = [_excludes_zero(lo, hi) for lo, hi in zip(table["ci_lower"], table["ci_upper"])]
    b = [_excludes_zero(lo, hi) for lo, hi in zip(table["ref_ci_lower"], table["ref_ci_upper"])]
    return {
        "tests": len(table),
        "same_sign": int(table["same_sign"].sum()),
        "both": sum(x and y for x, y in zip(a, b)),
        "first_only": sum(x and not y for x, y in zip(a, b)),
        "second_only": sum(y and not x for x, y in zip(a, b)),
        "neither": sum(not x and not y for x, y in zip(a, b)),
        "both_same_sign": int((table["same_sign"] & table["both_exclude_zero"]).sum()),
    }


def comparison_page(ctx: BookContext) -> str:
    """This run next to the published Pythia-6.9B results (or another reference file)."""
    run = ctx.run
    parts = ["# Comparison with the published results\n", run_banner(run),
             "This page sets this run's correlations next to the published results of the seed notebook: "
             "EleutherAI/pythia-6.9b in float16 on ua-230, 10,000 bootstrap resamples. The published file is "
             "third-party (MIT license). It is pinned to a commit of the original repository and checked "
             "against its SHA-256.\n"]
    if ctx.reference.results is None:
        parts.append(
            ":::{admonition} The reference results were not available when this book was built\n:class: warning\n\n"
            f"{ctx.reference.note}\n\n"
            "To include them, build once with network access (the file is then cached), or pass a local copy "
            "of the file:\n\n"
            "```bash\nua-book build --run-dir RUN_DIR --reference path/to/option_b_pair_level.json\n```\n\n"
            f"The published file's pinned address is `{results.PUBLISHED_URL}`, and its SHA-256 is "
            f"`{results.PUBLISHED_SHA256}`.\n:::\n")
        return "\n".join(parts)
    ref = ctx.reference.results
    ours_id = _describe_results(run.results, run)
    ref_id = _published_identity(ref) if ctx.reference.published else _describe_results(ref)
    table = results.compare_results(run.results, ref)
    counts = _agreement_counts(table)
    parts += [
        f"Reference file: {ctx.reference.about}."
        + ("" if ctx.reference.published else " It is **not** the published file, so the reference column "
           "below shows that file, not the published results.") + "\n",
        "## What was run\n",
        md_table(["", "this run", "reference"], [[k, _code(ours_id[k]), _code(ref_id.get(k))] for k in ours_id]),
        "## Headline counts\n",
        f"- This run: {headline(run.results, bold=True)}.\n"
        f"- Reference: {headline(ref, bold=True)}.\n",
        "Neither count is corrected for multiple comparisons (see {ref}`multiple-tests`).\n",
        "## Side by side\n",
        "Layers are matched by **relative depth** (layer / number of blocks), so a 30-block model lines up with "
        "a 32-block one. Each row is one layer of this run and the reference layer nearest to it in depth. "
        "Matching by depth is a convenience, not an equivalence. Unless this run is Pythia-6.9B on ua-230, the "
        "numbers are not comparable one for one, and only the pattern (signs, which metrics, which depths) "
        "is (see the [caveats](caveats.md)).\n",
        f"Over the {counts['tests']} matched rows, the signs of r agree in **{counts['same_sign']}**. Both CIs "
        f"exclude zero in **{counts['both']}** (with the same sign in {counts['both_same_sign']}), only this "
        f"run's in {counts['first_only']}, only the reference's in {counts['second_only']}, and neither in "
        f"{counts['neither']}.\n",
    ]
    parts += _side_by_side(table, "this run", "reference", agree="signs agree",
                           metric_order=run.results["metrics_tested"])
    return "\n".join(parts)


def _order_for_replication(run: Run, other: Run) -> tuple[Run, Run]:
    """The original study's ua-230 first, whichever run holds it; otherwise the main run first."""
    return (other, run) if other.dataset_name == "ua-230" and run.dataset_name != "ua-230" else (run, other)


#: Parameters that must agree for two runs to be "the same analysis on two datasets".
SAME_ANALYSIS = ("model", "revision", "dtype", "layers", "pooling", "n_bootstrap", "ci_level", "seed", "knn_k")


def replication_page(ctx: BookContext) -> str:
    """The same analysis on two datasets (ua-230 and replication-230) side by side."""
    run = ctx.run
    parts = ["# Replication on a second dataset\n",
             "In ua-230, side A is almost always the more abstract or named statement (see the "
             "[caveats](caveats.md)). A pair-level correlation found there could come from that. The bundled "
             "`replication-230` set has the same six categories and sizes, but alternates which side holds the "
             "abstract statement (see its [data card](data-card-replication-230.md)). This chapter runs the "
             "same analysis on both sets and compares them layer by layer and metric by metric.\n"]
    if ctx.replication is None:
        other = "ua-230" if run.dataset_name != "ua-230" else "replication-230"
        parts.append(
            ":::{admonition} The second run was not given to this build\n:class: warning\n\n"
            f"This book was built from one run ({run_line(run)}), so there is nothing to compare it with. "
            f"Make a run on `{other}` with the same parameters and pass it as `--replication-run-dir`:\n\n"
            "```bash\n"
            f"ua-book run -p dataset {other} --run-dir runs/{other}\n"
            f"ua-book build --run-dir {run.path} --replication-run-dir runs/{other}\n"
            "```\n\n"
            "ua-230 is third-party data and is not stored in this repository. Offline, set `UA_230_PATH` to a "
            f"local copy of `{data.UA230_URL}` (SHA-256 `{data.UA230_SHA256}`). With network access, the run "
            "downloads it once from that pinned address.\n:::\n")
        return "\n".join(parts)
    first, second = _order_for_replication(run, ctx.replication)
    name1, name2 = first.dataset_name, second.dataset_name
    if name1 == name2:
        name1, name2 = f"{name1} ({first.path.name})", f"{name2} ({second.path.name})"
    pa, pb = first.parameters, second.parameters
    differ = [k for k in SAME_ANALYSIS if k in pa and k in pb and pa[k] != pb[k]]
    if first.model.get("name") != second.model.get("name") and "model" not in differ:
        differ.insert(0, "model")
    table = results.compare_results(first.results, second.results)
    counts = _agreement_counts(table)
    ident1, ident2 = _describe_results(first.results, first), _describe_results(second.results, second)
    link = ctx.attach(ctx.replication.path / "results.json", "replication-results.json")
    parts += [
        "## The two runs\n",
        md_table(["", name1, name2], [[k, _code(ident1[k]), _code(ident2.get(k))] for k in ident1]
                 + [["run directory", _code(first.path.name), _code(second.path.name)]]),
        f"The second run's results: {{download}}`replication-results.json <{link}>`.\n",
    ]
    if differ:
        parts.append(":::{admonition} The two runs differ in more than the dataset\n:class: warning\n\n"
                     f"They differ in: {', '.join(differ)}. Differences below can come from these as well as "
                     "from the data. Layers are matched by relative depth.\n:::\n")
    parts += [
        "## Summary\n",
        f"- **{name1}**: {headline(first.results)}.\n"
        f"- **{name2}**: {headline(second.results)}.\n",
        f"Of the {counts['tests']} (layer, metric) tests, the signs of r agree in **{counts['same_sign']}**. The CI "
        f"excludes zero on **both** datasets in **{counts['both']}** (with the same sign in "
        f"{counts['both_same_sign']}), on {name1} only in **{counts['first_only']}**, on {name2} only in "
        f"**{counts['second_only']}**, and on neither in {counts['neither']}.\n",
    ]
    if {first.dataset_name, second.dataset_name} == {"ua-230", "replication-230"}:
        parts.append("A test whose CI excludes zero on ua-230 but not on replication-230 is the pattern the "
                     "side-abstraction confound predicts. A test that excludes zero on both with the same sign is "
                     "the better candidate for a real pair-level effect, though with no correction for multiple "
                     "comparisons either way (see {ref}`multiple-tests`).\n")
    parts += _survival_section(first, second, name1, name2)
    parts.append("## Per layer and metric\n")
    parts += _side_by_side(table, name1, name2, agree="same sign", metric_order=first.results["metrics_tested"])
    return "\n".join(parts)


#: The extended analysis' counts (results.json "extended" summary), from the seed's criterion to the strictest.
SURVIVAL_ROWS = (
    ("n_excludes_zero", "bootstrap CI excludes 0 (uncorrected, the seed's criterion)"),
    ("n_survives_bh", "Benjamini-Hochberg q < 0.05"),
    ("n_survives_holm", "Holm p < 0.05"),
    ("n_survives_maxstat", "max-|r| permutation p < 0.05"),
    ("n_survives_confounds", "partial r's CI excludes 0 (tokens, length, category)"),
)


def _survival_section(first: Run, second: Run, name1: str, name2: str) -> list[str]:
    """Which findings survive correction and confound control, on each dataset (where the runs have it)."""
    ext1, ext2 = first.results.get("extended"), second.results.get("extended")
    if not ext1 or not ext2:
        return []
    s1, s2 = ext1["summary"], ext2["summary"]
    rows = [[label, f"{s1.get(key)} / {s1.get('n_tests')}", f"{s2.get(key)} / {s2.get('n_tests')}"]
            for key, label in SURVIVAL_ROWS]
    return ["## Which findings survive?\n",
            "The number of (layer, metric) tests passing each criterion on each dataset, from the seed's "
            "uncorrected one to multiplicity correction and confound control (see {ref}`multiple-tests` and the "
            "correlation notebook):\n",
            md_table(["criterion", name1, name2], rows)]


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
    from . import crossrun

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


# --------------------------------------------------------------------------- staging and building
def _announcement(run: Run) -> str:
    """The banner on every page: which run the book shows (HTML; it must not start with "http")."""
    m, d = run.model, run.dataset
    bits = [f"<strong>{html.escape(str(m.get('name')))}</strong>"]
    bits += [html.escape(str(m[k])) for k in ("dtype", "device") if m.get(k)]
    return (f"Results of the run of {', '.join(bits)} on <strong>{html.escape(run.dataset_name)}</strong> "
            f"(SHA-256 {html.escape(_sha_short(d.get('sha256', 'unknown')))})")


#: Cells a reader of the book sees collapsed: the parameters cell and the one papermill injects after it.
COLLAPSED_TAGS = ("parameters", "injected-parameters")


def _stage_notebook(src: Path, dest: Path) -> None:
    """Copy an executed notebook, tagging its parameter cells ``hide-cell`` so that pages open with the prose."""
    nb = json.loads(src.read_text(encoding="utf-8"))
    for cell in nb["cells"]:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if any(t in tags for t in COLLAPSED_TAGS) and "hide-cell" not in tags:
            tags.append("hide-cell")
    dest.write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding="utf-8")


def stage(run: Run, staging: Path, *, source_dir: Path = PROJECT_ROOT, replication: Run | None = None,
          reference: Reference = Reference(), sweep_root: Path | None = None) -> Path:
    """Copy the book's sources and the run's notebooks into ``staging`` (emptied first); write the generated pages."""
    import yaml

    missing = [n for n in NOTEBOOKS if not (run.path / "notebooks" / f"{n}.ipynb").is_file()]
    if missing:
        raise BookError(f"the run in {run.path} lacks the executed notebooks {missing} under notebooks/")
    absent = [s for s in BOOK_SOURCES if not (source_dir / s).exists()]
    if absent:
        raise BookError(f"the book's sources {absent} are not in {source_dir}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for name in BOOK_SOURCES:
        src = source_dir / name
        if src.is_dir():
            shutil.copytree(src, staging / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        else:
            shutil.copyfile(src, staging / name)
    (staging / "notebooks").mkdir()
    for name in NOTEBOOKS:
        _stage_notebook(run.path / "notebooks" / f"{name}.ipynb", staging / "notebooks" / f"{name}.ipynb")
    config_path = staging / "_config.yml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config.setdefault("html", {})["announcement"] = _announcement(run)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    ctx = BookContext(run, staging / "book", replication=replication, reference=reference, sweep_root=sweep_root)
    for name, generate in GENERATED_PAGES.items():
        (staging / "book" / f"{name}.md").write_text(generate(ctx), encoding="utf-8")
    return staging


def jupyter_book_command(staging: Path, *, strict: bool = True) -> list[str]:
    """The ``jupyter-book build`` command line (the venv's own jupyter-book)."""
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe if exe.exists() else "jupyter-book"), "build", str(staging), "--builder", "html", "--keep-going"]
    return cmd + (["-W", "-n"] if strict else [])


def build_book(run_dir: str | os.PathLike, *, output_dir: str | os.PathLike = "_build/html",
               replication_run_dir: str | os.PathLike | None = None,
               reference: str | os.PathLike | None = "published", strict: bool = True,
               staging_dir: str | os.PathLike | None = None, source_dir: str | os.PathLike | None = None,
               sweep_root: str | os.PathLike | None = None) -> Path:
    """Build the HTML book of a completed run.

    Parameters
    ----------
    run_dir : path-like
        A run directory made by ``ua-book run`` (``manifest.json`` with ``"status": "complete"``).
    output_dir : path-like, default="_build/html"
        Where the HTML goes; replaced if it exists.
    replication_run_dir : path-like, optional
        A second run on the other dataset, for the replication chapter. Without it, that page says how to make one.
    reference : str or path-like or None, default="published"
        Results to compare with: ``"published"`` (pinned URL, SHA-256 checked, cached; when it cannot be had
        offline the comparison page says so), a path or URL, or ``None`` for no comparison.
    strict : bool, default=True
        Turn every Sphinx warning into an error (``-W -n --keep-going``).
    staging_dir : path-like, optional
        Where the book's sources are staged; default ``_build/book-src`` under the project root.
    source_dir : path-like, optional
        Where ``_config.yml``, ``_toc.yml`` and ``book/`` are; default the project root.
    sweep_root : path-like, optional
        The folder of a ``ua-book sweep``, for the cross-run chapter. Without it, that page says how to make one.

    Returns
    -------
    pathlib.Path
        ``output_dir``, holding ``index.html``.
    """
    out = Path(output_dir)
    if out.exists() and any(out.iterdir()) and not (out / "index.html").is_file():
        raise BookError(f"refusing to replace {out}: it is not empty and holds no built book (no index.html)")
    run = load_run(run_dir)
    replication = load_run(replication_run_dir) if replication_run_dir is not None else None
    source = Path(source_dir) if source_dir is not None else PROJECT_ROOT
    staging = Path(staging_dir) if staging_dir is not None else source / "_build" / "book-src"
    stage(run, staging, source_dir=source, replication=replication, reference=load_reference(reference),
          sweep_root=Path(sweep_root) if sweep_root is not None else None)
    cmd = jupyter_book_command(staging, strict=strict)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = staging / "build.log"
    log.write_text(proc.stdout, encoding="utf-8")
    built = staging / "_build" / "html"
    if proc.returncode != 0 or not (built / "index.html").is_file():
        tail = "\n".join(proc.stdout.splitlines()[-BUILD_LOG_TAIL:])
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}); full log in {log}. Its end:\n{tail}")
    if out.exists():
        shutil.rmtree(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(built, out)
    (out / ".nojekyll").touch()
    return out


# --------------------------------------------------------------------------- publishing
def publish_command(html_dir: str | os.PathLike = "_build/html", *, remote: str = "origin",
                    branch: str = "gh-pages") -> list[str]:
    """The ``ghp-import`` command that pushes ``html_dir`` to ``branch`` of ``remote`` (with ``.nojekyll``)."""
    exe = Path(sys.executable).parent / "ghp-import"
    return [str(exe if exe.exists() else "ghp-import"), "-n", "-p", "-f", "-r", remote, "-b", branch,
            "-m", "Publish the book", os.fspath(html_dir)]


def publish(html_dir: str | os.PathLike = "_build/html", *, remote: str = "origin", branch: str = "gh-pages",
            cwd: str | os.PathLike | None = None) -> None:
    """Push a built book to the ``gh-pages`` branch of ``remote``, from the git repository at ``cwd``."""
    if not (Path(cwd or ".") / html_dir / "index.html").is_file():
        raise BookError(f"{html_dir} holds no built book (no index.html); build it first")
    proc = subprocess.run(publish_command(html_dir, remote=remote, branch=branch), cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise BookError(f"ghp-import failed (exit {proc.returncode}):\n{proc.stdout}")


# --------------------------------------------------------------------------- Sphinx extension: local MathJax
#: The MathJax entry point the book loads, and the package whose files it comes from.
MATHJAX_ENTRY = "tex-chtml.js"
MATHJAX_PACKAGE = "sphinx-mathjax-offline"


def mathjax_source() -> Path:
    """The MathJax 3 distribution inside the ``sphinx-mathjax-offline`` package."""
    spec = importlib.util.find_spec(MATHJAX_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise BookError(f"MathJax is served from the book itself and comes from the {MATHJAX_PACKAGE} package; "
                        f"install it: pip install {MATHJAX_PACKAGE}")
    return Path(list(spec.submodule_search_locations)[0]) / "static" / "mathjax"


def mathjax_files(src: Path) -> list[Path]:
    """The files the book needs: the entry point and every component it may load on demand.

    The other combined bundles at the top level (``tex-svg.js``, ``mml-chtml.js``, ...) are alternatives to the
    entry point and are left out.
    """
    return sorted(p.relative_to(src) for p in src.rglob("*")
                  if p.is_file() and (p.parent != src or p.name == MATHJAX_ENTRY))


def _set_mathjax_path(app, config) -> None:
    config.mathjax_path = f"mathjax/{MATHJAX_ENTRY}"


def _copy_mathjax(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    src = mathjax_source()
    dest = Path(app.outdir) / "_static" / "mathjax"
    for rel in mathjax_files(src):
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src / rel, dest / rel)


def setup(app) -> dict[str, Any]:
    """Sphinx entry point: load MathJax from ``_static/mathjax/`` in the built book, not from a CDN."""
    mathjax_source()  # fail at start-up, not after the build, when the package is missing
    app.connect("config-inited", _set_mathjax_path)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
