"""The kernels that ``ua-book run`` starts keep the console quiet: no transport warning, no interrupt-at-shutdown
error, while any other kernel error still shows."""
from __future__ import annotations

import subprocess
import sys

import nbformat
import pytest

pytestmark = pytest.mark.slow

CELL = """k = get_ipython().kernel
k.log.error("KeyboardInterrupt caught in kernel.")
k.log.error("another kernel error")
print("ran")"""

DRIVER = """import sys, papermill as pm
from ua_helpers.runs import rundir
pm.execute_notebook(sys.argv[1], sys.argv[2], kernel_name="python3", progress_bar=False, **rundir.kernel_options())
"""


def test_kernels_start_quietly_and_drop_only_the_shutdown_interrupt_record(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(CELL)]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(nb, tmp_path / "in.ipynb")
    proc = subprocess.run([sys.executable, "-c", DRIVER, str(tmp_path / "in.ipynb"), str(tmp_path / "out.ipynb")],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "another kernel error" in proc.stderr  # other kernel errors still reach the console
    assert "KeyboardInterrupt caught in kernel" not in proc.stderr
    assert "without encryption" not in proc.stderr
    out = nbformat.read(tmp_path / "out.ipynb", as_version=4)
    assert out.cells[0].outputs[0]["text"] == "ran\n"
