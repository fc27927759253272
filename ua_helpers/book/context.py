"""What every generated page draws on: a completed run, the reference results, and :class:`BookContext`."""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import results
from .._io import sha256_file
from . import BookError

#: Where generated pages put the files their readers can download (relative to the staged ``book/``).
FILES_DIR = "files"


# --------------------------------------------------------------------------- runs
@dataclass(frozen=True)
class Run:
    """A completed run directory: its manifest and its results."""

    path: Path
    manifest: dict[str, Any]
    results: dict[str, Any]

    @property
    def model(self) -> dict[str, Any]:
        return self.manifest.get("model") or {"name": self.results.get("model")}

    @property
    def dataset(self) -> dict[str, Any]:
        return self.manifest.get("dataset") or self.results.get("dataset") or {}

    @property
    def parameters(self) -> dict[str, Any]:
        return self.manifest.get("parameters") or self.results.get("parameters") or {}

    @property
    def dataset_name(self) -> str:
        return str(self.dataset.get("name") or "unknown dataset")


def load_run(run_dir: str | os.PathLike) -> Run:
    """Read a run directory made by ``ua-book run``; raise :class:`BookError` unless it is complete.

    A run is complete when ``manifest.json`` says ``"status": "complete"`` and ``results.json`` has the seed's
    schema.
    """
    path = Path(run_dir).expanduser()
    manifest_path = path / "manifest.json"
    if not manifest_path.is_file():
        raise BookError(f"{path} is not a run directory (it has no manifest.json). "
                        f"Make one with: ua-book run --run-dir {path}")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BookError(f"{manifest_path} is not valid JSON: {exc}") from None
    status = manifest.get("status")
    if status != "complete":
        raise BookError(f"the run in {path} is not complete (manifest status {status!r}, not 'complete'). "
                        f"Run it again: ua-book run --run-dir {path}")
    try:
        res = results.load_results(path / "results.json")
    except (FileNotFoundError, ValueError) as exc:
        raise BookError(f"the run in {path} has no usable results.json: {exc}") from None
    return Run(path, manifest, res)


# --------------------------------------------------------------------------- reference results
@dataclass(frozen=True)
class Reference:
    """Results to compare a run with: ``results`` (``None`` when they could not be had, ``note`` saying why),
    ``about`` (where they come from, for readers) and whether they are the published Pythia-6.9B file."""

    results: dict[str, Any] | None = None
    about: str = ""
    published: bool = False
    note: str = "No reference results were given to this build."


def load_reference(reference: str | os.PathLike | None) -> Reference:
    """Read the reference results; ``"published"`` that cannot be had (offline) gives a note, not an error.

    A path or URL that cannot be read raises :class:`BookError`: it was asked for by name.
    """
    if reference is None:
        return Reference()
    src = os.fspath(reference)
    try:
        res = results.load_results(src)
    except (FileNotFoundError, ValueError) as exc:
        if src == "published":
            return Reference(note=f"The published results could not be loaded: {exc}")
        raise BookError(f"the reference results {src} cannot be read: {exc}") from None
    if src in ("published", results.PUBLISHED_URL):
        return Reference(res, f"the published file `{results.PUBLISHED_URL}` (SHA-256 "
                              f"`{results.PUBLISHED_SHA256}`, verified)", published=True)
    if src.startswith(("http://", "https://")):
        return Reference(res, f"`{src}`")
    sha = sha256_file(src)
    published = sha == results.PUBLISHED_SHA256
    return Reference(res, f"`{Path(src).name}` (SHA-256 `{sha}`"
                          + (", byte for byte the published file)" if published else ")"), published=published)


# --------------------------------------------------------------------------- generated pages
@dataclass
class BookContext:
    """Everything a generated page may draw on: the run, the second run for the replication chapter (or
    ``None``), the reference results for the comparison, and a sweep's root folder for the cross-run chapter (or
    ``None``). ``book_dir`` is the staged ``book/`` folder."""

    run: Run
    book_dir: Path
    replication: Run | None = None
    reference: Reference = field(default_factory=Reference)
    sweep_root: Path | None = None

    def attach(self, src: Path, name: str) -> str:
        """Copy ``src`` next to the generated pages for a ``{download}`` link; return its path from a page."""
        rel = f"{FILES_DIR}/{name}"
        (self.book_dir / FILES_DIR).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, self.book_dir / rel)
        return rel


def run_line(run: Run) -> str:
    """One line naming a run: model (revision, dtype, device), dataset (pairs, SHA-256)."""
    m, d = run.model, run.dataset
    model_bits = ", ".join(str(m[k]) for k in ("revision", "dtype", "device") if m.get(k))
    return (f"model `{m.get('name')}`" + (f" ({model_bits})" if model_bits else "")
            + f" on dataset `{run.dataset_name}` ({d.get('n_pairs', run.results.get('n_pairs'))} pairs, "
            f"SHA-256 `{d.get('sha256', 'unknown')}`)")


def run_banner(run: Run) -> str:
    """The box at the top of every generated results page: which run its numbers come from."""
    return (f":::{{admonition}} Run\n:class: note\n\nThe numbers on this page come from the run of "
            f"{run_line(run)}. Every parameter is listed on the [run page](run.md).\n:::\n")
