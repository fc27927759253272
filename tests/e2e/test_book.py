"""The HTML book: a strict build, every page in headless Chromium, publishing (the generated pages' content is
tested without a build in tests/unit/test_book_pages.py).

The browser tests build the book from the ``default_run`` fixture (a complete run of the default configuration,
from conftest.py) and open every page in headless Chromium (Debian's ``chromium`` package). Without Chromium they
are skipped, unless ``UA_REQUIRE_BROWSER=1`` (as in CI), where a missing Chromium fails them.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from runs_fixtures import NOTEBOOK_TITLES, make_run

from ua_helpers import book
from ua_helpers.inputs import published

try:
    from . import book_browser as browser
except ImportError:  # tests/ is not a package: pytest puts this folder on sys.path
    import book_browser as browser

REPO = Path(__file__).resolve().parents[2]


SCREENSHOTS = REPO / "_build" / "screenshots"
TITLES = {
    "book/intro.html": "Pair-level Uniformity Asymmetry",
    "book/method.html": "Method",
    "book/run.html": "Run details",
    **{f"notebooks/{name}.html": title for name, title in zip(book.NOTEBOOKS, NOTEBOOK_TITLES)},
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


# --------------------------------------------------------------------------- a strict build of a hand-made run
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
    return book.build_book(default_run, output_dir=tmp / "html", staging_dir=tmp / "staging",
                           reference="published", replication_run_dir=ua230_run)


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
