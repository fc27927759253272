"""The book's generated pages from hand-made runs (no model, no build): staging, the run, comparison, findings,
replication, levels and glossary pages follow results.json, and no user-supplied text reaches them as HTML."""
from __future__ import annotations

import json
import shlex

import nbformat
import numpy as np
import pytest
from runs_fixtures import add_evidence, edit_results, make_run

from ua_helpers import book
from ua_helpers.analysis import metrics
from ua_helpers.book import compare
from ua_helpers.inputs import data, published
from ua_helpers.report import results
from ua_helpers.report._markdown import md_text
from ua_helpers.runs import rundir
from ua_helpers.runs.config import RunConfig


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
    edit_results(path, lambda res: res["parameters"].update(n_bootstrap=2000))  # results say what the manifest says
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


def test_findings_follow_the_numbers(tmp_path):
    """Change one result in results.json: the findings page and the landing page's summary change with it."""
    path = make_run(tmp_path / "run")
    before = book.findings_page(book.BookContext(book.load_run(path), tmp_path / "p1"))

    def strengthen(res):
        res["results"]["2"]["margin_asymmetry"].update(r=0.987654, ci_lower=0.95, ci_upper=0.99,
                                                       includes_zero=False)
    after_run = book.load_run(edit_results(path, strengthen))
    after = book.findings_page(book.BookContext(after_run, tmp_path / "p2"))
    assert "+0.988" not in before and "+0.988" in after and "[+0.950, +0.990]" in after
    abstract = book.GENERATED_INCLUDES["abstract"](book.BookContext(after_run, tmp_path / "p3"))
    assert abstract.startswith("## Abstract") and "r = +0.988" in abstract  # the strongest result, in words
    assert "[findings](findings.md)" in abstract and "What this run found" not in abstract  # said once, linked


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
    assert f"r = {lead['r']:+.3f}" in page
    abstract = book.GENERATED_INCLUDES["abstract"](ctx)
    assert md_text(findings.summarize(run.results)[0]) not in abstract  # the findings list is on one page only
    assert (tmp_path / "pages" / "files" / "key-figure.png").stat().st_size > 0

    def move(res):
        for t in res["evidence"]["tests"]:
            if (t["layer"], t["metric"]) == (lead["layer"], lead["metric"]):
                t["r"] = 0.9876
    after = book.findings_page(book.BookContext(book.load_run(edit_results(path, move)), tmp_path / "p2"))
    assert f"r = {lead['r']:+.3f}" not in after and "r = +0.988" in after


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
    path = edit_results(make_run(tmp_path / "new"), lambda res: res.update(block))
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
