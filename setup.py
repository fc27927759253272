"""Build hook: the wheel carries the six notebooks, copied at build time from ``notebooks/`` (where they are edited).

Everything else about the package is in ``pyproject.toml``. An editable install (``pip install -e .``) copies
nothing: ``ua_helpers.runs.rundir.notebooks_source`` then reads the checkout's ``notebooks/`` directly.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

NOTEBOOKS = Path(__file__).resolve().parent / "notebooks"


class BuildPyWithNotebooks(build_py):
    """``build_py`` plus a copy of ``notebooks/NN_*.ipynb`` into ``ua_helpers/notebooks`` of the build."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return
        found = sorted(NOTEBOOKS.glob("[0-9][0-9]_*.ipynb"))
        if not found:
            raise SystemExit(f"no notebooks in {NOTEBOOKS}: the wheel must carry them (build from a checkout "
                             "or an sdist)")
        target = Path(self.build_lib) / "ua_helpers" / "notebooks"
        target.mkdir(parents=True, exist_ok=True)
        for nb in found:
            shutil.copyfile(nb, target / nb.name)


setup(cmdclass={"build_py": BuildPyWithNotebooks})
