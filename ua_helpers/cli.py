"""``ua-book``: run the six notebooks with papermill into a run directory, and render a run into the book."""
from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Sequence

from ._io import atomic_write_json
from .book import BookError
from .config import ParameterError, RunConfig

NOTEBOOKS = ("01_setup", "02_extraction", "03_metrics", "04_correlation", "05_visualization", "06_summary")
MANIFEST = "manifest.json"


class RunError(RuntimeError):
    """A notebook failed; the message names the notebook, the cell and the error."""


def notebooks_dir() -> Path:
    """The repository's ``notebooks/`` folder (next to the package in a source checkout)."""
    return Path(__file__).resolve().parents[1] / "notebooks"


def validate(params: dict[str, Any]) -> RunConfig:
    """Check parameters before any notebook starts: names, types, dataset, model and layers."""
    from . import data, extraction, models

    cfg = RunConfig.from_mapping(params)
    try:
        data.load_pairs(cfg.dataset)
    except data.DatasetError as exc:
        raise ParameterError(f"dataset: {exc}") from None
    try:
        num_layers = models.num_layers_of(cfg.model, cfg.revision)
    except models.ModelLoadError as exc:
        raise ParameterError(f"model: {exc}") from None
    try:
        extraction.resolve_layers(cfg.layers if isinstance(cfg.layers, str) else list(cfg.layers), num_layers)
    except ValueError as exc:
        raise ParameterError(f"layers: {exc}") from None
    return cfg


def run(params: dict[str, Any], run_dir: str | Path | None = None, source: Path | None = None,
        log=print) -> Path:
    """Execute the six notebooks in order into ``run_dir``; write ``manifest.json`` last.

    A failed run leaves ``manifest.json`` with ``"status": "failed"`` and the error, never a complete-looking one.
    """
    import papermill as pm

    if run_dir is not None:
        params = {**params, "run_dir": str(run_dir)}
    params.setdefault("run_dir", RunConfig().run_dir)
    params["run_dir"] = str(Path(params["run_dir"]).expanduser().resolve())
    # The notebooks run in notebooks/: a path relative to where ua-book was started must become absolute.
    for name in ("model", "dataset", "reference_results"):
        value = params.get(name)
        if isinstance(value, str) and not value.startswith(("http://", "https://")) and Path(value).expanduser().exists():
            params[name] = str(Path(value).expanduser().resolve())
    cfg = validate(params)
    out = cfg.run_path
    source = source or notebooks_dir()
    missing = [nb for nb in NOTEBOOKS if not (source / f"{nb}.ipynb").is_file()]
    if missing:
        raise RunError(f"notebooks {missing} not found in {source}")
    out.mkdir(parents=True, exist_ok=True)
    (out / MANIFEST).unlink(missing_ok=True)
    (out / "results.json").unlink(missing_ok=True)
    (out / "notebooks").mkdir(exist_ok=True)
    manifest: dict[str, Any] = {"status": "running", "parameters": cfg.to_parameters(),
                                "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "notebooks": [],
                                "versions": _versions()}
    for nb in NOTEBOOKS:
        target = out / "notebooks" / f"{nb}.ipynb"
        t0 = time.perf_counter()
        log(f"[ua-book] {nb} ...")
        try:
            pm.execute_notebook(str(source / f"{nb}.ipynb"), str(target), parameters=cfg.to_parameters(),
                                kernel_name="python3", progress_bar=False, cwd=str(source))
        except pm.PapermillExecutionError as exc:
            error = f"{nb}: cell {exc.exec_count} raised {exc.ename}: {exc.evalue}"
            atomic_write_json(out / MANIFEST, {**manifest, "status": "failed", "error": error,
                                               "failed_notebook": str(target)})
            raise RunError(error + f"\n(executed notebook with the traceback: {target})") from None
        manifest["notebooks"].append(f"notebooks/{nb}.ipynb")
        log(f"[ua-book] {nb} done in {time.perf_counter() - t0:.1f} s")
    results = json.loads((out / "results.json").read_text())
    manifest.update(status="complete", finished=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                    model=results.get("model_info", {}), dataset=results.get("dataset", {}),
                    figures=sorted(f"figures/{p.name}" for p in (out / "figures").glob("*.png")))
    atomic_write_json(out / MANIFEST, manifest)
    return out


def _versions() -> dict[str, str]:
    import numpy
    import torch
    import transformers

    from . import __version__

    return {"ua_helpers": __version__, "python": platform.python_version(), "torch": torch.__version__,
            "transformers": transformers.__version__, "numpy": numpy.__version__}


def _parse_params(pairs: Sequence[Sequence[str]]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, value in pairs:
        if name in params:
            raise ParameterError(f"parameter {name} given twice")
        params[name] = value
    return params


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="ua-book", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute the six notebooks into a run directory")
    p_run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                       help="a notebook parameter, e.g. -p model EleutherAI/pythia-6.9b -p dataset ua-230")
    p_run.add_argument("--run-dir", default=None, help="output directory (default: runs/default)")
    p_build = sub.add_parser("build", help="render a run directory into the HTML book")
    p_build.add_argument("--run-dir", default="runs/default")
    p_build.add_argument("--replication-run-dir", default=None,
                         help="a second run (ua-230) for the replication chapter")
    p_build.add_argument("--reference", default="published",
                         help="results to compare with: 'published', a path or a URL")
    p_build.add_argument("--sweep-root", default=None, help="a ua-book sweep folder, for the cross-run chapter")
    p_build.add_argument("--output", default="_build/html")
    p_sweep = sub.add_parser("sweep", help="one run per entry of a sweep file (models, checkpoints), local or on Ray")
    p_sweep.add_argument("sweep_file", metavar="SWEEP.yaml", help="the sweep file (see ua_helpers.sweep)")
    p_sweep.add_argument("--engine", choices=("local", "ray"), default="local",
                         help="local: one entry after another (default); ray: one Ray task per entry")
    p_sweep.add_argument("--address", default=None,
                         help="Ray cluster address (auto, HOST:6379, ray://HOST:10001); default: a local instance")
    p_sweep.add_argument("--root", default=None,
                         help="where the run directories go (default: the file's root, else runs/<file stem>)")
    args = parser.parse_args(argv)
    try:
        if args.command == "run":
            out = run(_parse_params(args.parameter), run_dir=args.run_dir)
            print(f"[ua-book] run complete: {out}")
        elif args.command == "build":
            from .book import build_book

            html = build_book(args.run_dir, output_dir=args.output, replication_run_dir=args.replication_run_dir,
                              reference=args.reference, sweep_root=args.sweep_root)
            print(f"[ua-book] book built: {html}")
        elif args.command == "sweep":
            from .sweep import sweep_command

            return sweep_command(args.sweep_file, engine=args.engine, address=args.address, root=args.root)
    except (ParameterError, RunError, BookError, FileNotFoundError, ValueError) as exc:
        print(f"ua-book: error: {exc}", file=sys.stderr)
        return 2 if isinstance(exc, ParameterError) else 1
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
