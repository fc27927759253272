"""A full disk ends in one error that names the folder: the cache, an atomic write, a run (see test_rundir)."""
from __future__ import annotations

import errno

import pytest

from ua_helpers.inputs import _cache
from ua_helpers import _io


def test_a_full_cache_disk_names_the_cache_folder(tmp_path):
    """safetensors reports a full disk as its own error naming no folder; the cache says where, and how much room
    there is, and leaves no temporary folder behind."""
    def build(out):
        raise RuntimeError('Error while serializing: IoError(Os { code: 28, kind: StorageFull, message: "No space '
                           'left on device" })')
    with pytest.raises(OSError) as info:
        _cache.materialize_dir(tmp_path / "cache" / "model", build, what="converted model")
    assert info.value.errno == errno.ENOSPC and info.value.filename == str(tmp_path / "cache" / "model")
    assert f"no space left for the converted model in {tmp_path / 'cache'}" in info.value.strerror
    assert "MiB free there" in info.value.strerror and "\n" not in str(info.value)
    assert [p.name for p in (tmp_path / "cache").iterdir()] == []


def test_other_build_errors_pass_unchanged(tmp_path):
    def build(out):
        raise ValueError("a damaged GGUF header")
    with pytest.raises(ValueError, match="damaged GGUF"):
        _cache.materialize_dir(tmp_path / "cache" / "model", build)


def test_an_atomic_write_on_a_full_disk_names_its_file(tmp_path):
    def write(f):
        raise OSError(errno.ENOSPC, "No space left on device")
    with pytest.raises(OSError) as info:
        _io.atomic_write(tmp_path / "results.json", write)
    assert info.value.filename == str(tmp_path / "results.json") and info.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []  # no temporary file left
