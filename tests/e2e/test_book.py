"""The HTML book: staging and generated pages, a strict build, every page in headless Chromium, publishing.

The browser tests build the book from the ``default_run`` fixture (a complete run of the default configuration,
from conftest.py) and open every page in headless Chromium (Debian's ``chromium`` package). Without Chromium they
are skipped, unless ``UA_REQUIRE_BROWSER=1`` (as in CI), where a missing Chromium fails them.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import time
from pathlib import Path

import nbformat
import numpy as np
import pytest

from ua_helpers import book
from ua_helpers.inputs import data, published
from ua_helpers.analysis import metrics, stats
from ua_helpers.report import results
from ua_helpers.runs import rundir
from ua_helpers.book import compare
from ua_helpers.runs.config import RunConfig
from ua_helpers.report._markdown import md_text
from inference_data import evidence_of

try:
    from . import book_browser as browser
except ImportError:  # tests/ is not a package: pytest puts this folder on sys.path
    import book_browser as browser

REPO = Path(__file__).resolve().parents[2]


def data_sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


SCREENSHOTS = REPO / "_build" / "screenshots"
TITLES = {
    "book/intro.html": "Pair-level Uniformity Asymmetry",
    "book/method.html": "Method",
    "book/run.html": "Run details",
    "notebooks/01_setup.html": "1. Setup",
    "notebooks/02_extraction.html": "2. Extraction",
    "notebooks/03_metrics.html": "3. Metrics",
    "notebooks/04_correlation.html": "4. Correlation",
    "notebooks/05_visualization.html": "5. Visualization",
    "notebooks/06_summary.html": "6. Summary",
    "book/findings.html": "Findings",
    "book/controls.html": "Controls: what could explain a finding away",
    "book/data-card-neutral-60.html": "Data card: neutral-60",
    "book/levels.html": "Three levels of one question",
    "book/caveats.html": "Caveats",
    "book/comparison.html": "Comparison with the published results",
    "book/replication.html": "Replication on a second dataset",
    "book/data-card-replication-230.html": "Data card: replication-230",
    "book/reproduce.html": "Reproducing and re-running",
}


# --------------------------------------------------------------------------- a small hand-made run
def make_run(path: Path, *, dataset: str = "replication-230", seed: int = 0, n_pairs: int = 40,
             status: str = "complete", model: str = "tiny-random", source: str | None = None) -> Path:
    """Write a run directory the way ``ua-book run`` does, from random data (for tests that need no model)."""
    rng = np.random.default_rng(seed)
    layers = [0, 2, 4]
    preference = rng.normal(size=n_pairs)
    values = rng.normal(size=(len(layers), len(metrics.METRIC_NAMES), n_pairs)) + 0.5 * preference
    table = stats.correlation_table(values, preference, layers, metrics.METRIC_NAMES, n_bootstrap=200)
    sha = data.UA230_SHA256 if dataset == "ua-230" else "0" * 64
    parameters = {"model": model, "revision": None, "dtype": "float32", "device": "cpu",
                  "dataset": dataset, "layers": layers, "pooling": "mean", "batch_size": 8, "n_bootstrap": 200,
                  "ci_level": 0.95, "seed": 42, "knn_k": 10, "run_dir": str(path), "reference_results": None}
    ds = {"name": dataset, "source": source or f"test:{dataset}", "sha256": sha, "n_pairs": n_pairs}
    res = results.build_results(table, model=model, n_pairs=n_pairs, n_bootstrap=200, num_layers=4,
                                extra={"dataset": ds, "parameters": parameters})
    results.write_results(path / "results.json", res)
    for name, title in zip(book.NOTEBOOKS, [t for p, t in TITLES.items() if p.startswith("notebooks/")]):
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        nb.metadata["language_info"] = {"name": "python", "pygments_lexer": "ipython3"}
        cell = nbformat.v4.new_code_cell("print(1 + 1)", execution_count=1)
        cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="2\n")]
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}: a test page\n\nSome math: $r^2$."), cell]
        (path / "notebooks").mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, path / "notebooks" / f"{name}.ipynb")
    manifest = {"status": status, "parameters": parameters,
                "model": {"name": model, "revision": None, "dtype": "float32", "device": "cpu",
                          "num_layers": 4, "d_model": 8},
                "dataset": ds, "versions": {"ua_helpers": "test"}, "started": "2025-01-01T00:00:00",
                "finished": "2025-01-01T00:00:01", "notebooks": [f"notebooks/{n}.ipynb" for n in book.NOTEBOOKS]}
    (path / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    rundir.seal(path)  # the SHA-256 of its files, as a run records them last
    return path


# --------------------------------------------------------------------------- staging and generated pages
def test_incomplete_or_missing_run_is_refused(tmp_path):
    with pytest.raises(book.BookError, match="no manifest.json"):
        book.build_book(tmp_path / "nowhere", output_dir=tmp_path / "html")
    run = make_run(tmp_path / "run", status="running")
    with pytest.raises(book.BookError, match="not complete"):
        book.build_book(run, output_dir=tmp_path / "html")
    run = make_run(tmp_path / "run2")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("not a book")
    with pytest.raises(book.BookError, match="refusing to replace"):
        book.build_book(run, output_dir=tmp_path / "notes")
    (run / "notebooks" / "04_correlation.ipynb").unlink()
    with pytest.raises(book.BookError, match="04_correlation"):
        book.stage(book.load_run(run), tmp_path / "staging")


def test_stage_writes_generated_pages_and_says_what_is_missing(tmp_path):
    run = book.load_run(make_run(tmp_path / "run"))
    staging = book.stage(run, tmp_path / "staging")
    pages = {name: (staging / "book" / f"{name}.md").read_text() for name in book.GENERATED_PAGES}
    assert "tiny-random" in pages["run"] and "0" * 64 in pages["run"]
    assert "{download}`results.json <files/results.json>`" in pages["run"]
    assert (staging / "book" / "files" / "results.json").read_bytes() == (run.path / "results.json").read_bytes()
    # No reference and no second run: the pages say so and how to get them; nothing fails.
    assert "No comparison in this build" in pages["comparison"] and "--reference published" in pages["comparison"]
    assert "UA_230_PATH" in pages["replication"] and data.UA230_URL in pages["replication"]
    assert pages["data-card-replication-230"].startswith("# Data card: replication-230")
    assert sorted(p.name for p in (staging / "notebooks").iterdir()) == [f"{n}.ipynb" for n in book.NOTEBOOKS]
    config = (staging / "_config.yml").read_text()
    assert "announcement" in config and "tiny-random" in config


def test_comparison_and_replication_pages(tmp_path):
    main = book.load_run(make_run(tmp_path / "main", dataset="replication-230", seed=1))
    other = book.load_run(make_run(tmp_path / "ua", dataset="ua-230", seed=2))
    reference = book.load_reference(make_run(tmp_path / "ref", seed=3) / "results.json")
    assert not reference.published and "results.json" in reference.about
    ctx = book.BookContext(main, tmp_path / "pages", replication=other, reference=reference)
    comparison = book.comparison_page(ctx)
    for name in metrics.METRIC_NAMES:
        assert f"### {md_text(name)}" in comparison
    ref_summary = reference.results["summary"]
    assert f"The reference: **{ref_summary['significant_tests']} of {ref_summary['total_tests']}**" in comparison
    replication = book.replication_page(ctx)
    # ua-230 comes first whichever run holds it; every test lands in exactly one agreement class.
    assert replication.index("| ua-230 | replication-230 |") > 0
    table = results.compare_results(other.results, main.results)
    counts = compare._agreement_counts(table)
    assert counts["both"] + counts["first_only"] + counts["second_only"] + counts["neither"] == len(table) == 15
    assert f"the signs of r agree in **{counts['same_sign']}**" in replication
    assert (tmp_path / "pages" / "files" / "replication-results.json").is_file()


def test_comparison_renders_offline_from_the_shipped_published_file(tmp_path, monkeypatch):
    """The default reference is the copy in the package: no network is touched, and the page says what differs."""
    import urllib.request

    def no_network(*args, **kwargs):
        raise OSError("urlopen error [Errno -2] Name or service not known")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    run = book.load_run(make_run(tmp_path / "run", model="smollm2-135m"))
    reference = book.load_reference("published")
    assert reference.published and published.FILES[published.PAIR_LEVEL].sha256[:16] in reference.about
    page = book.comparison_page(book.BookContext(run, tmp_path / "pages", reference=reference))
    assert "urlopen" not in page and "Errno" not in page
    table = results.compare_results(run.results, published.load(published.PAIR_LEVEL))
    same = int(table["same_sign"].sum())
    assert f"the signs of r agree in **{same}**" in page
    for what in ("the model (", "its size (135M parameters vs 6.9B parameters)", "the dataset (",
                 "the dtype (`float32` vs `float16`)", "de-quantized from Q4\\_1"):
        assert what in page, what
    assert "separates the two" in page  # no ua-230 run of this model: the page says what would split them


def test_comparison_separates_model_from_dataset_with_a_ua230_run(tmp_path):
    main = book.load_run(make_run(tmp_path / "main", dataset="replication-230", seed=1, model="smollm2-135m"))
    on_ua = book.load_run(make_run(tmp_path / "ua", dataset="ua-230", seed=2, model="smollm2-135m"))
    ref = published.load(published.PAIR_LEVEL)
    page = book.comparison_page(book.BookContext(main, tmp_path / "pages", replication=on_ua,
                                                 reference=book.load_reference("published")))
    model_only = results.compare_results(on_ua.results, ref)
    dataset_only = results.compare_results(main.results, on_ua.results)
    assert f"| model (with its dtype and weights), not dataset | {len(model_only)} | {int(model_only['same_sign'].sum())} of" in page
    assert f"| dataset only | {len(dataset_only)} | {int(dataset_only['same_sign'].sum())} of" in page


def test_published_files_are_verified_when_read(tmp_path, monkeypatch):
    for name, record in published.FILES.items():
        assert data_sha(published.read_bytes(name)) == record.sha256
    fake = tmp_path / "ua_helpers" / "inputs" / "published"
    fake.mkdir(parents=True)
    raw = published.read_bytes(published.PAIR_LEVEL).replace(b"-0.67", b"-0.68", 1)
    (fake / f"{published.PAIR_LEVEL}.json").write_bytes(raw)
    monkeypatch.setattr(published.resources, "files", lambda package: tmp_path / "ua_helpers" / "inputs")
    with pytest.raises(ValueError, match="damaged"):
        published.load(published.PAIR_LEVEL)
    with pytest.raises(book.BookError, match="cannot be read"):
        book.load_reference("published")
    with pytest.raises(ValueError, match="ships"):
        published.load("no-such-file")


HOSTILE = "evil`<img src=x onerror=alert(1)>`_*[x](javascript:alert(2))*{ref}`y`$x$"


def test_user_supplied_text_cannot_inject_html(tmp_path):
    """A dataset name and source with backticks and HTML render as text on every generated page and the banner."""
    from markdown_it import MarkdownIt

    run = book.load_run(make_run(tmp_path / "run", dataset=HOSTILE, source=f"/data/{HOSTILE}.json"))
    other = book.load_run(make_run(tmp_path / "other", dataset=HOSTILE + "2", seed=3))
    staging = book.stage(run, tmp_path / "staging", replication=other, reference=book.load_reference("published"))
    md = MarkdownIt("commonmark", {"html": True}).enable("table")  # raw HTML on: the worst case
    for name in book.GENERATED_PAGES:
        rendered = md.render((staging / "book" / f"{name}.md").read_text())
        assert "<img" not in rendered, name
        assert 'href="javascript' not in rendered, name
    assert "&lt;img" in md.render((staging / "book" / "run.md").read_text())  # shown, as text
    config = (staging / "_config.yml").read_text()
    assert "<img" not in config and "&lt;img" in config


def test_run_page_says_how_to_reproduce_the_run(tmp_path):
    path = make_run(tmp_path / "run", model="smollm2-135m")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["parameters"]["n_bootstrap"] = 2000
    manifest["versions"] = {"ua_helpers": "0.1.0", "numpy": "2.0.0", "torch": "2.4.0"}
    manifest["git_commit"] = "0123456789abcdef"
    (path / "manifest.json").write_text(json.dumps(manifest))
    _edit_results(path, lambda res: res["parameters"].update(n_bootstrap=2000))  # results say what the manifest says
    run = book.load_run(path)
    page = book.run_page(book.BookContext(run, tmp_path / "pages"))
    command = book.pages.run_command(run)
    assert f"```bash\n{command}\n```" in page
    argv = shlex.split(command)
    given = dict(zip(argv[argv.index("-p") + 1::3], argv[argv.index("-p") + 2::3]))
    # The command's parameters, read back by the CLI's own validation, are the run's parameters.
    repeated = RunConfig.from_mapping({**given, "run_dir": argv[argv.index("--run-dir") + 1]}).to_parameters()
    for name, value in manifest["parameters"].items():
        if name in repeated and name not in ("repo_url", "run_dir"):
            assert repeated[name] == value, name
    # The run folder is one a reader can type in a clone: never this machine's absolute path.
    assert repeated["run_dir"] == "runs/run" and str(tmp_path) not in page
    assert "model" not in given and given["n_bootstrap"] == "2000"  # defaults are left out
    assert "commit `0123456789abcdef`" in page and "numpy `2.0.0`" in page
    assert "not recorded by this run: scipy, scikit-learn, pandas, transformers, matplotlib" in page
    assert "SmolLM2-135M-Instruct" in page and "de-quantized from Q4\\_1" in page


def test_run_page_offers_the_full_tests_table_for_download(tmp_path):
    """The run's tests.csv (listed in its manifest and checksummed) is a download on the run page."""
    path = make_run(tmp_path / "run")
    (path / "tests.csv").write_text("layer,metric,r\n0,centroid_asymmetry,-0.1\n")
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["tables"] = ["tests.csv"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    rundir.seal(path)
    ctx = book.BookContext(book.load_run(path), tmp_path / "pages")
    page = book.run_page(ctx)
    link = next(line for line in page.splitlines() if "tests.csv" in line)
    assert link.startswith("- {download}`tests.csv <") and "every statistic of every (layer, metric) test" in link
    target = link.split("<", 1)[1].split(">", 1)[0]
    assert (ctx.book_dir / target).read_bytes() == (path / "tests.csv").read_bytes()


def _edit_results(path: Path, edit) -> Path:
    res = json.loads((path / "results.json").read_text())
    edit(res)
    (path / "results.json").write_text(json.dumps(res))
    rundir.seal(path)
    return path


def test_findings_follow_the_numbers(tmp_path):
    """Change one result in results.json: the findings page and the landing page's summary change with it."""
    path = make_run(tmp_path / "run")
    before = book.findings_page(book.BookContext(book.load_run(path), tmp_path / "p1"))

    def strengthen(res):
        res["results"]["2"]["margin_asymmetry"].update(r=0.987654, ci_lower=0.95, ci_upper=0.99,
                                                       includes_zero=False)
    after_run = book.load_run(_edit_results(path, strengthen))
    after = book.findings_page(book.BookContext(after_run, tmp_path / "p2"))
    assert "+0.988" not in before and "+0.988" in after and "[+0.950, +0.990]" in after
    abstract = book.GENERATED_INCLUDES["abstract"](book.BookContext(after_run, tmp_path / "p3"))
    assert abstract.startswith("## Abstract") and "r = +0.99" in abstract  # the strongest result, in words
    assert "[findings](findings.md)" in abstract and "What this run found" not in abstract  # said once, linked


def add_evidence(path: Path, seed: int = 0) -> Path:
    """Give a hand-made run the seed results and the evidence block of one consistent random analysis."""
    from ua_helpers.analysis import controls, inference

    res = json.loads((path / "results.json").read_text())
    layers, names, n = res["layers"], list(metrics.METRIC_NAMES), res["n_pairs"]
    rng = np.random.default_rng(seed)
    emb_a, emb_b = rng.normal(size=(2, len(layers), n, 12)) + 2.0
    values = metrics.compute_all_layers(emb_a, emb_b)
    preference = 0.8 * values[1, 4] / values[1, 4].std() + rng.normal(size=n)
    tok_a = rng.integers(5, 20, n)
    tok_b = tok_a + rng.integers(-3, 4, n)
    ext = inference.extended_analysis(values, preference, layers, names, n_tokens_a=tok_a, n_tokens_b=tok_b,
                                      len_a=5 * tok_a, len_b=5 * tok_b + 1, categories=["x", "y"] * (n // 2),
                                      n_bootstrap=300, n_permutations=300, seed=1)
    covariates = {"tokens": (tok_b - tok_a)[:, None].astype(float)}
    lexical = controls.lexical_controls(values, preference, layers, names, covariates,
                                        rng.normal(size=(len(names), n)))
    res["evidence"] = evidence_of(values, preference, emb_a, emb_b, layers, names, ext.tests,
                                              controls={"lexical": {"tests": lexical.to_dict(orient="records")}})
    res["results"] = {str(l): {row.metric: {"r": row.r, "ci_lower": row.ci_lower, "ci_upper": row.ci_upper,
                                            "p_value": row.p_value, "includes_zero": not row.excludes_zero}
                               for row in ext.tests[ext.tests["layer"] == l].itertuples()} for l in layers}
    res["summary"] = results.summarize(results.results_table(res), res["mid_layers"], res["late_layers"])
    (path / "results.json").write_text(json.dumps(res))
    rundir.seal(path)
    return path


def test_findings_page_states_the_generated_findings(tmp_path):
    """With an evidence block: the page and the landing summary are ua_helpers.report.findings' sentences, escaped, and
    a changed number in results.json changes them."""
    from ua_helpers.report import findings

    path = add_evidence(make_run(tmp_path / "run", dataset="toy`<b>x</b>`"))
    run = book.load_run(path)
    ctx = book.BookContext(run, tmp_path / "pages")
    page = book.findings_page(ctx)
    assert "## What this run found" in page and "## What this run cannot say" in page
    from markdown_it import MarkdownIt

    assert "No generated findings" not in page
    assert "<b>" not in MarkdownIt("commonmark", {"html": True}).enable("table").render(page)
    first = findings.strongest(run.results, 1)[0]
    assert first in page
    lead = max((t for t in run.results["evidence"]["tests"] if t["level"] >= 1),
               key=lambda t: (t["level"], abs(t["r"])))
    assert f"r = {lead['r']:+.2f}" in page
    abstract = book.GENERATED_INCLUDES["abstract"](ctx)
    assert md_text(findings.summarize(run.results)[0]) not in abstract  # the findings list is on one page only
    assert (tmp_path / "pages" / "files" / "key-figure.png").stat().st_size > 0

    def move(res):
        for t in res["evidence"]["tests"]:
            if (t["layer"], t["metric"]) == (lead["layer"], lead["metric"]):
                t["r"] = 0.9876
    after = book.findings_page(book.BookContext(book.load_run(_edit_results(path, move)), tmp_path / "p2"))
    assert f"r = {lead['r']:+.2f}" not in after and "r = +0.99" in after


def test_glossary_defines_every_rung_the_run_names(tmp_path):
    """The glossary's ladder is written from evidence.criteria_text at build time: every rung that results.json
    names is a glossary term with the run's criterion; and the landing page cites the study and links the
    findings instead of repeating them."""
    from ua_helpers.analysis import evidence

    run = book.load_run(add_evidence(make_run(tmp_path / "run")))
    staging = book.stage(run, tmp_path / "staging")
    ladder = (staging / "book" / "glossary-ladder.md").read_text()
    levels = run.results["evidence"]["levels"]
    assert [lv["name"] for lv in levels] == evidence.level_names()
    for lv in levels[1:]:
        assert f"rung {lv['level']}: {md_text(lv['name'])}\n  {md_text(lv['criterion'])};" in ladder, lv["name"]
    assert "glossary-ladder.md" in (staging / "book" / "glossary.md").read_text()
    intro = (staging / "book" / "intro.md").read_text()
    assert "{include} abstract.md" in intro and "findings-summary" not in intro
    assert published.STUDY["doi"] in (staging / "book" / "references.md").read_text()
    import yaml

    from ua_helpers.book import page_intro

    subs = yaml.safe_load((staging / "_config.yml").read_text())["parse"]["myst_substitutions"]
    assert published.STUDY["doi"] in subs["study_citation"]
    assert subs["smallest_excluding_r"] == page_intro.smallest_phrase(run.results)  # the run's own, not "0.13"
    assert subs["n_tests"] == "15" and "{{ smallest_excluding_r }}" in (staging / "book" / "method.md").read_text()


def test_replication_counts_the_evidence_ladder_on_each_dataset(tmp_path):
    main = book.load_run(add_evidence(make_run(tmp_path / "main", dataset="replication-230"), seed=1))
    other = book.load_run(add_evidence(make_run(tmp_path / "ua", dataset="ua-230", seed=2), seed=2))
    page = book.replication_page(book.BookContext(main, tmp_path / "pages", replication=other))
    assert "## Which findings survive?" in page and "not nested" not in page
    for level in other.results["evidence"]["levels"][1:]:  # ua-230 is the first column
        assert f"{level['count']} / 15 ({level['count_distinct']} distinct)" in page


def test_three_levels_chapter(tmp_path):
    """This run's three levels per layer beside published Pythia's; an older run without them still renders."""
    from ua_helpers.analysis import levels

    old = book.levels_page(book.BookContext(book.load_run(make_run(tmp_path / "old")), tmp_path / "p0"))
    assert "This run has no group levels" in old and "-0.601" in old  # Pythia's category level at layer 0
    rng = np.random.default_rng(5)
    n, layers = 40, [0, 2, 4]
    emb_a, emb_b = rng.normal(size=(2, len(layers), n, 16))
    pref = rng.normal(size=n)
    cats = [f"c{i % 4}" for i in range(n)]
    block = levels.analyse_levels(emb_a, emb_b, pref, cats, layers, n_bootstrap=1000, n_bins=8, n_binnings=20,
                                  k_values=(5, 8))
    path = _edit_results(make_run(tmp_path / "new"), lambda res: res.update(block))
    page = book.levels_page(book.BookContext(book.load_run(path), tmp_path / "p1"))
    assert "This run has no group levels" not in page
    for layer in ("0", "2", "4"):
        cat = block["category_level"]["layer_results"][layer]
        bins = block["option_a_bins"]["bootstrap_results"][layer]
        assert f"{cat['r']:+.3f} [{cat['ci_lower']:+.3f}, {cat['ci_upper']:+.3f}]" in page
        assert f"{bins['r']:+.3f} [{bins['ci_lower']:+.3f}, {bins['ci_upper']:+.3f}]" in page
        # the spread over binnings at the seeded binning's k leads the random-bin columns, before the one draw
        spread = block["option_a_bins"]["results_by_k"]["8"][layer]
        row = next(line for line in page.splitlines() if line.startswith(f"| {layer} |"))
        assert row.index(f"{spread['r_mean']:+.3f} ± {spread['r_std']:.3f}") < row.index(f"{bins['r']:+.3f} [")
    assert "`np.random.seed(42)`, then `np.random.randint(0, 8, 40)`" in page
    assert "Category level across Pythia sizes" in page and "| Pythia-410M |" in page


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

    mean = _edit_results(make_run(tmp_path / "mean"), set_pooling("mean"))
    last = _edit_results(make_run(tmp_path / "last"), set_pooling("last", flip=("2", "margin_asymmetry")))
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


def test_staged_figures_get_alt_text_from_their_lead_in(tmp_path):
    path = make_run(tmp_path / "run")
    nb = nbformat.read(path / "notebooks" / "05_visualization.ipynb", as_version=4)
    figure = nbformat.v4.new_code_cell("plot()", execution_count=2)
    figure.outputs = [nbformat.v4.new_output("display_data", data={"image/png": "iVBORw0KGgo=", "text/plain": "<Figure>"})]
    described = nbformat.v4.new_code_cell("plot()", execution_count=3, metadata={"alt": "Given alt text"})
    described.outputs = list(figure.outputs)
    nb.cells += [nbformat.v4.new_markdown_cell("## Heatmap\n\nEvery layer × metric at once; `*` marks a CI."), figure,
                 described]
    nbformat.write(nb, path / "notebooks" / "05_visualization.ipynb")
    rundir.seal(path)
    staging = book.stage(book.load_run(path), tmp_path / "staging")
    cells = json.loads((staging / "notebooks" / "05_visualization.ipynb").read_text())["cells"]
    alts = [c["metadata"]["mystnb"]["image"]["alt"] for c in cells if "mystnb" in c.get("metadata", {})]
    assert alts == ["Figure: Heatmap. Every layer × metric at once; * marks a CI.", "Given alt text"]


@pytest.mark.slow
def test_strict_build_fails_with_the_log(tmp_path):
    """A Sphinx warning (here an unknown cross-reference) fails the build, and the error shows the log's end.
    Slow: it runs a Sphinx build."""
    source = tmp_path / "source"
    source.mkdir()
    for name in book.BOOK_SOURCES:
        src = REPO / name
        shutil.copytree(src, source / name) if src.is_dir() else shutil.copyfile(src, source / name)
    (source / "book" / "caveats.md").write_text("# Caveats\n\nSee {ref}`no-such-label`.\n")
    run = make_run(tmp_path / "run")
    with pytest.raises(book.BookError, match="no-such-label"):
        book.build_book(run, output_dir=tmp_path / "html", staging_dir=tmp_path / "staging", reference=None,
                        source_dir=source)


# --------------------------------------------------------------------------- the book of the default run
@pytest.fixture(scope="module")
def built_book(default_run, ua230_run, tmp_path_factory):
    """The book of the default run (with the ua-230 run for the replication chapter where ua-230 is available),
    compared with the published results shipped in the package, built strictly (-W -n --keep-going)."""
    tmp = tmp_path_factory.mktemp("book")
    start = time.perf_counter()
    html = book.build_book(default_run, output_dir=tmp / "html", staging_dir=tmp / "staging",
                           reference="published", replication_run_dir=ua230_run)
    print(f"book built in {time.perf_counter() - start:.1f} s")
    return html


@pytest.fixture(scope="session")
def chromium():
    found = browser.find_chromium()
    if found is None:
        message = ("headless Chromium not found at /usr/bin/chromium (install Debian's package: "
                   "apt-get install -y chromium, or set UA_CHROMIUM)")
        if os.environ.get("UA_REQUIRE_BROWSER") == "1":
            pytest.fail(message + "; UA_REQUIRE_BROWSER=1 requires it")
        pytest.skip(message)
    return found


def book_pages(html: Path) -> list[str]:
    """Every HTML page of a built book (not the theme's static files or the page sources)."""
    skip = ("_static", "_sources", "_downloads", "_images")
    return sorted(p.relative_to(html).as_posix() for p in html.rglob("*.html")
                  if p.relative_to(html).parts[0] not in skip)


def page_problems(report: browser.PageReport, origin: str, expected_h1: str | None = None) -> list[str]:
    """Everything wrong with one rendered page, as readable lines (empty when the page is fine)."""
    problems = []
    if report.error:
        problems.append(f"harness: {report.error}")
    if not report.title:
        problems.append("no <title>")
    if not report.h1:
        problems.append("no <h1>")
    elif expected_h1 and not report.h1.startswith(expected_h1):
        problems.append(f"<h1> is {report.h1!r}, expected {expected_h1!r}")
    elif report.title and report.h1 not in report.title:
        problems.append(f"<title> {report.title!r} does not name the <h1> {report.h1!r}")
    if report.broken_images:
        problems.append(f"images that did not load: {report.broken_images}")
    if report.math_source and (not report.mathjax or report.mathjax.startswith("error")
                               or report.math_rendered < report.math_source or report.math_errors):
        problems.append(f"math: {report.math_source} formulas, {report.math_rendered} rendered, "
                        f"{report.math_errors} errors, MathJax {report.mathjax}")
    fetched = browser.outside(origin, report.resources)
    if fetched:
        problems.append(f"fetched from outside the book: {fetched} (refused by the proxy: {report.external})")
    if report.not_found:
        problems.append(f"requests the server could not answer: {report.not_found}")
    return problems


@pytest.mark.slow
def test_book_has_every_page_and_the_results_file(built_book):
    pages = book_pages(built_book)
    assert set(TITLES) <= set(pages), sorted(set(TITLES) - set(pages))
    assert (built_book / "index.html").is_file() and (built_book / ".nojekyll").is_file()
    assert list(built_book.glob("_downloads/*/results.json")), "results.json is not downloadable"
    run_page = (built_book / "book" / "run.html").read_text(encoding="utf-8")
    assert "results.json" in run_page and "manifest.json" in run_page
    assert (built_book / "_static" / "mathjax" / book.MATHJAX_ENTRY).is_file()


@pytest.mark.slow
def test_glossary_page_defines_every_rung_of_the_run(built_book, default_run):
    import html as html_lib

    res = json.loads((default_run / "results.json").read_text())
    page = html_lib.unescape((built_book / "book" / "glossary.html").read_text(encoding="utf-8"))
    for lv in res["evidence"]["levels"][1:]:
        assert f"rung {lv['level']}: {lv['name']}" in page, lv["name"]
    intro = html_lib.unescape((built_book / "book" / "intro.html").read_text(encoding="utf-8"))
    assert "What this run found" not in intro and 'href="findings.html"' in intro
    assert published.STUDY["doi"] in intro


@pytest.mark.slow
def test_replication_chapter_compares_the_two_runs(built_book, ua230_run):
    if ua230_run is None:
        pytest.skip("ua-230 is not available here (set UA_230_PATH)")
    page = (built_book / "book" / "replication.html").read_text(encoding="utf-8")
    assert "ua-230" in page and "replication-230" in page
    assert "Which findings survive?" in page and "Per layer and metric" in page
    assert "was not given to this build" not in page


@pytest.mark.slow
def test_book_references_nothing_outside_itself(built_book):
    assert browser.external_references(built_book) == {}


@pytest.mark.slow
def test_every_page_renders_in_chromium(built_book, chromium):
    """Each page: its title, every image loaded, math typeset, nothing fetched from outside; one screenshot."""
    if SCREENSHOTS.exists():
        shutil.rmtree(SCREENSHOTS)
    failures, seen_math = {}, {}
    with browser.BookServer(built_book) as server:
        for page in book_pages(built_book):
            shot = SCREENSHOTS / (page.removesuffix(".html").replace("/", "__") + ".png")
            report = browser.check_page(server, page, chromium=chromium, screenshot=shot)
            expected = TITLES["book/intro.html"] if page == "index.html" else TITLES.get(page)
            problems = page_problems(report, server.origin, expected)
            if not shot.is_file():
                problems.append("no screenshot")
            if problems:
                failures[page] = problems
            seen_math[page] = report.math_rendered
    assert not failures, json.dumps(failures, indent=2)
    assert seen_math["book/method.html"] >= 10, "the method page's equations did not render"


@pytest.mark.slow
def test_a_missing_figure_is_reported(built_book, chromium, tmp_path):
    """The browser check fails a page whose image file is gone."""
    site = tmp_path / "site"
    shutil.copytree(built_book, site)
    page = next(p for p in book_pages(site) if p.startswith("notebooks/") and "<img" in (site / p).read_text())
    img = next(line.split('src="', 1)[1].split('"', 1)[0] for line in (site / page).read_text().splitlines()
               if "<img" in line and "_images/" in line)
    (site / page).parent.joinpath(img).resolve().unlink()
    with browser.BookServer(site) as server:
        report = browser.check_page(server, page, chromium=chromium)
        problems = page_problems(report, server.origin)
    assert report.broken_images == [img]
    assert any("images that did not load" in p for p in problems)
    assert any(Path(img).name in path for path in report.not_found)


@pytest.mark.slow
def test_publish_pushes_the_book_to_gh_pages(built_book, tmp_path, monkeypatch):
    """``publish`` (ghp-import) puts the built HTML on the gh-pages branch of a (here local, bare) remote."""
    for var, value in {"GIT_AUTHOR_NAME": "Book Test", "GIT_AUTHOR_EMAIL": "book-test@example.invalid",
                       "GIT_COMMITTER_NAME": "Book Test", "GIT_COMMITTER_EMAIL": "book-test@example.invalid"}.items():
        monkeypatch.setenv(var, value)
    remote, work = tmp_path / "remote.git", tmp_path / "work"
    subprocess.run(["git", "init", "-q", "--bare", str(remote)], check=True)
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    shutil.copytree(built_book, work / "_build" / "html")
    book.publish("_build/html", remote=str(remote), cwd=work)
    files = subprocess.run(["git", "--git-dir", str(remote), "ls-tree", "-r", "--name-only", "gh-pages"],
                           check=True, capture_output=True, text=True).stdout.split()
    assert {"index.html", ".nojekyll", "book/method.html"} <= set(files)


#: Pages a reader must be able to read on a phone as on a desktop: the findings and the comparison.
READER_PAGES = {"book/intro.html": "Abstract", "book/findings.html": "What this run cannot say",
                "book/comparison.html": "Sign agreement"}


@pytest.mark.slow
@pytest.mark.parametrize("window", [browser.WINDOW, browser.NARROW_WINDOW], ids=["desktop", "420px"])
def test_findings_and_comparison_read_on_desktop_and_phone(built_book, chromium, window):
    """At 1280 and 420 px: the findings section and the comparison render, the page body never scrolls sideways,
    no raw error text, every figure loaded; one screenshot each (in _build/screenshots/)."""
    failures = {}
    with browser.BookServer(built_book) as server:
        for page, heading in READER_PAGES.items():
            width = window.split(",")[0]
            shot = SCREENSHOTS / "widths" / f"{page.removesuffix('.html').replace('/', '__')}-{width}.png"
            report = browser.check_page(server, page, chromium=chromium, screenshot=shot, window=window)
            problems = page_problems(report, server.origin)
            if heading not in report.headings:
                problems.append(f"no section {heading!r} (sections: {report.headings})")
            if report.overflows:
                problems.append(f"the page is {report.scroll_width} px wide in a {report.viewport_width} px window")
            if report.error_texts:
                problems.append(f"error text on the page: {report.error_texts}")
            if not shot.is_file():
                problems.append("no screenshot")
            if problems:
                failures[page] = problems
    assert not failures, json.dumps(failures, indent=2)


@pytest.mark.slow
def test_no_page_is_cut_off_on_a_phone(built_book, chromium):
    """At 420 px every page fits: the page never scrolls sideways, and no visible element reaches past the right
    edge unless it sits in a container that scrolls by itself (a wide table or code block)."""
    failures = {}
    with browser.BookServer(built_book) as server:
        for page in book_pages(built_book):
            report = browser.check_page(server, page, chromium=chromium, window=browser.NARROW_WINDOW)
            if report.error or report.overflows:
                failures[page] = {"error": report.error, "scroll_width": report.scroll_width,
                                  "viewport_width": report.viewport_width, "wide": report.wide_elements}
    assert not failures, json.dumps(failures, indent=2)


@pytest.mark.slow
def test_a_cut_off_element_is_reported(built_book, chromium, tmp_path):
    """The phone check flags a block wider than the window, but not a wide code block or table: those scroll by
    themselves."""
    import re

    site = tmp_path / "site"
    shutil.copytree(built_book, site)
    page = site / "book" / "caveats.html"
    text = page.read_text(encoding="utf-8")
    start = re.search(r'<article class="bd-article"[^>]*>', text).end()
    scrolls = ('<div class="highlight"><pre>' + "x" * 300 + "</pre></div><table><tr><td>" + "y" * 300
               + "</td></tr></table>")
    page.write_text(text[:start] + scrolls + text[start:], encoding="utf-8")
    with browser.BookServer(site) as server:
        ok = browser.check_page(server, "book/caveats.html", chromium=chromium, window=browser.NARROW_WINDOW)
        page.write_text(text[:start] + scrolls + '<div id="too-wide" style="width:900px">x</div>' + text[start:],
                        encoding="utf-8")
        cut = browser.check_page(server, "book/caveats.html", chromium=chromium, window=browser.NARROW_WINDOW)
    assert not ok.overflows, ok.wide_elements
    assert cut.overflows and any(w.startswith("div#too-wide") for w in cut.wide_elements), cut.wide_elements


@pytest.mark.slow
def test_landing_page_opens_with_the_abstract_and_the_key_figure(built_book, chromium):
    """At 1280 px the abstract starts on the first screen and the key figure ends within the first two."""
    shot = SCREENSHOTS / "widths" / "intro-first-screen-1280.png"
    with browser.BookServer(built_book) as server:
        report = browser.check_page(server, "book/intro.html", chromium=chromium, window=browser.SCREEN_WINDOW,
                                    screenshot=shot)
    assert report.abstract is not None and report.key_figure is not None, report
    screen = int(browser.SCREEN_WINDOW.split(",")[1])  # a 1280 x 800 screen
    assert report.abstract["top"] < screen, report.abstract
    assert report.key_figure["bottom"] <= 2 * screen, report.key_figure
    assert not report.broken_images and shot.is_file()


@pytest.mark.slow
def test_no_page_points_outside_the_book_or_at_the_build_machine(built_book, default_run):
    """Every relative link and image stays inside the built book; no page names a path of the build machine."""
    import re

    root = built_book.resolve()
    escapes, absolute = {}, {}
    for page in sorted(built_book.rglob("*.html")):
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r'(?:href|src)="([^"#?]+)', text):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) and not target.startswith("file:"):
                continue  # http(s), mailto, data: addresses are not paths
            resolved = (page.parent / target).resolve()
            if target.startswith(("file:", "/")) or root not in (resolved, *resolved.parents):
                escapes.setdefault(str(page.relative_to(root)), []).append(target)
        if page.parent.name == "book" and str(default_run.resolve()) in text:  # the notebooks show what was given
            absolute[str(page.relative_to(root))] = str(default_run.resolve())
    assert not escapes, escapes
    assert not absolute, absolute


