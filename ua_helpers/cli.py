"""``ua-book``: the command line. Argument parsing only; the work is done by ``rundir``, ``sweep`` and ``book``."""
from __future__ import annotations

import argparse
import sys
from dataclasses import fields
from typing import Any, Sequence

from .runs.config import ParameterError, RunConfig


def _parse_params(pairs: Sequence[Sequence[str]]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for name, value in pairs:
        if name in params:
            raise ParameterError(f"parameter {name} given twice")
        params[name] = value
    return params


def _parameter_help() -> str:
    """The ``-p`` names and defaults, from RunConfig's fields (``run_dir`` is ``--run-dir``)."""
    names = ", ".join(f"{f.name} ({f.default!r})" for f in fields(RunConfig) if f.name != "run_dir")
    return f"a run parameter, e.g. -p model EleutherAI/pythia-6.9b -p dataset ua-230. Names (defaults): {names}"


def build_parser() -> argparse.ArgumentParser:
    """Return the ``ua-book`` argument parser."""
    parser = argparse.ArgumentParser(prog="ua-book", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p_run = sub.add_parser("run", help="execute the six notebooks into a run directory")
    p_run.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                       help=_parameter_help())
    p_run.add_argument("--run-dir", default=None, help=f"output directory (default: {RunConfig().run_dir})")
    p_run.add_argument("--take-over", action="store_true",
                       help="take over a run directory whose lock was left by a process that is gone")
    p_run.add_argument("--allow-large", action="store_true",
                       help="run even where the hidden states alone would not fit in this machine's memory")
    p_done = sub.add_parser("is-complete", help="exit 0 if RUN_DIR holds a complete run, else 1 (and say why)")
    p_done.add_argument("run_dir", metavar="RUN_DIR")
    p_build = sub.add_parser("build", help="render a run directory into the HTML book")
    p_build.add_argument("--run-dir", default="runs/default")
    p_build.add_argument("--replication-run-dir", default=None,
                         help="a second run (ua-230) for the replication chapter")
    p_build.add_argument("--reference", default="published",
                         help="results to compare with: 'published', a path or a URL")
    p_build.add_argument("--sweep-root", default=None, help="a ua-book sweep folder, for the cross-run chapter")
    p_build.add_argument("--neutral-run-dir", default=None,
                         help="the same analysis on the neutral-60 control set, for the controls chapter")
    p_build.add_argument("--bos-run-dir", default=None,
                         help="the same analysis with -p prefix bos, for the controls chapter")
    p_build.add_argument("--output", default="_build/html")
    p_build.add_argument("--unverified", action="store_true",
                         help="build even where the run's files do not match the SHA-256 its manifest records "
                              "(every page's banner then says UNVERIFIED)")
    p_sweep = sub.add_parser("sweep", help="one run per entry of a sweep file (models, checkpoints), local or on Ray")
    p_sweep.add_argument("sweep_file", metavar="SWEEP.yaml", help="the sweep file (see ua_helpers.runs.sweep)")
    p_sweep.add_argument("--engine", choices=("local", "ray"), default="local",
                         help="local: one entry after another (default); ray: one Ray task per entry")
    p_sweep.add_argument("--address", default=None,
                         help="Ray cluster address (auto, HOST:6379, ray://HOST:10001); default: a local instance")
    p_sweep.add_argument("--root", default=None,
                         help="where the run directories go (default: the file's root, else runs/<file stem>)")
    p_sweep.add_argument("--take-over", action="store_true",
                         help="take over the stale locks of a sweep whose process is gone")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``ua-book``; return the exit code (0 done, 1 failed, 2 bad parameters, 128+N stopped by signal N)."""
    args = build_parser().parse_args(argv)
    from .runs import rundir
    from .runs._runlock import RunDirError

    try:
        if args.command == "run":
            out = rundir.execute(_parse_params(args.parameter), run_dir=args.run_dir, take_over=args.take_over,
                                 allow_large=args.allow_large)
            print(f"[ua-book] run complete: {out}")
        elif args.command == "is-complete":
            reason = rundir.completeness(args.run_dir)
            if reason is not None:
                print(f"ua-book: {reason}", file=sys.stderr)
                return 1
        elif args.command == "build":
            return _build(args)
        elif args.command == "sweep":
            from .runs.sweep import sweep_command

            return sweep_command(args.sweep_file, engine=args.engine, address=args.address, root=args.root,
                                 take_over=args.take_over)
    except ParameterError as exc:
        print(f"ua-book: error: {exc}", file=sys.stderr)
        return 2
    except rundir.RunError as exc:
        print(f"ua-book: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except (RunDirError, FileNotFoundError, ValueError) as exc:
        print(f"ua-book: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a full disk, a read-only or vanished folder: one line naming the path
        print(f"ua-book: error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""),
              file=sys.stderr)
        return 1
    return 0


def _build(args: argparse.Namespace) -> int:
    from .book import BookError, build_book

    try:
        html = build_book(args.run_dir, output_dir=args.output, replication_run_dir=args.replication_run_dir,
                          reference=args.reference, sweep_root=args.sweep_root, verify=not args.unverified,
                          neutral_run_dir=args.neutral_run_dir, bos_run_dir=args.bos_run_dir)
    except BookError as exc:
        print(f"ua-book: error: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"ua-book: error: {exc.strerror or exc}" + (f": {exc.filename}" if exc.filename else ""),
              file=sys.stderr)
        return 1
    print(f"[ua-book] book built: {html}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
