"""A run is verified before its book is built: an edited, swapped or re-sealed run, a removed block, an older
evidence ladder and a faulty reference file are refused in one line naming the file; a reference file's text is
escaped on every generated page. Hand-made runs, no build."""
from __future__ import annotations

import json
import re

import pytest
from runs_fixtures import TAGS, add_evidence, edit_results, hostile_run, make_run

from ua_helpers import book
from ua_helpers.analysis import evidence
from ua_helpers.inputs import published
from ua_helpers.report import findings
from ua_helpers.runs import rundir


def _one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text, text
    return text


def test_build_refuses_an_edited_or_swapped_run_in_one_line(tmp_path):
    run = make_run(tmp_path / "run")
    other = make_run(tmp_path / "other", dataset="ua-230", seed=5, n_pairs=46)
    book.load_run(run)
    res = json.loads((run / "results.json").read_text())
    res["results"]["2"]["margin_asymmetry"]["r"] = 0.987654  # one number edited by hand
    (run / "results.json").write_text(json.dumps(res))
    with pytest.raises(book.BookError) as info:
        book.build_book(run, output_dir=tmp_path / "html", reference=None)
    assert re.search(r"results\.json does not match the SHA-256 that manifest\.json records", _one_line(info.value))
    (run / "results.json").write_bytes((other / "results.json").read_bytes())  # another run's results
    with pytest.raises(book.BookError) as info:
        book.build_book(run, output_dir=tmp_path / "html", reference=None)
    assert "results.json does not match the SHA-256" in _one_line(info.value)
    rundir.seal(run)  # even with the checksums rewritten, the manifest's dataset says whose results these are
    with pytest.raises(book.BookError) as info:
        book.load_run(run)
    assert "results.json is not this run's: its dataset name differs" in _one_line(info.value)
    # The override builds, and every page's banner says the run was not verified.
    unverified = book.load_run(run, verify=False)
    assert not unverified.verified
    from ua_helpers.book.build import _announcement

    assert _announcement(unverified).startswith("<strong>UNVERIFIED</strong>")
    assert "UNVERIFIED" not in _announcement(book.load_run(other))
    assert not (tmp_path / "html").exists() and not list(tmp_path.glob(".html.*"))  # nothing staged or left


def test_a_removed_block_is_refused_and_an_older_run_says_it_predates_it(tmp_path):
    run = add_evidence(make_run(tmp_path / "run"))
    edit_results(run, lambda r: r.update(schema_version=2, model_info={}, extended={"summary": {}, "tests": []},
                                          category_level={}, option_a_bins={}))
    assert book.load_run(run).results["schema_version"] == 2
    edit_results(run, lambda r: r.pop("evidence"))  # removed, and sealed again: the schema still sees it
    with pytest.raises(book.BookError) as info:
        book.load_run(run)
    assert "lacks the required key 'evidence' (results of schema version 2 always hold it: it was removed)" in \
        _one_line(info.value)
    edit_results(run, lambda r: r.update(schema_version=1))  # a run made before the ladder
    page = book.findings_page(book.BookContext(book.load_run(run), tmp_path / "pages"))
    assert "made before the evidence ladder" in page


def test_an_evidence_ladder_of_an_older_layout_is_refused_in_one_line(tmp_path):
    """A run whose ladder predates rung 6 (rung 5 then read "unconfounded") is refused, not half-read."""
    run = add_evidence(make_run(tmp_path / "run"))
    assert book.load_run(run).results["evidence"]["schema_version"] == evidence.SCHEMA_VERSION
    edit_results(run, lambda r: r["evidence"].update(schema_version=1))
    with pytest.raises(book.BookError) as info:
        book.load_run(run)
    assert re.search(rf"results\.json.*evidence ladder is of layout version 1, this version reads "
                     rf"{evidence.SCHEMA_VERSION} \(rungs 0-6, "
                     r"rung 6 'beyond lexical'\); run the analysis again", _one_line(info.value))
    with pytest.raises(ValueError, match="these results: its evidence ladder is of layout version 1"):
        findings.read_ladder(json.loads((run / "results.json").read_text()))  # the sentences refuse it too


@pytest.mark.parametrize("damage, match", [
    (lambda r: r["summary"].update(significant_tests=TAGS[1]), r"summary\.significant_tests = .*expected integer"),
    (lambda r: r["results"]["8"]["within_pair_sim"].update(r=1e308), r"within_pair_sim\.r = 1e\+308"),
    (lambda r: r["results"]["8"]["within_pair_sim"].update(r="abc"), r"within_pair_sim\.r = 'abc'"),
    (lambda r: r.update(metrics_tested=["other"], results={"8": {"other": r["results"]["8"]["within_pair_sim"]}},
                        best_per_layer=[], summary={"total_tests": 1, "significant_tests": 1,
                                                    "mid_layer_significant": 0, "late_layer_significant": 0}),
     r"share no test with the run"),
])
def test_a_faulty_reference_file_is_refused_naming_the_file(tmp_path, damage, match):
    run = make_run(tmp_path / "run")
    ref = json.loads(published.read_bytes(published.PAIR_LEVEL))
    damage(ref)
    path = tmp_path / "reference.json"
    path.write_text(json.dumps(ref))
    with pytest.raises(book.BookError) as info:
        book.build_book(run, output_dir=tmp_path / "html", reference=str(path))
    assert str(path) in _one_line(info.value) and re.search(match, str(info.value))
    deep = tmp_path / "deep.json"
    deep.write_text('{"a": ' * 50_000 + "1" + "}" * 50_000)
    with pytest.raises(book.BookError, match=r"deep\.json.*nested deeper"):
        book.build_book(run, output_dir=tmp_path / "html", reference=str(deep))


def test_text_fields_of_a_reference_file_are_escaped_on_every_page(tmp_path):
    """A reference file's text fields (model, method, caveat, dataset name and source) hold tags: they pass the
    schema (they are text) and render as text on every generated page."""
    from markdown_it import MarkdownIt

    ref = json.loads(published.read_bytes(published.PAIR_LEVEL))
    ref.update(model=TAGS[1], method=TAGS[0], caveat=TAGS[2], timestamp=TAGS[0],
               dataset={"name": TAGS[1], "source": TAGS[0], "sha256": "b" * 64, "n_pairs": 230}, num_layers=32)
    path = tmp_path / "reference.json"
    path.write_text(json.dumps(ref))
    run = book.load_run(hostile_run(tmp_path / "run"))
    staging = book.stage(run, tmp_path / "staging", reference=book.load_reference(str(path)))
    md = MarkdownIt("commonmark", {"html": True}).enable("table")
    for name in book.GENERATED_PAGES:
        rendered = md.render((staging / "book" / f"{name}.md").read_text())
        for tag in TAGS:
            assert tag not in rendered, (name, tag)
    assert "&lt;img src=x onerror=alert(2)&gt;" in md.render((staging / "book" / "comparison.md").read_text())
