"""Glue between the notebooks and the engine: the run's parameters, its folder, and what one stage hands on.

Nothing here computes a number of its own. A notebook calls the engine (``extraction.extract``, ``metrics``,
``stats``, ``inference``, ``levels``, ``evidence``, ``results``) with its arguments in view; these functions only
find what an earlier stage made: the extraction in the content-addressed cache (extracted through the same
engine call where it is missing) and ``results.json`` in the run folder (where it is missing, notebook 4 itself
is executed on request, never a copy of its steps).
"""
from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path
from typing import Any, Mapping

from .._io import atomic_write
from ..inputs import data, extraction, models
from ..report import results, tables
from ..report.blocks import Results
from . import rundir
from .config import RunConfig

FIGURE_DPI = 80  # inline figures stay small in stored notebooks
SAVED_DPI = 110  # figures saved into the run folder (and shown by the book)


def configure(namespace: Mapping[str, Any]) -> RunConfig:
    """Validate a notebook's parameters (the names of RunConfig's fields found in ``namespace``); make its folder.

    Parameters
    ----------
    namespace : mapping
        The notebook's ``globals()``: the ``parameters`` cell and what papermill injected after it.

    Under ``ua-book run`` (``$UA_RUN_STAGING`` set) the returned ``run_dir`` is the run's staging folder.
    """
    import warnings

    import matplotlib
    from tqdm import TqdmWarning

    # Stored notebooks and the book carry results, not progress bars: tqdm's notice that no notebook widget is
    # installed (raised when transformers first imports tqdm.auto) is silenced, and so are the two libraries' bars.
    warnings.filterwarnings("ignore", message="IProgress not found", category=TqdmWarning)
    # Both libraries read the variable when first imported; where one already is, its switch is turned now
    # (importing them here would cost the notebooks that never load a model a second or two).
    os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"
    if "huggingface_hub" in sys.modules:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if "transformers" in sys.modules:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    cfg = RunConfig.from_mapping({name: namespace[name] for name in RunConfig.parameter_names() if name in namespace})
    staging = os.environ.get(rundir.STAGING_ENV)
    if staging:  # executed by ua-book run: write into its staging folder, whatever run_dir the parameters show
        cfg = dataclasses.replace(cfg, run_dir=staging)
    (cfg.run_path / "figures").mkdir(parents=True, exist_ok=True)
    matplotlib.rcParams["figure.dpi"] = FIGURE_DPI
    return cfg


def load_pairs(cfg: RunConfig) -> data.PairSet:
    """Return the run's pairs: ``data.load_pairs(cfg.dataset, orientation=cfg.orientation)``."""
    return data.load_pairs(cfg.dataset, orientation=cfg.orientation)


def load_extraction(cfg: RunConfig, pairs: data.PairSet) -> extraction.Extraction:
    """Return notebook 2's extraction: from the cache without loading the model, else extracted now."""
    key = extraction.cache_key_for(cfg.model, pairs, revision=cfg.revision, dtype=cfg.dtype, device=cfg.device,
                                   layers=cfg.layers, pooling=cfg.pooling, representation=cfg.representation,
                                   prefix=cfg.prefix, seed=cfg.seed)
    cached = extraction.load_cached(key)
    if cached is not None:
        return cached
    lm = models.load_model(cfg.model, revision=cfg.revision, dtype=cfg.dtype, device=cfg.device)
    return extraction.extract(lm, pairs, layers=cfg.layers, batch_size=cfg.batch_size, pooling=cfg.pooling,
                              representation=cfg.representation, prefix=cfg.prefix, seed=cfg.seed, progress=False)


def load_results(cfg: RunConfig, *, recompute: bool = False) -> dict[str, Any]:
    """Return the run's ``results.json``, which notebook 4 writes.

    Where the run folder has none, this says so; with ``recompute=True`` it first executes notebook 4 itself
    (:func:`ua_helpers.runs.rundir.execute_one`), so that the notebook's cells stay the one description of the
    analysis.
    """
    path = cfg.run_path / rundir.RESULTS
    if not path.is_file():
        if not recompute:
            raise FileNotFoundError(
                f"{path} not found: notebook 04_correlation writes it. Run that notebook first, call "
                "pipeline.load_results(cfg, recompute=True) to execute it now, or make the whole run with "
                "`ua-book run`.")
        rundir.execute_one("04_correlation", cfg)
    return results.load_results(path)


def save_results(cfg: RunConfig, run_results: Results) -> Results:
    """Write ``run_results`` as ``results.json`` in the run folder, and beside it every statistic of every test
    as ``tests.csv`` (:func:`ua_helpers.report.tables.write_tests_csv`, where the results have an evidence block);
    each file atomically. Returns ``run_results``."""
    results.write_results(cfg.run_path / rundir.RESULTS, run_results)
    if "evidence" in run_results:
        tables.write_tests_csv(cfg.run_path, run_results)
    return run_results


def save_figure(fig, cfg: RunConfig, name: str) -> Path:
    """Save a figure as ``figures/<name>.png`` in the run folder (atomically)."""
    path = cfg.run_path / "figures" / f"{name}.png"
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=SAVED_DPI, bbox_inches="tight"))
    return path


def sync_parameters_cells(paths) -> list[Path]:
    """Rewrite each notebook's ``parameters`` cell as :func:`~ua_helpers.runs.config.parameters_cell` (``make
    sync-parameters``); return the notebooks that changed. Outputs and other cells are left as they are."""
    import nbformat

    from .config import parameters_cell

    changed = []
    for path in map(Path, paths):
        nb = nbformat.read(path, as_version=4)
        cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
        if len(cells) != 1:
            raise ValueError(f"{path} has {len(cells)} cells tagged 'parameters'; expected one")
        if cells[0].source != parameters_cell():
            cells[0].source = parameters_cell()
            atomic_write(path, lambda f: f.write(nbformat.writes(nb).encode("utf-8") + b"\n"))
            changed.append(path)
    return changed
