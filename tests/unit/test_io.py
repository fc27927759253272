"""The leaf helpers of ``ua_helpers._io``: the cache folder (bounded downloads are in test_download.py)."""
from __future__ import annotations

import os

from ua_helpers import _io


def test_relative_cache_dir_is_made_absolute_once(tmp_path, monkeypatch):
    (tmp_path / "work" / "notebooks").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "work")
    monkeypatch.setenv("UA_CACHE_DIR", "rel-cache")
    first = _io.cache_dir("models")
    assert first == tmp_path / "work" / "rel-cache" / "models" and first.is_dir()
    assert os.environ["UA_CACHE_DIR"] == str(tmp_path / "work" / "rel-cache")  # children inherit it
    monkeypatch.chdir(tmp_path / "work" / "notebooks")  # where notebook kernels run
    assert _io.cache_dir("models") == first
    assert not (tmp_path / "work" / "notebooks" / "rel-cache").exists()
