"""Stand-ins for a model conversion in the cache tests: a build that writes known files (slowly, if asked), and a
one-bit flip that keeps a file's size and modification time. Imports nothing heavy (the racing subprocesses of
test_cache.py import it)."""
from __future__ import annotations

import os
import time

STUB_FILES = {"config.json": b'{"stub": true}', "model.safetensors": bytes(range(256)) * 64}


def stub_build(files=STUB_FILES, delay_s: float = 0.0):
    """A ``build(out)`` for ``_cache.materialize_dir`` writing ``files``, sleeping ``delay_s`` after each."""
    def build(out):
        for name, content in files.items():
            (out / name).write_bytes(content)
            time.sleep(delay_s)
        return {"source": "stub"}
    return build


def flip_bit(path, offset: int, bit: int = 6):
    """Flip one bit in place, keeping the size and the modification time (the hardest case to notice)."""
    st = path.stat()
    raw = bytearray(path.read_bytes())
    raw[offset] ^= 1 << bit
    # A new file renamed over the old: a model already loaded from it may memory-map the old one.
    damaged = path.with_name(path.name + ".flipped")
    damaged.write_bytes(bytes(raw))
    os.utime(damaged, ns=(st.st_atime_ns, st.st_mtime_ns))
    os.replace(damaged, path)
