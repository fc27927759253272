"""The book against hostile input, built privately: two books of different runs built at once (one of a dataset
whose name and statements hold HTML, a fence, a link and math, shown as Markdown outputs of its notebooks too),
every page of both read. The refusals of a tampered run or a faulty reference, before anything is built, are in
tests/unit/test_book_verify.py.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from runs_fixtures import TAGS, hostile_run, make_run


# --------------------------------------------------------------------------- a hostile dataset, two builds at once
def _pages(html: Path) -> dict[str, str]:
    return {p.relative_to(html).as_posix(): p.read_text(encoding="utf-8") for p in html.rglob("*.html")}


@pytest.mark.slow
def test_two_builds_at_once_each_show_their_own_run_and_no_hostile_tag(tmp_path):
    """Two ``ua-book build`` of different runs started together (one a hostile dataset) both succeed, each book
    shows its own run, and no page of the hostile book carries a tag from its data unescaped."""
    hostile = hostile_run(tmp_path / "hostile")
    plain = make_run(tmp_path / "plain", dataset="ua-230", seed=4, n_pairs=52)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    procs = [subprocess.Popen([sys.executable, "-m", "ua_helpers.cli", "build", "--run-dir", str(run),
                               "--output", str(tmp_path / out), "--reference", "published"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path)
             for run, out in ((hostile, "book-hostile"), (plain, "book-plain"))]
    outputs = [p.communicate(timeout=1200)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert not list(tmp_path.glob(".book-*"))  # the private staging folders are gone
    books = {name: _pages(tmp_path / f"book-{name}") for name in ("hostile", "plain")}
    run_page = {name: pages["book/run.html"] for name, pages in books.items()}
    assert "52" in run_page["plain"] and "ua-230" in run_page["plain"] and "evil" not in run_page["plain"]
    assert "evil" in run_page["hostile"] and "ua-230" not in run_page["hostile"]
    assert all("evil" not in page for page in books["plain"].values())
    for page_name, page in books["hostile"].items():
        for tag in TAGS:
            assert tag not in page, (page_name, tag)
        assert 'href="javascript' not in page, page_name
    summary = books["hostile"]["notebooks/05_visualization.html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in summary  # shown, as text
    assert "massive activations" in summary


