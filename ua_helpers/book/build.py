"""Build the HTML book from a completed run: stage the sources, generate the data pages, run Jupyter Book.

:func:`build_book` copies ``_config.yml``, ``_toc.yml`` and ``book/`` into a staging folder, adds the run's
executed notebooks, writes the pages that depend on the run's data
(:data:`~ua_helpers.book.pages.GENERATED_PAGES`) and builds the copy with ``jupyter-book build -W -n
--keep-going``. Notebooks are never executed here.
"""
from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from .._io import sha256_bytes
from ..report import results
from ..runs import rundir
from ..runs._runlock import replace_run
from . import BookError
from ._md import sha_short
from .context import PROJECT_ROOT, BookContext, Reference, Run, load_reference, load_run, model_identity
from .page_intro import substitutions
from .pages import GENERATED_INCLUDES, GENERATED_PAGES

#: What of the book's source is staged: configuration, table of contents, prose pages and static files.
BOOK_SOURCES = ("_config.yml", "_toc.yml", "book")
#: The run's executed notebooks, in reading order (``RUN_DIR/notebooks/<name>.ipynb``): the run folder's list.
NOTEBOOKS = rundir.NOTEBOOKS
BUILD_LOG_TAIL = 60


# --------------------------------------------------------------------------- staging and building
def _announcement(run: Run) -> str:
    """The banner on every page: which run the book shows, and what its weights are (HTML, every value escaped;
    it must not start with "http")."""
    m, d = run.model, run.dataset
    ident = model_identity(m)
    name = html.escape(str(m.get("name")))
    if ident["variant"]:
        name += f" ({html.escape(ident['variant'])})"
    bits = [f"<strong>{name}</strong>"]
    if ident["weights"]:
        bits.append(html.escape(ident["weights"].split(" (")[0]))
    bits += [html.escape(str(m[k])) for k in ("dtype", "device") if m.get(k)]
    text = (f"Results of the run of {', '.join(bits)} on <strong>{html.escape(run.dataset_name)}</strong> "
            f"(SHA-256 {html.escape(sha_short(d.get('sha256', 'unknown')))})")
    if not run.verified:
        text = (f"<strong>UNVERIFIED</strong>: built with --unverified; this run's files were not checked against "
                f"the SHA-256 its manifest records. {text}")
    return text


#: Cells a reader of the book sees collapsed: the parameters cell and the one papermill injects after it.
COLLAPSED_TAGS = ("parameters", "injected-parameters")


#: Longest alt text taken from a figure's lead-in.
ALT_MAX = 300
_IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")


def _lead_in(markdown: str) -> str:
    """A figure's description from the markdown cell before it: its heading and first paragraph, as plain text."""
    heading, paragraph = "", []
    for line in markdown.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            heading, paragraph = stripped.lstrip("#").strip(), []
        elif stripped.startswith(("```", ":::")):
            break
        elif stripped:
            paragraph.append(stripped)
        elif paragraph:
            break
    text = " ".join(paragraph)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # links -> their text
    text = re.sub(r"\{[a-z]+\}`([^`]*)`", r"\1", text)  # roles -> their content
    text = re.sub(r"`([^`]*)`", r"\1", text)  # code -> its content
    text = re.sub(r"\*\*|__|\$", "", text).strip()  # emphasis and math delimiters
    text = f"{heading}. {text}" if heading and text else heading or text
    return text if len(text) <= ALT_MAX else text[:ALT_MAX - 1].rstrip() + "…"


def _figure_alt(nb: dict) -> None:
    """Give every image output an alt text: the cell's own ``alt`` metadata, else its lead-in.

    The lead-in is the heading and first paragraph of the markdown cell before the figure's cell, which by the
    notebooks' convention say what the figure shows. myst-nb reads it from ``metadata.mystnb.image.alt``.
    """
    lead = ""
    for cell in nb["cells"]:
        if cell.get("cell_type") == "markdown":
            source = cell.get("source", "")
            lead = _lead_in(source if isinstance(source, str) else "".join(source)) or lead
            continue
        outputs = cell.get("outputs") or []
        if not any(t in (o.get("data") or {}) for o in outputs for t in _IMAGE_TYPES):
            continue
        image = cell.setdefault("metadata", {}).setdefault("mystnb", {}).setdefault("image", {})
        if "alt" not in image:
            given = cell["metadata"].get("alt")
            image["alt"] = given or (f"Figure: {lead}" if lead else "Figure of this run's results (see the text "
                                                                         "above it)")


