"""Datasets: the bundled replication set, ua-230 (local copy, pinned checksum, offline message), paths, bad input."""
from __future__ import annotations

import hashlib
import json
from importlib import resources

import numpy as np
import pytest

from ua_helpers.inputs import data
from ua_helpers.inputs.data import UA230_SHA256, DatasetError, PairSet, load_pairs


def test_replication_set_loads():
    pairs = load_pairs("replication-230")
    raw = (resources.files("ua_helpers.inputs") / "datasets" / "replication-230.json").read_bytes()
    assert isinstance(pairs, PairSet)
    assert len(pairs) == pairs.n_pairs == 230
    assert pairs.sha256 == hashlib.sha256(raw).hexdigest()
    assert pairs.name == "replication-230" and pairs.source == "bundled:replication-230"
    assert len(pairs.categories) == 6 and sum(pairs.category_counts().values()) == 230
    obj = json.loads(raw)
    first_cat = next(iter(obj))
    assert (pairs.stmt_a[0], pairs.stmt_b[0]) == tuple(obj[first_cat]["pairs"][0])
    assert pairs.category[0] == first_cat
    assert "description" in pairs.descriptions[first_cat]
    assert load_pairs() == pairs  # the default


def test_ua230_from_env_path(ua230_path, monkeypatch):
    monkeypatch.setenv("UA_230_PATH", str(ua230_path))
    pairs = load_pairs("ua-230")
    assert pairs.n_pairs == 230 and pairs.name == "ua-230"
    assert pairs.sha256 == UA230_SHA256 == hashlib.sha256(ua230_path.read_bytes()).hexdigest()
    assert pairs.source == str(ua230_path)
    assert len(pairs.categories) == 6


def test_ua230_as_a_plain_path_gives_the_same_pairs(ua230_path, monkeypatch):
    monkeypatch.setenv("UA_230_PATH", str(ua230_path))
    by_name, by_path = load_pairs("ua-230"), load_pairs(ua230_path)
    assert (by_path.stmt_a, by_path.stmt_b, by_path.category) == (by_name.stmt_a, by_name.stmt_b, by_name.category)
    assert by_path.sha256 == by_name.sha256


def test_ua230_wrong_checksum_is_refused(ua230_path, tmp_path, monkeypatch):
    copy = tmp_path / "dataset.json"
    copy.write_bytes(ua230_path.read_bytes() + b"\n")  # same pairs, different bytes
    monkeypatch.setenv("UA_230_PATH", str(copy))
    with pytest.raises(DatasetError, match=f"sha256 .*expected the pinned {UA230_SHA256}"):
        load_pairs("ua-230")


def test_ua230_env_pointing_nowhere(tmp_path, monkeypatch):
    monkeypatch.setenv("UA_230_PATH", str(tmp_path / "missing.json"))
    with pytest.raises(DatasetError, match="UA_230_PATH.*missing.json.*not a file"):
        load_pairs("ua-230")


def _offline(url, timeout=30.0):
    raise DatasetError(f"could not download {url}: <urlopen error [Errno -2] Name or service not known>")


def test_ua230_offline_without_copy_says_how_to_get_it(tmp_path, monkeypatch):
    monkeypatch.delenv("UA_230_PATH", raising=False)
    monkeypatch.setenv("UA_CACHE_DIR", str(tmp_path / "empty-cache"))
    monkeypatch.setattr(data, "_fetch", _offline)
    with pytest.raises(DatasetError) as info:
        load_pairs("ua-230")
    message = str(info.value)
    assert "not available offline" in message
    assert "UA_230_PATH" in message and data.UA230_URL in message
    assert not list((tmp_path / "empty-cache").rglob("*.json"))


