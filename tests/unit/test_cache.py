"""The content-verified, concurrency-safe cache directory (``ua_helpers.inputs._cache``): every file's digest
recorded, damage found and rebuilt with a warning naming the file, a damaged directory never removed in place,
races between builders settled, stale temporaries cleaned."""
from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cache_stubs import STUB_FILES, flip_bit, stub_build

from ua_helpers.inputs import _cache


def test_materialize_records_every_file_digest(tmp_path):
    target, record = _cache.materialize_dir(tmp_path / "m", stub_build())
    assert record["source"] == "stub" and record["format"] == _cache.RECORD_FORMAT
    assert record["files"] == {name: {"size": len(c), "sha256": hashlib.sha256(c).hexdigest()}
                               for name, c in STUB_FILES.items()}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m"]  # no temporary left, no owner file inside
    assert sorted(p.name for p in target.iterdir()) == ["complete.json", "config.json", "model.safetensors"]
    calls = []
    again, _ = _cache.materialize_dir(target, lambda out: calls.append(out))
    assert again == target and calls == []  # verified, not rebuilt


def test_flipped_bit_is_found_and_rebuilt_with_a_warning_naming_the_file(tmp_path):
    target, record = _cache.materialize_dir(tmp_path / "m", stub_build())
    flip_bit(target / "model.safetensors", 1000)
    _cache._file_sha256.cache_clear()  # a new process: the digest is not remembered
    with pytest.raises(_cache.CacheMismatch, match=r"model\.safetensors does not match the SHA-256"):
        _cache.verify_dir(target)
    with pytest.warns(UserWarning, match=r"rebuilding the cache directory: .*model\.safetensors does not match"):
        _, rebuilt = _cache.materialize_dir(target, stub_build())
    assert rebuilt["files"] == record["files"]
    assert (target / "model.safetensors").read_bytes() == STUB_FILES["model.safetensors"]


@pytest.mark.parametrize("damage, match", [
    ("old_format", "older cache format"),
    ("missing", r"config\.json is missing"),
    ("extra", r"extra\.bin is not in the completion record"),
    ("size", r"model\.safetensors has 16385 bytes"),
    ("unreadable", "unreadable"),
])
def test_damaged_cache_directories_are_rebuilt(tmp_path, damage, match):
    target, _ = _cache.materialize_dir(tmp_path / "m", stub_build())
    if damage == "old_format":  # as written before digests were recorded
        (target / "complete.json").write_text('{"gguf": "/some/where.gguf"}')
    elif damage == "missing":
        (target / "config.json").unlink()
    elif damage == "extra":
        (target / "extra.bin").write_bytes(b"x")
    elif damage == "size":
        with open(target / "model.safetensors", "ab") as f:
            f.write(b"\0")
    else:
        (target / "complete.json").write_text("{not json")
    with pytest.warns(UserWarning, match=match):
        _cache.materialize_dir(target, stub_build())
    _cache.verify_dir(target)
    assert not list(tmp_path.glob(".tmp-*"))


def test_replacing_a_damaged_directory_never_removes_it_in_place(tmp_path, monkeypatch):
    """The old target is renamed aside in one step, never deleted where readers look (rmtree then rename)."""
    target, _ = _cache.materialize_dir(tmp_path / "m", stub_build())
    flip_bit(target / "config.json", 3)
    _cache._file_sha256.cache_clear()
    removed = []
    real_rmtree = _cache.shutil.rmtree

    def rmtree(path, *args, **kwargs):
        assert Path(path) != target, "the target directory was deleted in place"
        removed.append(Path(path).name)
        return real_rmtree(path, *args, **kwargs)

    monkeypatch.setattr(_cache.shutil, "rmtree", rmtree)
    with pytest.warns(UserWarning, match="config.json"):
        _cache.materialize_dir(target, stub_build())
    assert any(name.startswith(".tmp-old-m-") for name in removed)
    _cache.verify_dir(target)


def test_loser_of_a_race_uses_the_winners_directory(tmp_path):
    target = tmp_path / "m"

    def build_while_another_wins(out):
        _cache.materialize_dir(target, stub_build())  # the other process publishes first
        return stub_build()(out)

    _, record = _cache.materialize_dir(target, build_while_another_wins)
    assert record["files"] == _cache.verify_dir(target)["files"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".m.lock", "m"]  # the lock file stays, by design


def test_stale_temporaries_are_cleaned(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)
    host = socket.gethostname()
    dirs = {}
    for label, owner, age_s in [("dead", {"host": host, "pid": dead_pid}, 0), ("alive", {"host": host,
                                "pid": os.getpid()}, 2 * _cache.STALE_AFTER_S), ("old", None, 2 * _cache.STALE_AFTER_S),
                                ("young", None, 0), ("other-host", {"host": host + "-x", "pid": 1}, 60)]:
        d = tmp_path / f".tmp-m-{label}"
        d.mkdir()
        (d / "model.safetensors").write_bytes(b"half")
        if owner:
            (d / ".owner.json").write_text(json.dumps(owner))
        t = time.time() - age_s
        os.utime(d, (t, t))
        dirs[label] = d
    removed = {p.name for p in _cache.clean_stale(tmp_path)}
    assert removed == {".tmp-m-dead", ".tmp-m-old"}
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-m-alive", ".tmp-m-other-host", ".tmp-m-young"]


def test_a_dead_builds_temporary_is_cleaned_even_when_the_target_is_good(tmp_path):
    target, _ = _cache.materialize_dir(tmp_path / "m", stub_build())
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    leftover = tmp_path / ".tmp-m-killed"
    leftover.mkdir()
    (leftover / ".owner.json").write_text(json.dumps({"host": __import__("socket").gethostname(),
                                                      "pid": int(dead.stdout)}))
    _cache.materialize_dir(target, stub_build())
    assert not leftover.exists()


#: One racer: imports, says it is ready, waits for the other (a file each: both start within a poll of 5 ms), then
#: builds into the shared target (the build takes 0.4 s, so the two overlap) and prints what it reads back.
_RACER = r"""
import json, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
from cache_stubs import STUB_FILES, stub_build
from ua_helpers.inputs import _cache
barrier, me = Path(sys.argv[2]), sys.argv[3]
(barrier / me).touch()
deadline = time.monotonic() + 120  # a guard against hanging only: the other racer never started
while len(list(barrier.iterdir())) < 2:
    if time.monotonic() > deadline:
        sys.exit("the other racer never became ready")
    time.sleep(0.005)
target, record = _cache.materialize_dir(Path(sys.argv[1]), stub_build(STUB_FILES, delay_s=0.2))
files = {p.name: p.read_bytes().hex() for p in sorted(target.iterdir()) if p.name != "complete.json"}
print(json.dumps({"digest": _cache.content_digest(record), "files": files}))
"""


def test_two_processes_converting_at_once_both_succeed_identically(tmp_path):
    """Two fresh processes build into one empty cache at the same moment (the build takes 0.4 s): both succeed,
    both read the same verified directory, and no temporary is left."""
    target = tmp_path / "cache" / "gguf-stub"
    barrier = tmp_path / "ready"
    barrier.mkdir()
    tests_dir = str(Path(__file__).resolve().parents[1])
    procs = [subprocess.Popen([sys.executable, "-c", _RACER, str(target), str(barrier), f"racer-{i}", tests_dir],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
    first, second = (json.loads(out) for out, _ in outs)
    assert first == second
    assert first["files"] == {name: c.hex() for name, c in STUB_FILES.items()}
    assert sorted(p.name for p in target.parent.iterdir() if not p.name.endswith(".lock")) == ["gguf-stub"]
