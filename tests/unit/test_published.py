"""The published results shipped in the package: each file's SHA-256 is checked whenever it is read."""
from __future__ import annotations

import hashlib

import pytest

from ua_helpers import book
from ua_helpers.inputs import published


def data_sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


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