def test_ua230_download_is_verified_and_cached(ua230_path, tmp_path, monkeypatch):
    monkeypatch.delenv("UA_230_PATH", raising=False)
    monkeypatch.setenv("UA_CACHE_DIR", str(tmp_path))
    fetched = []

    def fetch(url, timeout=30.0):
        fetched.append(url)
        return ua230_path.read_bytes()

    monkeypatch.setattr(data, "_fetch", fetch)
    first = load_pairs("ua-230")
    assert fetched == [data.UA230_URL] and first.source == data.UA230_URL
    monkeypatch.setattr(data, "_fetch", _offline)  # the second load needs no network
    second = load_pairs("ua-230")
    assert second.sha256 == UA230_SHA256 and second.stmt_a == first.stmt_a
    assert second.source.startswith(str(tmp_path))


def test_ua230_tampered_download_is_refused_and_not_cached(ua230_path, tmp_path, monkeypatch):
    monkeypatch.delenv("UA_230_PATH", raising=False)
    monkeypatch.setenv("UA_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(data, "_fetch", lambda url, timeout=30.0: ua230_path.read_bytes().replace(b"a", b"e", 1))
    with pytest.raises(DatasetError, match="expected the pinned"):
        load_pairs("ua-230")
    assert not list(tmp_path.rglob("*.json"))


# --------------------------------------------------------------------------- paths and bad input
def _write(tmp_path, obj, name="pairs.json"):
    path = tmp_path / name
    path.write_text(obj if isinstance(obj, str) else json.dumps(obj), encoding="utf-8")
    return path


GOOD = {"colours": {"description": "d", "pairs": [["Red is warm.", "Blue is cold."], ["Green grows.", "Grey fades."]]},
        "numbers": {"pairs": [["Two is even.", "Three is odd."]]}}


def test_load_from_path(tmp_path):
    path = _write(tmp_path, GOOD, "my-set.json")
    pairs = load_pairs(path)
    assert pairs.stmt_a == ["Red is warm.", "Green grows.", "Two is even."]
    assert pairs.stmt_b == ["Blue is cold.", "Grey fades.", "Three is odd."]
    assert pairs.category == ["colours", "colours", "numbers"]
    assert pairs.categories == ["colours", "numbers"] and pairs.category_counts() == {"colours": 2, "numbers": 1}
    assert pairs.name == "my-set" and pairs.source == str(path.resolve())
    assert pairs.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert load_pairs(str(path)) == pairs
    frame = pairs.to_frame()
    assert list(frame.columns) == ["category", "stmt_a", "stmt_b"] and len(frame) == 3


@pytest.mark.parametrize("obj, match", [
    ([["a", "b"]] * 3, "must be a JSON object of categories"),
    ("\"just a string\"", "must be a JSON object of categories"),
    ({}, "must be a JSON object of categories"),
    ({"colours": {"description": "no pairs here"}}, "category 'colours' has no 'pairs' list"),
    ({"colours": [["a", "b"]]}, "category 'colours' has no 'pairs' list"),
    ({"colours": {"pairs": {"a": "b"}}}, "'pairs' must be a list"),
    ({"colours": {"pairs": [["Red.", "Blue."], ["Green.", ""], ["Grey.", "Pink."]]}},
     r"category 'colours', pair 1: expected two non-empty strings"),
    ({"colours": {"pairs": [["Red.", "Blue."], ["Green.", "Grey.", "Pink."]]}},
     r"category 'colours', pair 1: expected two non-empty strings"),
    ({"colours": {"pairs": [["Red.", "Blue."]]}, "numbers": {"pairs": [["One.", 2]]}},
     r"category 'numbers', pair 0: expected two non-empty strings"),
    ({"colours": {"pairs": [["Red.", "Blue."], "Green. Grey."]}},
     r"category 'colours', pair 1: expected two non-empty strings"),
    ({"colours": {"pairs": [["Red.", "Blue."], ["   ", "Grey."]]}},
     r"category 'colours', pair 1: expected two non-empty strings"),
    ({"colours": {"pairs": [["Red.", "Blue."], ["Green.", "Grey."]]}}, "has 2 pairs; at least 3"),
    ("{\"colours\": {\"pairs\": [[\"Red.\", \"Blue.\"],]}}", "not valid UTF-8 JSON"),
    ("", "not valid UTF-8 JSON"),
])
def test_bad_dataset_files(tmp_path, obj, match):
    with pytest.raises(DatasetError, match=match):
        load_pairs(_write(tmp_path, obj))


def test_not_utf8(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('{"c": {"pairs": [["caf\u00e9", "b"]]}}'.encode("latin-1"))
    with pytest.raises(DatasetError, match="not valid UTF-8 JSON"):
        load_pairs(path)


@pytest.mark.parametrize("source", ["no-such-dataset", "ua230", "replication-231", "/no/such/file.json"])
def test_unknown_source(source):
    with pytest.raises(DatasetError, match="unknown dataset"):
        load_pairs(source)


def test_dataset_error_is_a_value_error():
    assert issubclass(DatasetError, ValueError)


def test_url_source_is_fetched(monkeypatch):
    raw = json.dumps(GOOD).encode()
    monkeypatch.setattr(data, "_fetch", lambda url, timeout=30.0: raw)
    pairs = load_pairs("https://example.org/sets/colours.json")
    assert pairs.n_pairs == 3 and pairs.name == "colours.json"
    assert pairs.sha256 == hashlib.sha256(raw).hexdigest()


def test_describe(replication_pairs):
    d = data.describe(replication_pairs)
    assert d["n_pairs"] == 230 and d["sha256"] == replication_pairs.sha256
    assert sum(d["categories"].values()) == 230
    assert d["orientation"] == "as-given" and d["n_swapped"] == 0


# --------------------------------------------------------------------------- side roles and orientation
ROLED = {
    "colours": {"roles": ["warm", "cold"], "first_role_side": ["A", "B", "B"],
                "pairs": [["Red is warm.", "Blue is cold."], ["Ice is cold.", "Fire is warm."],
                          ["Snow is cold.", "Sun is warm."]]},
    "numbers": {"roles": ["even", "odd"], "first_role_side": ["A"],
                "pairs": [["Two is even.", "Three is odd."]]},
}


def test_roles_are_read(tmp_path):
    pairs = load_pairs(_write(tmp_path, ROLED))
    assert pairs.roles == {"colours": ("warm", "cold"), "numbers": ("even", "odd")}
    assert pairs.first_role_side == ("A", "B", "B", "A")
    assert pairs.role_a == ["warm", "cold", "cold", "even"] and pairs.role_b == ["cold", "warm", "warm", "odd"]
    assert pairs.orientation == "as-given" and pairs.swapped == (False,) * 4
    assert pairs.identity == pairs.sha256


def test_a_dataset_without_roles_stays_valid(tmp_path):
    pairs = load_pairs(_write(tmp_path, GOOD))
    assert pairs.roles is None and pairs.first_role_side is None and pairs.role_a is None
    assert data.orient(pairs, "as-given") is pairs


def test_by_role_swaps_exactly_the_pairs_whose_side_a_holds_the_second_framing(tmp_path):
    given = load_pairs(_write(tmp_path, ROLED))
    pairs = load_pairs(_write(tmp_path, ROLED), orientation="by-role")
    assert pairs.swapped == (False, True, True, False)
    assert pairs.stmt_a == ["Red is warm.", "Fire is warm.", "Sun is warm.", "Two is even."]
    assert pairs.stmt_b == ["Blue is cold.", "Ice is cold.", "Snow is cold.", "Three is odd."]
    assert pairs.role_a == ["warm", "warm", "warm", "even"] and pairs.first_role_side == ("A",) * 4
    assert pairs.category == given.category and pairs.sha256 == given.sha256  # the same file ...
    assert pairs.identity != given.identity and "by-role" in pairs.identity  # ... a different identity
    assert data.orient(pairs, "by-role") is pairs
    back = data.orient(pairs, "as-given")
    assert back == given  # undoing the orientation restores the file's sides
    d = data.describe(pairs)
    assert d["orientation"] == "by-role" and d["n_swapped"] == 2 and d["sha256"] == given.sha256


def test_by_role_flips_the_preference_sign_of_exactly_the_swapped_pairs(tmp_path):
    # A fake extraction, built so that each statement's NLL and embedding are known functions of its text.
    given = load_pairs(_write(tmp_path, ROLED))
    pairs = data.orient(given, "by-role")
    nll = {s: 1.0 + 0.37 * i for i, s in enumerate(given.stmt_a + given.stmt_b)}
    emb = {s: np.full(5, float(i)) for i, s in enumerate(nll)}
    nll_a, nll_b = np.array([nll[s] for s in given.stmt_a]), np.array([nll[s] for s in given.stmt_b])
    emb_a = np.stack([emb[s] for s in given.stmt_a])[None].repeat(2, axis=0)  # [layer, pair, d_model]
    emb_b = np.stack([emb[s] for s in given.stmt_b])[None].repeat(2, axis=0)
    o_nll_a, o_nll_b = data.swap_sides(nll_a, nll_b, pairs.swapped)
    o_emb_a, o_emb_b = data.swap_sides(emb_a, emb_b, pairs.swapped, axis=1)
    # Orienting the arrays gives what extracting the oriented statements would give ...
    np.testing.assert_array_equal(o_nll_a, [nll[s] for s in pairs.stmt_a])
    np.testing.assert_array_equal(o_emb_b[1], np.stack([emb[s] for s in pairs.stmt_b]))
    # ... and the preference NLL(B) - NLL(A) changes sign exactly where a pair was swapped.
    before, after = nll_b - nll_a, o_nll_b - o_nll_a
    swapped = np.array(pairs.swapped)
    np.testing.assert_array_equal(after[swapped], -before[swapped])
    np.testing.assert_array_equal(after[~swapped], before[~swapped])
    assert swapped.any() and (~swapped).any() and np.all(before != 0)


def test_by_role_without_roles_names_the_missing_field(tmp_path):
    path = _write(tmp_path, GOOD, "plain.json")
    with pytest.raises(DatasetError, match=r"'plain' has no 'roles' field.*'as-given'"):
        load_pairs(path, orientation="by-role")
    with pytest.raises(ValueError, match="orientation must be one of as-given, by-role"):
        load_pairs(path, orientation="sideways")


@pytest.mark.parametrize("change, match", [
    ({"numbers": {"pairs": [["Two is even.", "Three is odd."]]}}, r"categories 'numbers' have no 'roles'"),
    ({"numbers": {"roles": ["even", "odd"], "pairs": [["Two is even.", "Three is odd."]]}},
     r"has 'roles' but no 'first_role_side'"),
    ({"numbers": {"first_role_side": ["A"], "pairs": [["Two is even.", "Three is odd."]]}},
     r"has 'first_role_side' but no 'roles'"),
    ({"numbers": {"roles": ["even", "even"], "first_role_side": ["A"], "pairs": [["Two.", "Three."]]}},
     "two different non-empty strings"),
    ({"numbers": {"roles": ["even"], "first_role_side": ["A"], "pairs": [["Two.", "Three."]]}},
     "two different non-empty strings"),
    ({"numbers": {"roles": ["even", "odd"], "first_role_side": ["A", "B"], "pairs": [["Two.", "Three."]]}},
     r"for each of its 1 pairs; got 2"),
    ({"numbers": {"roles": ["even", "odd"], "first_role_side": ["a"], "pairs": [["Two.", "Three."]]}},
     r"must be 'A' or 'B'; pair 0 has 'a'"),
])
def test_bad_roles(tmp_path, change, match):
    with pytest.raises(DatasetError, match=match):
        load_pairs(_write(tmp_path, {**ROLED, **change}))


def test_swap_sides_checks_shapes():
    with pytest.raises(ValueError, match="same shape"):
        data.swap_sides(np.zeros(3), np.zeros(4), [True, False, True])
    with pytest.raises(ValueError, match="one entry per pair along axis 1"):
        data.swap_sides(np.zeros((2, 3, 4)), np.zeros((2, 3, 4)), [True, False], axis=1)
