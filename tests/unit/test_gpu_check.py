"""``benchmarks/gpu_check.py`` where no CUDA GPU is visible: exit status 2 and a message saying so, nothing run.

The script is run in this process (``runpy``, as ``python benchmarks/gpu_check.py`` runs it): the check reads
``torch.cuda.is_available()`` first, so a second interpreter importing torch adds nothing but seconds.
"""
from __future__ import annotations

import runpy
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def test_gpu_check_without_cuda_exits_2(monkeypatch, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a CUDA GPU is visible: the check would run for real")
    monkeypatch.setattr(sys, "argv", [str(REPO / "benchmarks" / "gpu_check.py")])
    with pytest.raises(SystemExit) as info:
        runpy.run_path(str(REPO / "benchmarks" / "gpu_check.py"), run_name="__main__")
    assert info.value.code == 2
    captured = capsys.readouterr()
    assert "no CUDA GPU" in captured.err and captured.out == ""