@pytest.mark.slow
def test_open_in_colab_follows_the_repository_address(tmp_path, monkeypatch):
    """With a GitHub address, every notebook page links to Colab at that repository; without one, no button."""
    run = make_run(tmp_path / "run")
    monkeypatch.setenv(book.build.REPO_URL_ENV, "https://github.com/example-org/ua-helpers")
    html = book.build_book(run, output_dir=tmp_path / "with", staging_dir=tmp_path / "s1")
    for name in book.NOTEBOOKS:
        page = (html / "notebooks" / f"{name}.html").read_text(encoding="utf-8")
        assert (f"https://colab.research.google.com/github/example-org/ua-helpers/blob/main/notebooks/{name}.ipynb"
                in page), name
    assert browser.external_references(html) == {}  # a link is not a fetch
    monkeypatch.delenv(book.build.REPO_URL_ENV)
    html = book.build_book(run, output_dir=tmp_path / "without", staging_dir=tmp_path / "s2")
    assert "colab.research.google.com" not in (html / "notebooks" / "01_setup.html").read_text(encoding="utf-8")
    monkeypatch.setenv(book.build.REPO_URL_ENV, "https://example.org/not-github")
    with pytest.raises(book.BookError, match="GitHub"):
        book.stage(book.load_run(run), tmp_path / "s3")
