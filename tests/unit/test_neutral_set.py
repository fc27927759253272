"""Checks on the bundled control set ``neutral-60``: two wordings of one meaning per pair.

It loads by name, has the six categories of ua-230 with at least ten pairs each, no duplicate pair, no pair whose
two sides are the same statement, no statement shared (exactly or nearly) with replication-230 or ua-230, and its
data card records the file's SHA-256.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import re

import pytest

from ua_helpers.inputs import data
from ua_helpers.inputs.data import DatasetError, load_pairs

from test_replication_set import (DATA_DIR, EXPECTED_SIZES, NEAR_DUPLICATE_RATIO, _statements, _ua230_path,
                                   normalize)

JSON_PATH = DATA_DIR / "neutral-60.json"
CARD_PATH = DATA_DIR / "neutral-60.md"
MIN_PER_CATEGORY = 10


@pytest.fixture(scope="module")
def pairs():
    return load_pairs("neutral-60")


def test_loads_by_name_from_the_package(pairs):
    assert "neutral-60" in data.BUNDLED
    assert pairs.name == "neutral-60" and pairs.source == "bundled:neutral-60"
    assert pairs.sha256 == hashlib.sha256(JSON_PATH.read_bytes()).hexdigest()
    assert pairs.roles is None  # no side holds a framing


def test_has_the_six_categories_with_ten_or_more_pairs_each(pairs):
    assert pairs.categories == list(EXPECTED_SIZES), "categories or their order differ from ua-230's"
    counts = pairs.category_counts()
    assert all(n >= MIN_PER_CATEGORY for n in counts.values()), counts
    assert pairs.n_pairs == sum(counts.values()) >= 60


def test_no_duplicate_pairs_and_no_identical_sides(pairs):
    keys = [frozenset((normalize(a), normalize(b))) for a, b in zip(pairs.stmt_a, pairs.stmt_b)]
    assert len(set(keys)) == len(keys), "a pair occurs twice (in either order)"
    same = [(a, b) for a, b in zip(pairs.stmt_a, pairs.stmt_b) if normalize(a) == normalize(b)]
    assert not same, same
    statements = [normalize(s) for s in pairs.stmt_a + pairs.stmt_b]
    assert len(set(statements)) == len(statements), "a statement occurs twice"
    assert all(1 <= len(s.split()) <= 20 for s in pairs.stmt_a + pairs.stmt_b)


def test_every_category_says_what_it_holds_and_expects():
    raw = json.loads(JSON_PATH.read_text(encoding="utf-8"))
    for name, body in raw.items():
        assert set(body) == {"description", "expected_effect", "pairs"}, name
        assert body["description"].strip() and body["expected_effect"].strip(), name


def test_by_role_orientation_is_refused_with_a_reason():
    with pytest.raises(DatasetError, match="no 'roles' field"):
        load_pairs("neutral-60", orientation="by-role")


@pytest.mark.parametrize("other", ["replication-230", "ua-230"])
def test_no_statement_near_one_of_the_other_sets(other):
    if other == "ua-230":
        path = _ua230_path()
        if not path.is_file():
            pytest.skip(f"ua-230 not found at {path} (set UA_230_PATH to check overlap)")
    else:
        path = DATA_DIR / f"{other}.json"
    ours = {normalize(s) for s in _statements(json.loads(JSON_PATH.read_text(encoding="utf-8")))}
    theirs = {normalize(s) for s in _statements(json.loads(path.read_text(encoding="utf-8")))}
    assert not ours & theirs, sorted(ours & theirs)
    near = []
    for b in sorted(theirs):
        matcher = difflib.SequenceMatcher(None, autojunk=False)
        matcher.set_seq2(b)  # difflib caches what it learns about the second sequence
        for a in sorted(ours):
            matcher.set_seq1(a)
            # real_quick_ratio() >= quick_ratio() >= ratio() (difflib's upper bounds): the same pairs, found faster
            if (matcher.real_quick_ratio() >= NEAR_DUPLICATE_RATIO and matcher.quick_ratio() >= NEAR_DUPLICATE_RATIO
                    and matcher.ratio() >= NEAR_DUPLICATE_RATIO):
                near.append((a, b))
    assert not near, near


def test_data_card_records_the_files_sha256():
    card = CARD_PATH.read_text(encoding="utf-8")
    recorded = re.findall(r"`([0-9a-f]{64})`", card)
    assert recorded == [hashlib.sha256(JSON_PATH.read_bytes()).hexdigest()]
    assert f"({JSON_PATH.stat().st_size:,} bytes" in card
