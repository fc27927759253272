"""What every generated page draws on: a completed run, the reference results, and :class:`BookContext`."""
from __future__ import annotations

import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._io import sha256_file
from ..inputs import models, published
from ..report import results
from ..report._markdown import md_code, md_text
from ..report.blocks import Results
from ..runs import rundir
from ..runs._runlock import RunDirError
from ..runs.rundir import Run
from . import BookError

#: Where generated pages put the files their readers can download (relative to the staged ``book/``).
FILES_DIR = "files"
#: The project's root (where ``_config.yml`` and ``_toc.yml`` live) for a checkout or an editable install.
PROJECT_ROOT = Path(__file__).resolve().parents[2]


# --------------------------------------------------------------------------- runs
def load_run(run_dir: str | os.PathLike, *, verify: bool = True) -> Run:
    """Read a complete run directory (:func:`ua_helpers.runs.rundir.load_run`); raise :class:`BookError` (one
    line) for any other."""
    try:
        return rundir.load_run(run_dir, verify=verify)
    except RunDirError as exc:
        raise BookError(str(exc)) from None


# --------------------------------------------------------------------------- reference results
@dataclass(frozen=True)
class Reference:
    """Results to compare a run with: ``results`` (``None`` when they could not be had, ``note`` saying why),
    ``about`` (where they come from, for readers) and whether they are the published Pythia-6.9B file."""

    results: Results | None = None
    about: str = ""
    published: bool = False
    note: str = "No reference results were given to this build."


def load_reference(reference: str | os.PathLike | None) -> Reference:
    """Read the results to compare a run with; ``"published"`` is the copy shipped in the package (no network).

    Parameters
    ----------
    reference : str or path-like or None
        ``"published"`` (or the published file's pinned URL): the SHA-256-verified copy in
        ``ua_helpers/published/``; a path or URL to another results file in the seed's schema; ``None``: none.

    Raises
    ------
    BookError
        A path or URL that cannot be read (it was asked for by name), or a damaged shipped file.
    """
    if reference is None:
        return Reference()
    src = os.fspath(reference)
    if src in ("published", results.PUBLISHED_URL):
        try:
            res = published.load(published.PAIR_LEVEL)
            results.check_schema(res, source=f"the published file {published.PAIR_LEVEL}")
        except (FileNotFoundError, ValueError) as exc:
            raise BookError(f"the published results shipped with the package cannot be read: {exc}") from None
        return Reference(res, published.about(published.PAIR_LEVEL), published=True)
    try:
        res = results.load_results(src)
    except (FileNotFoundError, ValueError) as exc:
        raise BookError(f"the reference results {src} cannot be read: {exc}") from None
    if src.startswith(("http://", "https://")):
        return Reference(res, md_code(src))
    sha = sha256_file(src)
    is_published = sha == results.PUBLISHED_SHA256
    return Reference(res, f"{md_code(Path(src).name)} (SHA-256 `{sha}`"
                          + (", byte for byte the published file)" if is_published else ")"),
                     published=is_published)


# --------------------------------------------------------------------------- generated pages
@dataclass
class BookContext:
    """Everything a generated page may draw on: the run, the second run for the replication chapter (or
    ``None``), the reference results for the comparison, a sweep's root folder for the cross-run chapter (or
    ``None``), and for the controls chapter the same analysis on the neutral set and with a BOS prefix (or
    ``None``). ``book_dir`` is the staged ``book/`` folder."""

    run: Run
    book_dir: Path
    replication: Run | None = None
    reference: Reference = field(default_factory=Reference)
    sweep_root: Path | None = None
    neutral: Run | None = None
    bos: Run | None = None

    def attach(self, src: Path, name: str) -> str:
        """Copy ``src`` next to the generated pages for a ``{download}`` link; return its path from a page."""
        rel = f"{FILES_DIR}/{name}"
        (self.book_dir / FILES_DIR).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(src, self.book_dir / rel)
        return rel