def _stage_notebook(src: Path, dest: Path, sha256: str | None = None) -> None:
    """Copy an executed notebook: parameter cells tagged ``hide-cell`` (pages open with the prose), and every
    figure given an alt text. With ``sha256``, the bytes read must have it (the run's manifest records it)."""
    raw = src.read_bytes()
    if sha256 is not None and sha256_bytes(raw) != sha256:
        raise BookError(f"{src} does not match the SHA-256 that the run's manifest records")
    nb = json.loads(raw.decode("utf-8"))
    for cell in nb["cells"]:
        tags = cell.setdefault("metadata", {}).setdefault("tags", [])
        if any(t in tags for t in COLLAPSED_TAGS) and "hide-cell" not in tags:
            tags.append("hide-cell")
    _figure_alt(nb)
    dest.write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding="utf-8")


#: Overrides ``repository.url`` of ``_config.yml`` (the repository the "Open in Colab" buttons point into).
REPO_URL_ENV = "UA_BOOK_REPO_URL"


def _configure_launch(config: dict) -> None:
    """Point the Colab buttons at the repository, or leave them out where no GitHub repository is named.

    The address comes from ``$UA_BOOK_REPO_URL`` or ``repository.url``; Colab opens notebooks from GitHub only,
    and the theme warns (a failed strict build) about any other address, so anything else raises.
    """
    repo = (os.environ.get(REPO_URL_ENV) or (config.get("repository") or {}).get("url") or "").strip()
    launch = config.setdefault("launch_buttons", {})
    if not repo:
        launch["colab_url"] = ""
        return
    if not re.fullmatch(r"https://github\.com/[\w.-]+/[\w.-]+/?", repo):
        raise BookError(f"the book's repository address {repo!r} (repository.url or ${REPO_URL_ENV}) must be a "
                        "GitHub repository, https://github.com/OWNER/NAME: Colab opens notebooks from GitHub only")
    config.setdefault("repository", {})["url"] = repo.rstrip("/")


def stage(run: Run, staging: Path, *, source_dir: Path = PROJECT_ROOT, replication: Run | None = None,
          reference: Reference = Reference(), sweep_root: Path | None = None, neutral: Run | None = None,
          bos: Run | None = None) -> Path:
    """Copy the book's sources and the run's notebooks into ``staging`` (emptied first); write the generated pages."""
    import yaml

    missing = [n for n in NOTEBOOKS if not (run.path / "notebooks" / f"{n}.ipynb").is_file()]
    if missing:
        raise BookError(f"the run in {run.path} lacks the executed notebooks {missing} under notebooks/")
    absent = [s for s in BOOK_SOURCES if not (source_dir / s).exists()]
    if absent:
        raise BookError(f"the book's sources {absent} are not in {source_dir}")
    if staging.exists():
        shutil.rmtree(staging)
    staging.mkdir(parents=True)
    for name in BOOK_SOURCES:
        src = source_dir / name
        if src.is_dir():
            shutil.copytree(src, staging / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
        else:
            shutil.copyfile(src, staging / name)
    (staging / "notebooks").mkdir()
    checksums = run.manifest.get("checksums", {}) if run.verified else {}
    for name in NOTEBOOKS:
        rel = f"notebooks/{name}.ipynb"
        _stage_notebook(run.path / rel, staging / rel, checksums.get(rel))
    config_path = staging / "_config.yml"
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    config.setdefault("html", {})["announcement"] = _announcement(run)
    config.setdefault("parse", {}).setdefault("myst_substitutions", {}).update(substitutions(run))
    _configure_launch(config)
    config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True), encoding="utf-8")
    ctx = BookContext(run, staging / "book", replication=replication, reference=reference, sweep_root=sweep_root,
                      neutral=neutral, bos=bos)
    for name, generate in {**GENERATED_PAGES, **GENERATED_INCLUDES}.items():
        (staging / "book" / f"{name}.md").write_text(generate(ctx), encoding="utf-8")
    return staging


def jupyter_book_command(staging: Path, *, strict: bool = True) -> list[str]:
    """The ``jupyter-book build`` command line (the venv's own jupyter-book)."""
    exe = Path(sys.executable).parent / "jupyter-book"
    cmd = [str(exe if exe.exists() else "jupyter-book"), "build", str(staging), "--builder", "html", "--keep-going"]
    return cmd + (["-W", "-n"] if strict else [])


