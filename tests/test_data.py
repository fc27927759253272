"""Datasets: the bundled replication set, ua-230 (local copy, pinned checksum, offline message), paths, bad input."""
from __future__ import annotations

import hashlib
import json
from importlib import resources

import pytest

from ua_helpers import data
from ua_helpers.data import UA230_SHA256, DatasetError, PairSet, load_pairs


def test_replication_set_loads():
    pairs = load_pairs("replication-230")
    raw = (resources.files("ua_helpers") / "datasets" / "replication-230.json").read_bytes()
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
