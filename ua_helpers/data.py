"""Statement-pair datasets: the bundled replication set, the paper's ua-230 (pinned download), a path or a URL."""
from __future__ import annotations

import json
import os
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from ._io import atomic_write_bytes, cache_dir, sha256_bytes

#: The paper's dataset: pinned address and checksum (third-party, MIT; never stored in this repository).
UA230_URL = (
    "https://raw.githubusercontent.com/buk81/uniformity-asymmetry/"
    "660747c27b7a34a3c1dc45412397339bba3a8fdb/dataset.json"
)
UA230_SHA256 = "44f82b8a949c15300cf50b4548c3695803bc83311005979226c1b3d3944e49c5"
#: Environment variable naming a local copy of ua-230, for offline use.
UA230_ENV = "UA_230_PATH"
#: Datasets shipped inside the package.
BUNDLED = ("replication-230",)
MIN_PAIRS = 3


class DatasetError(ValueError):
    """A dataset that cannot be read or does not have the expected shape."""


@dataclass(frozen=True)
class PairSet:
    """Statement pairs in dataset order: ``stmt_a[i]`` and ``stmt_b[i]`` form pair ``i`` of ``category[i]``."""

    stmt_a: list[str]
    stmt_b: list[str]
    category: list[str]
    sha256: str
    source: str
    name: str
    descriptions: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.stmt_a)

    @property
    def n_pairs(self) -> int:
        return len(self.stmt_a)

    @property
    def categories(self) -> list[str]:
        """Category names in first-seen order."""
        return list(dict.fromkeys(self.category))

    def category_counts(self) -> dict[str, int]:
        return {c: self.category.count(c) for c in self.categories}

    def to_frame(self):
        """Return the pairs as a ``pandas.DataFrame`` with columns category, stmt_a, stmt_b."""
        import pandas as pd

        return pd.DataFrame({"category": self.category, "stmt_a": self.stmt_a, "stmt_b": self.stmt_b})


def parse_pairs(raw: bytes, *, source: str, name: str | None = None) -> PairSet:
    """Validate the dataset JSON (an object of categories, each with ``pairs``) and flatten it to a PairSet."""
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DatasetError(f"dataset {source!r} is not valid UTF-8 JSON: {exc}") from exc
    if not isinstance(obj, dict) or not obj:
        raise DatasetError(
            f"dataset {source!r} must be a JSON object of categories "
            f'({{"category": {{"pairs": [["A", "B"], ...]}}}}), got {type(obj).__name__}'
        )
    stmt_a, stmt_b, category, descriptions = [], [], [], {}
    for cat, body in obj.items():
        if not isinstance(body, dict) or "pairs" not in body:
            raise DatasetError(f"dataset {source!r}: category {cat!r} has no 'pairs' list")
        pairs = body["pairs"]
        if not isinstance(pairs, list):
            raise DatasetError(f"dataset {source!r}: category {cat!r}: 'pairs' must be a list")
        for i, pair in enumerate(pairs):
            if (
                not isinstance(pair, (list, tuple))
                or len(pair) != 2
                or not all(isinstance(s, str) and s.strip() for s in pair)
            ):
                raise DatasetError(
                    f"dataset {source!r}: category {cat!r}, pair {i}: expected two non-empty strings, got {pair!r}"
                )
            stmt_a.append(pair[0])
            stmt_b.append(pair[1])
            category.append(cat)
        descriptions[cat] = {k: v for k, v in body.items() if k != "pairs" and isinstance(v, str)}
    if len(stmt_a) < MIN_PAIRS:
        raise DatasetError(
            f"dataset {source!r} has {len(stmt_a)} pairs; at least {MIN_PAIRS} are needed for centroids and kNN"
        )
    return PairSet(stmt_a, stmt_b, category, sha256_bytes(raw), source, name or source, descriptions)


def _fetch(url: str, timeout: float = 30.0) -> bytes:
    # Bounded: at most _io.MAX_DOWNLOAD_BYTES (streamed and counted) and `timeout` seconds overall.
    from ._io import download

    try:
        return download(url, deadline_s=timeout)
    except OSError as exc:
        raise DatasetError(f"could not download {url}: {exc}") from exc


def _ua230_bytes() -> tuple[bytes, str]:
    local = os.environ.get(UA230_ENV)
    if local:
        path = Path(local).expanduser()
        if not path.is_file():
            raise DatasetError(f"${UA230_ENV} points at {path}, which is not a file")
        raw, where = path.read_bytes(), str(path)
    else:
        cached = cache_dir("datasets") / f"ua-230-{UA230_SHA256[:12]}.json"
        if cached.is_file():
            raw, where = cached.read_bytes(), str(cached)
        else:
            try:
                raw = _fetch(UA230_URL)
            except DatasetError as exc:
                raise DatasetError(
                    f"ua-230 is not available offline: {exc}.\n"
                    f"Download it once (it is cached), or point ${UA230_ENV} at a local copy of\n  {UA230_URL}\n"
                    "or pass that file's path as the dataset."
                ) from None
            where = UA230_URL
            if sha256_bytes(raw) == UA230_SHA256:
                atomic_write_bytes(cached, raw)
    digest = sha256_bytes(raw)
    if digest != UA230_SHA256:
        raise DatasetError(f"ua-230 from {where} has sha256 {digest}, expected the pinned {UA230_SHA256}")
    return raw, where


def load_pairs(source: str | os.PathLike = "replication-230") -> PairSet:
    """Load statement pairs from a bundled name, ``"ua-230"``, a local JSON path or an http(s) URL.

    Parameters
    ----------
    source : str or path-like, default="replication-230"
        ``"replication-230"`` (bundled with the package), ``"ua-230"`` (the paper's 230 pairs: read from
        ``$UA_230_PATH`` if set, else downloaded once from the pinned address into the cache; the SHA-256 is
        verified either way), a path to a JSON file of the same shape, or an ``http(s)://`` URL.

    Returns
    -------
    PairSet
        The pairs in dataset order, with the SHA-256 of the exact bytes read.
    """
    src = os.fspath(source)
    if src in BUNDLED:
        raw = (resources.files("ua_helpers") / "datasets" / f"{src}.json").read_bytes()
        return parse_pairs(raw, source=f"bundled:{src}", name=src)
    if src == "ua-230":
        raw, where = _ua230_bytes()
        return parse_pairs(raw, source=where, name="ua-230")
    if src.startswith(("http://", "https://")):
        return parse_pairs(_fetch(src), source=src, name=src.rsplit("/", 1)[-1] or src)
    path = Path(src).expanduser()
    if path.is_file():
        return parse_pairs(path.read_bytes(), source=str(path.resolve()), name=path.stem)
    raise DatasetError(
        f"unknown dataset {src!r}: not a bundled name ({', '.join(BUNDLED)}), not 'ua-230', "
        "not an existing file and not an http(s) URL"
    )


def describe(pairs: PairSet) -> dict[str, Any]:
    """Return the identity of a PairSet as recorded in results files."""
    return {"name": pairs.name, "source": pairs.source, "sha256": pairs.sha256, "n_pairs": pairs.n_pairs,
            "categories": pairs.category_counts()}