def build_book(run_dir: str | os.PathLike, *, output_dir: str | os.PathLike = "_build/html",
               replication_run_dir: str | os.PathLike | None = None,
               reference: str | os.PathLike | None = "published", strict: bool = True,
               staging_dir: str | os.PathLike | None = None, source_dir: str | os.PathLike | None = None,
               sweep_root: str | os.PathLike | None = None, verify: bool = True,
               neutral_run_dir: str | os.PathLike | None = None,
               bos_run_dir: str | os.PathLike | None = None) -> Path:
    """Build the HTML book of a completed run.

    Parameters
    ----------
    run_dir : path-like
        A run directory made by ``ua-book run`` (``manifest.json`` with ``"status": "complete"``).
    output_dir : path-like, default="_build/html"
        Where the HTML goes; replaced if it exists.
    replication_run_dir : path-like, optional
        A second run on the other dataset, for the replication chapter. Without it, that page says how to make one.
    reference : str or path-like or None, default="published"
        Results to compare with: ``"published"`` (pinned URL, SHA-256 checked, cached; when it cannot be had
        offline the comparison page says so), a path or URL, or ``None`` for no comparison.
    strict : bool, default=True
        Turn every Sphinx warning into an error (``-W -n --keep-going``).
    staging_dir : path-like, optional
        Where the book's sources are staged (kept afterwards); default a fresh private folder beside
        ``output_dir``, removed after a successful build, so that builds running at once never share one.
    source_dir : path-like, optional
        Where ``_config.yml``, ``_toc.yml`` and ``book/`` are; default the project root.
    sweep_root : path-like, optional
        The folder of a ``ua-book sweep``, for the cross-run chapter. Without it, that page says how to make one.
    verify : bool, default=True
        Check the run's files against the SHA-256 its manifest records (``False``: ``--unverified``; every page's
        banner then says so).
    neutral_run_dir, bos_run_dir : path-like, optional
        The same analysis on the ``neutral-60`` control set, and with ``prefix bos``, for the controls chapter.
        Without them, that chapter says how to make them.

    Returns
    -------
    pathlib.Path
        ``output_dir``, holding ``index.html``.
    """
    out = Path(output_dir).expanduser().absolute()
    if out.exists() and any(out.iterdir()) and not (out / "index.html").is_file():
        raise BookError(f"refusing to replace {out}: it is not empty and holds no built book (no index.html)")
    run = load_run(run_dir, verify=verify)
    replication = load_run(replication_run_dir, verify=verify) if replication_run_dir is not None else None
    neutral = load_run(neutral_run_dir, verify=verify) if neutral_run_dir is not None else None
    bos = load_run(bos_run_dir, verify=verify) if bos_run_dir is not None else None
    source = Path(source_dir) if source_dir is not None else PROJECT_ROOT
    out.parent.mkdir(parents=True, exist_ok=True)
    private = staging_dir is None
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.src-", dir=out.parent)) if private else Path(staging_dir)
    ref = load_reference(reference)
    if ref.results is not None and len(results.compare_results(run.results, ref.results)) == 0:
        raise BookError(f"the reference results {reference} share no test with the run in {run.path}: none of "
                        f"their metrics ({', '.join(map(str, ref.results['metrics_tested']))}) is one of the run's")
    try:
        stage(run, staging, source_dir=source, replication=replication, reference=ref,
              sweep_root=Path(sweep_root) if sweep_root is not None else None, neutral=neutral, bos=bos)
    except BaseException:
        if private:
            shutil.rmtree(staging, ignore_errors=True)
        raise
    cmd = jupyter_book_command(staging, strict=strict)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    log = staging / "build.log"
    log.write_text(proc.stdout, encoding="utf-8")
    built = staging / "_build" / "html"
    if proc.returncode != 0 or not (built / "index.html").is_file():
        tail = "\n".join(proc.stdout.splitlines()[-BUILD_LOG_TAIL:])
        raise BookError(f"jupyter-book build failed (exit {proc.returncode}); full log in {log}. Its end:\n{tail}")
    fresh = Path(tempfile.mkdtemp(prefix=f".{out.name}.new-", dir=out.parent))
    shutil.copytree(built, fresh, dirs_exist_ok=True)
    fresh.chmod(0o755)  # mkdtemp's folder is private; the book is for readers
    (fresh / ".nojekyll").touch()
    replace_run(fresh, out)  # one exchange: a reader never sees half a book
    if private:
        shutil.rmtree(staging, ignore_errors=True)
    return out


# --------------------------------------------------------------------------- publishing
def publish_command(html_dir: str | os.PathLike = "_build/html", *, remote: str = "origin",
                    branch: str = "gh-pages") -> list[str]:
    """The ``ghp-import`` command that pushes ``html_dir`` to ``branch`` of ``remote`` (with ``.nojekyll``)."""
    exe = Path(sys.executable).parent / "ghp-import"
    return [str(exe if exe.exists() else "ghp-import"), "-n", "-p", "-f", "-r", remote, "-b", branch,
            "-m", "Publish the book", os.fspath(html_dir)]


def publish(html_dir: str | os.PathLike = "_build/html", *, remote: str = "origin", branch: str = "gh-pages",
            cwd: str | os.PathLike | None = None) -> None:
    """Push a built book to the ``gh-pages`` branch of ``remote``, from the git repository at ``cwd``."""
    if not (Path(cwd or ".") / html_dir / "index.html").is_file():
        raise BookError(f"{html_dir} holds no built book (no index.html); build it first")
    proc = subprocess.run(publish_command(html_dir, remote=remote, branch=branch), cwd=cwd,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        raise BookError(f"ghp-import failed (exit {proc.returncode}):\n{proc.stdout}")