_GGUF_QUANT = re.compile(r"[.-](I?Q\d+_[0-9A-Z_]+|Q\d+|F16|F32|BF16)\.gguf$", re.IGNORECASE)
_PYTHIA = re.compile(r"pythia-(\d+(?:\.\d+)?[mb])", re.IGNORECASE)


def model_identity(model: dict[str, Any]) -> dict[str, str | None]:
    """Say what a run's model is: its variant, size, training, weights' origin (quantization) and dtype.

    Reads ``quantization``, ``variant``, ``n_parameters`` and ``training`` from the model record where the run
    wrote them; otherwise derives what the name tells (the embedded alias's GGUF file, a ``.gguf`` file name, a
    Pythia hub id) and leaves the rest ``None`` ("not recorded").
    """
    name = str(model.get("name"))
    gguf = models.EMBEDDED[name][1] if name in models.EMBEDDED else (Path(name).name if name.endswith(".gguf")
                                                                      else None)
    quant = model.get("quantization")
    if quant is None and gguf is not None:
        found = _GGUF_QUANT.search(gguf)
        quant = found.group(1).upper() if found else "unknown GGUF quantization"
    variant = model.get("variant") or (_GGUF_QUANT.sub("", gguf) if gguf else None)
    training = model.get("training")
    size = model.get("n_parameters")
    pythia = _PYTHIA.search(name)
    if pythia:
        size = size or pythia.group(1).upper()
        training = training or "base model (no instruction tuning), trained on the Pile (EleutherAI Pythia suite)"
    if variant and "instruct" in variant.lower():
        training = training or "instruction-tuned"
    if size is None and variant:
        found = re.search(r"(\d+(?:\.\d+)?[MB])\b", variant)
        size = found.group(1) if found else None
    weights = (f"de-quantized from {quant} (the GGUF file's {quant} rounding stays in the weights)"
               if quant else None)
    return {"variant": variant, "size": f"{size} parameters" if size else None, "training": training,
            "weights": weights, "dtype": model.get("dtype"), "device": model.get("device")}


def repo_relative(path: str | os.PathLike) -> str:
    """A run folder as a reader can type it in a clone of the repository: never an absolute path of this machine.

    A relative path stays as given; an absolute one inside the project becomes relative to it; any other
    becomes ``runs/<its name>`` (where ``make book`` puts runs).
    """
    p = Path(path)
    if not p.is_absolute():
        return p.as_posix()
    try:
        return p.resolve().relative_to(PROJECT_ROOT.resolve()).as_posix()
    except ValueError:
        return f"runs/{p.name}"


def study_citation() -> str:
    """The original study as a reference (Markdown): author, year, title, where published, DOI, repository."""
    s = published.STUDY
    return (f"{md_text(s['author'])} ({s['year']}). *{md_text(s['title'])}*. {md_text(s['venue'])}. "
            f"DOI [{md_text(s['doi'])}](https://doi.org/{s['doi']}). Code, the ua-230 dataset and the published "
            f"Pythia results: [{md_text(s['repository'].removeprefix('https://'))}]({s['repository']}), commit "
            f"{md_code(published.SOURCE_COMMIT)} (MIT license).")


def run_line(run: Run) -> str:
    """One line of Markdown naming a run: model (variant, weights, dtype, device), dataset (pairs, SHA-256)."""
    m, d = run.model, run.dataset
    ident = model_identity(m)
    bits = [ident["variant"], ident["weights"] and ident["weights"].split(" (")[0], m.get("revision"),
            m.get("dtype"), m.get("device")]
    model_bits = ", ".join(md_text(b) for b in bits if b)
    return (f"model {md_code(m.get('name'))}" + (f" ({model_bits})" if model_bits else "")
            + f" on dataset {md_code(run.dataset_name)} ({md_text(d.get('n_pairs', run.results.get('n_pairs')))} "
            f"pairs, SHA-256 {md_code(d.get('sha256', 'unknown'))})")


def run_banner(run: Run) -> str:
    """The box at the top of every generated results page: which run its numbers come from."""
    return (f":::{{admonition}} Run\n:class: note\n\nThe numbers on this page come from the run of "
            f"{run_line(run)}. Every parameter is listed on the [run page](run.md).\n:::\n")
