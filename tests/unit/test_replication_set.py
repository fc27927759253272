"""Checks on the bundled replication set ``replication-230``.

The set is original text written for this project. These tests check its shape
(same six categories and sizes as ua-230), basic hygiene of the statements, that
it shares no statement or pair with ua-230 (exactly or nearly), and that the data
card records the JSON file's actual SHA-256.
"""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import re
import string
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DATA_DIR = REPO / "ua_helpers" / "inputs" / "datasets"
JSON_PATH = DATA_DIR / "replication-230.json"
CARD_PATH = DATA_DIR / "replication-230.md"

EXPECTED_SIZES = {
    "ground_truth_numeric": 30,
    "ground_truth_nonnumeric": 20,
    "tech_philosophy": 50,
    "lifestyle": 50,
    "business": 50,
    "scientific_facts": 30,
}

NEAR_DUPLICATE_RATIO = 0.9

_PUNCT = re.compile("[" + re.escape(string.punctuation) + "]")
_SPACE = re.compile(r"\s+")


def normalize(text: str) -> str:
    """Lowercase, drop ASCII punctuation, collapse whitespace."""
    return _SPACE.sub(" ", _PUNCT.sub("", text.lower())).strip()


def _load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def _statements(data: dict) -> list[str]:
    return [s for cat in data.values() for pair in cat["pairs"] for s in pair]


@pytest.fixture(scope="module")
def data() -> dict:
    return _load(JSON_PATH)


def _ua230_path() -> Path:
    env = os.environ.get("UA_230_PATH")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "ua-230" / "dataset.json"


@pytest.fixture(scope="module")
def ua230() -> dict:
    path = _ua230_path()
    if not path.is_file():
        pytest.skip(f"ua-230 not found at {path} (set UA_230_PATH to check overlap)")
    return _load(path)


def test_categories_and_sizes(data):
    assert list(data) == list(EXPECTED_SIZES), "categories or their order differ from ua-230"
    for name, size in EXPECTED_SIZES.items():
        cat = data[name]
        assert len(cat["pairs"]) == size, name
        for key in ("description", "expected_effect"):
            assert isinstance(cat.get(key), str) and cat[key].strip(), f"{name}.{key}"
    assert sum(len(c["pairs"]) for c in data.values()) == 230


def test_pairs_are_two_distinct_short_statements(data):
    for name, cat in data.items():
        for i, pair in enumerate(cat["pairs"]):
            where = f"{name}[{i}]"
            assert isinstance(pair, list) and len(pair) == 2, where
            a, b = pair
            assert isinstance(a, str) and isinstance(b, str), where
            assert a.strip() and b.strip(), where
            assert normalize(a) != normalize(b), where
            for s in pair:
                assert 1 <= len(s.split()) <= 20, f"{where}: {s!r}"


def test_no_duplicate_statements(data):
    seen: dict[str, str] = {}
    dupes = []
    for s in _statements(data):
        key = normalize(s)
        if key in seen:
            dupes.append((seen[key], s))
        seen[key] = s
    assert not dupes, dupes


def test_no_statement_overlap_with_ua230(data, ua230):
    ours = sorted({normalize(s) for s in _statements(data)})
    theirs = sorted({normalize(s) for s in _statements(ua230)})
    exact = set(ours) & set(theirs)
    assert not exact, sorted(exact)

    near = []
    for a in ours:
        matcher = difflib.SequenceMatcher(None, autojunk=False)
        matcher.set_seq2(a)  # seq2 is the cached side
        for b in theirs:
            matcher.set_seq1(b)
            if (
                matcher.real_quick_ratio() >= NEAR_DUPLICATE_RATIO
                and matcher.quick_ratio() >= NEAR_DUPLICATE_RATIO
                and matcher.ratio() >= NEAR_DUPLICATE_RATIO
            ):
                near.append((a, b, round(matcher.ratio(), 3)))
    assert not near, near


def test_no_pair_overlap_with_ua230(data, ua230):
    def pairs(d):
        return {frozenset((normalize(a), normalize(b))) for c in d.values() for a, b in c["pairs"]}

    shared = pairs(data) & pairs(ua230)
    assert not shared, [sorted(p) for p in shared]


def test_data_card_records_sha256():
    card = CARD_PATH.read_text(encoding="utf-8")
    recorded = re.findall(r"\b[0-9a-f]{64}\b", card)
    assert recorded, "no sha256 found in the data card"
    actual = hashlib.sha256(JSON_PATH.read_bytes()).hexdigest()
    assert set(recorded) == {actual}, f"card records {recorded}, file is {actual}"


EXPECTED_ROLES = {
    "ground_truth_numeric": ["named concept", "numeric value"],
    "ground_truth_nonnumeric": ["everyday framing", "technical framing"],
    "tech_philosophy": ["traditional option", "alternative option"],
    "lifestyle": ["common or traditional choice", "alternative choice"],
    "business": ["established strategy", "alternative strategy"],
    "scientific_facts": ["general principle", "concrete instance"],
}


def test_side_roles_alternate_as_the_card_says(data):
    """Framing 0 is side A in the 1st, 3rd, ... pair of each category and side B in the 2nd, 4th, ..."""
    for name, cat in data.items():
        assert list(cat) == ["description", "expected_effect", "roles", "first_role_side", "pairs"], name
        assert cat["roles"] == EXPECTED_ROLES[name]
        assert cat["first_role_side"] == ["A" if i % 2 == 0 else "B" for i in range(len(cat["pairs"]))], name


def test_numeric_side_holds_the_number(data):
    """In ground_truth_numeric the recorded 'numeric value' side contains a digit in every pair."""
    cat = data["ground_truth_numeric"]
    for i, (pair, side) in enumerate(zip(cat["pairs"], cat["first_role_side"])):
        numeric = pair[1] if side == "A" else pair[0]
        assert re.search(r"\d", numeric), f"pair {i}: {pair}"


def test_by_role_orientation_of_the_bundled_set():
    from ua_helpers.inputs.data import load_pairs

    given, oriented = load_pairs("replication-230"), load_pairs("replication-230", orientation="by-role")
    assert sum(oriented.swapped) == 115 and oriented.sha256 == given.sha256
    for name, (first, _) in EXPECTED_ROLES.items():
        idx = [i for i, c in enumerate(oriented.category) if c == name]
        assert {oriented.role_a[i] for i in idx} == {first}
        assert [oriented.swapped[i] for i in idx] == [k % 2 == 1 for k in range(len(idx))]
