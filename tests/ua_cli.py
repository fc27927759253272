"""Run this environment's ``ua-book`` command from tests."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

UA_BOOK = str(Path(sys.executable).parent / "ua-book")
REPO = Path(__file__).resolve().parents[1]


def ua_book(*args: str, check: bool = True, timeout: int = 900,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """Run ``ua-book ARGS`` (with ``env`` added to the environment); return the completed process, raising with
    its output if ``check`` and it failed."""
    proc = subprocess.run([UA_BOOK, *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})
    if check and proc.returncode != 0:
        raise AssertionError(f"ua-book {' '.join(args)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc
