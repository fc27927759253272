"""Statement-pair datasets: the bundled replication set, the paper's ua-230 (pinned download), a path or a URL."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from .._io import atomic_write_bytes, cache_dir, sha256_bytes

#: The paper's dataset: pinned address and checksum (third-party, MIT; never stored in this repository).
UA230_URL = (
    "https://raw.githubusercontent.com/buk81/uniformity-asymmetry/"
    "660747c27b7a34a3c1dc45412397339bba3a8fdb/dataset.json"
)
UA230_SHA256 = "44f82b8a949c15300cf50b4548c3695803bc83311005979226c1b3d3944e49c5"
#: Environment variable naming a local copy of ua-230, for offline use.
UA230_ENV = "UA_230_PATH"
#: Datasets shipped inside the package: the replication set and the neutral control set (two wordings, one
#: meaning, no framing difference between the sides; see their data cards in ``ua_helpers/datasets``).
BUNDLED = ("replication-230", "neutral-60")
MIN_PAIRS = 3
#: How the two sides of each pair are oriented: as in the file, or side A always holding a category's roles[0].
ORIENTATIONS = ("as-given", "by-role")
#: The dataset fields that record each side's framing (optional; ua-230 has none).
ROLE_FIELDS = ("roles", "first_role_side")


class DatasetError(ValueError):
    """A dataset that cannot be read or does not have the expected shape."""


@dataclass(frozen=True)
class PairSet:
    """Statement pairs in dataset order: ``stmt_a[i]`` and ``stmt_b[i]`` form pair ``i`` of ``category[i]``.

    ``roles`` (per category, the two framings its pairs contrast) and ``first_role_side`` (per pair, ``"A"`` or
    ``"B"``: the side that holds ``roles[category][0]``) are None for a dataset that does not record them.
    ``orientation`` is ``"as-given"`` or ``"by-role"`` (see :func:`orient`), and ``swapped[i]`` says whether
    pair ``i``'s sides were exchanged relative to the file. ``sha256`` is always that of the file's bytes;
    ``identity`` adds the orientation, so caches keyed by it never mix the two.
    """

    stmt_a: list[str]
    stmt_b: list[str]
    category: list[str]
    sha256: str
    source: str
    name: str
    descriptions: dict[str, dict[str, str]] = field(default_factory=dict, repr=False)
    roles: dict[str, tuple[str, str]] | None = field(default=None, repr=False)
    first_role_side: tuple[str, ...] | None = field(default=None, repr=False)
    orientation: str = "as-given"
    swapped: tuple[bool, ...] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        n = len(self.stmt_a)
        if self.swapped is None:  # frozen: fill the default through object.__setattr__
            object.__setattr__(self, "swapped", (False,) * n)
        if not (len(self.stmt_b) == len(self.category) == len(self.swapped) == n):
            raise ValueError("stmt_a, stmt_b, category and swapped must have one entry per pair")
        if (self.roles is None) != (self.first_role_side is None):
            raise ValueError("roles and first_role_side go together: give both or neither")
        if self.first_role_side is not None and len(self.first_role_side) != n:
            raise ValueError(f"first_role_side has {len(self.first_role_side)} entries for {n} pairs")
        if self.orientation not in ORIENTATIONS:
            raise ValueError(f"orientation must be one of {ORIENTATIONS}; got {self.orientation!r}")

    def __len__(self) -> int:
        return len(self.stmt_a)

    @property
    def n_pairs(self) -> int:
        return len(self.stmt_a)

    @property
    def categories(self) -> list[str]:
        """Category names in first-seen order."""
        return list(dict.fromkeys(self.category))

    @property
    def identity(self) -> str:
        """Return the cache identity: ``sha256`` as given, ``"<sha256>:by-role"`` when oriented by role."""
        return self.sha256 if self.orientation == "as-given" else f"{self.sha256}:{self.orientation}"

    @property
    def role_a(self) -> list[str] | None:
        """Name the framing that side A holds in each pair (None without roles)."""
        if self.roles is None:
            return None
        return [self.roles[c][0 if s == "A" else 1] for c, s in zip(self.category, self.first_role_side)]

    @property
    def role_b(self) -> list[str] | None:
        """Name the framing that side B holds in each pair (None without roles)."""
        if self.roles is None:
            return None
        return [self.roles[c][1 if s == "A" else 0] for c, s in zip(self.category, self.first_role_side)]

    def category_counts(self) -> dict[str, int]:
        return {c: self.category.count(c) for c in self.categories}

    def duplicates(self) -> list[tuple[int, int]]:
        """Pairs that repeat an earlier one exactly (same statement A and B): ``(earlier, repeat)`` indices.

        A repeated pair enters every correlation and bootstrap twice, as if it were independent evidence.
        """
        first: dict[tuple[str, str], int] = {}
        out = []
        for i, key in enumerate(zip(self.stmt_a, self.stmt_b)):
            if key in first:
                out.append((first[key], i))
            else:
                first[key] = i
        return out

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
    roles: dict[str, tuple[str, str]] = {}
    first_role_side: list[str] = []
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
        parsed = _parse_roles(body, len(pairs), where=f"dataset {source!r}: category {cat!r}")
        if parsed is not None:
            roles[cat] = parsed[0]
            first_role_side.extend(parsed[1])
    if roles and len(roles) != len(obj):
        missing = [c for c in obj if c not in roles]
        raise DatasetError(
            f"dataset {source!r}: categories {', '.join(map(repr, missing))} have no 'roles'/'first_role_side' "
            "while others do; record the sides' framings in every category or in none"
        )
    if len(stmt_a) < MIN_PAIRS:
        raise DatasetError(
            f"dataset {source!r} has {len(stmt_a)} pairs; at least {MIN_PAIRS} are needed for centroids and kNN"
        )
    return PairSet(stmt_a, stmt_b, category, sha256_bytes(raw), source, name or source, descriptions,
                   roles=roles or None, first_role_side=tuple(first_role_side) if roles else None)


def _parse_roles(body: dict, n_pairs: int, *, where: str) -> tuple[tuple[str, str], list[str]] | None:
    """Read a category's optional ``roles`` and ``first_role_side``; None when it has neither."""
    present = [k for k in ROLE_FIELDS if k in body]
    if not present:
        return None
    if len(present) == 1:
        other = ROLE_FIELDS[1 - ROLE_FIELDS.index(present[0])]
        raise DatasetError(f"{where} has {present[0]!r} but no {other!r}; give both or neither")
    names, sides = body["roles"], body["first_role_side"]
    if (not isinstance(names, list) or len(names) != 2
            or not all(isinstance(r, str) and r.strip() for r in names) or names[0] == names[1]):
        raise DatasetError(f"{where}: 'roles' must be two different non-empty strings, got {names!r}")
    if not isinstance(sides, list) or len(sides) != n_pairs:
        got = len(sides) if isinstance(sides, list) else type(sides).__name__
        raise DatasetError(f"{where}: 'first_role_side' must list 'A' or 'B' for each of its {n_pairs} pairs; "
                           f"got {got}")
    bad = [i for i, s in enumerate(sides) if s not in ("A", "B")]
    if bad:
        raise DatasetError(f"{where}: 'first_role_side' entries must be 'A' or 'B'; pair {bad[0]} has "
                           f"{sides[bad[0]]!r}")
    return (names[0], names[1]), list(sides)


def _fetch(url: str, timeout: float = 30.0) -> bytes:
    # Bounded: at most _io.MAX_DOWNLOAD_BYTES (streamed and counted) and `timeout` seconds overall.
    from .._io import download

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


def load_pairs(source: str | os.PathLike = "replication-230", orientation: str = "as-given") -> PairSet:
    """Load statement pairs from a bundled name, ``"ua-230"``, a local JSON path or an http(s) URL.

    Parameters
    ----------
    source : str or path-like, default="replication-230"
        ``"replication-230"`` or ``"neutral-60"`` (bundled with the package; ``neutral-60`` is the control set
        whose sides differ only in wording), ``"ua-230"`` (the paper's 230 pairs: read from
        ``$UA_230_PATH`` if set, else downloaded once from the pinned address into the cache; the SHA-256 is
        verified either way), a path to a JSON file of the same shape, or an ``http(s)://`` URL.
    orientation : {"as-given", "by-role"}, default="as-given"
        Passed to :func:`orient`.

    Returns
    -------
    PairSet
        The pairs in dataset order, with the SHA-256 of the exact bytes read.
    """
    return orient(_load(os.fspath(source)), orientation)


def _load(src: str) -> PairSet:
    if src in BUNDLED:
        raw = (resources.files("ua_helpers.inputs") / "datasets" / f"{src}.json").read_bytes()
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


def orient(pairs: PairSet, orientation: str = "as-given") -> PairSet:
    """Return the pairs with their sides oriented as asked.

    Parameters
    ----------
    pairs : PairSet
    orientation : {"as-given", "by-role"}, default="as-given"
        ``"as-given"`` returns pairs as read from the file (unchanged if they are). ``"by-role"`` exchanges the two statements of every pair
        whose side A does not hold its category's ``roles[0]``, so that within a category side A always holds
        the same framing; since preference = NLL(B) - NLL(A), its sign flips for exactly those pairs.

    Returns
    -------
    PairSet
        For ``"by-role"``: a new PairSet with ``orientation="by-role"``, ``first_role_side`` all ``"A"``,
        ``swapped`` marking the exchanged pairs, the file's ``sha256`` and an ``identity`` that names the
        orientation.

    Raises
    ------
    DatasetError
        ``"by-role"`` on a dataset that does not record its sides' roles.
    """
    if orientation not in ORIENTATIONS:
        raise ValueError(f"orientation must be one of {', '.join(ORIENTATIONS)}; got {orientation!r}")
    if orientation == pairs.orientation:
        return pairs
    if orientation == "as-given":  # undo an earlier orientation
        swap = list(pairs.swapped)
    elif pairs.roles is None:
        raise DatasetError(
            f"orientation 'by-role' needs the dataset to record which framing each side holds, but "
            f"{pairs.name!r} has no 'roles' field: give every category \"roles\": [framing 0, framing 1] and "
            f"\"first_role_side\": [\"A\" or \"B\" per pair], or use orientation 'as-given'"
        )
    else:
        swap = [s == "B" for s in pairs.first_role_side]
    sides = None if pairs.first_role_side is None else tuple(
        {"A": "B", "B": "A"}[s] if w else s for s, w in zip(pairs.first_role_side, swap))
    return replace(
        pairs,
        stmt_a=[b if w else a for a, b, w in zip(pairs.stmt_a, pairs.stmt_b, swap)],
        stmt_b=[a if w else b for a, b, w in zip(pairs.stmt_a, pairs.stmt_b, swap)],
        category=list(pairs.category),
        first_role_side=sides,
        orientation=orientation,
        swapped=tuple(w != s for w, s in zip(swap, pairs.swapped)),
    )


def swap_sides(a, b, swapped, *, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Exchange the A and B values of the pairs marked in ``swapped``, e.g. to orient an extraction.

    Parameters
    ----------
    a, b : array-like of the same shape, with n_pairs entries along ``axis``
        E.g. ``nll_a``/``nll_b`` of shape (n_pairs,) with ``axis=0``, or ``emb_a``/``emb_b`` of shape
        (n_layers, n_pairs, d_model) with ``axis=1``.
    swapped : array-like of bool, shape (n_pairs,)
        ``PairSet.swapped`` of the oriented pairs.
    axis : int, default=0
        The pair axis.

    Returns
    -------
    (ndarray, ndarray)
        New arrays: ``b``'s values where ``swapped``, ``a``'s elsewhere, and the reverse.
    """
    a, b = np.asarray(a), np.asarray(b)
    mask = np.asarray(swapped, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"a and b must have the same shape; got {a.shape} and {b.shape}")
    if mask.ndim != 1 or a.ndim == 0 or a.shape[axis] != mask.size:
        raise ValueError(f"swapped must be 1-D with one entry per pair along axis {axis}; got {mask.shape} "
                         f"for arrays of shape {a.shape}")
    shape = [1] * a.ndim
    shape[axis] = mask.size
    mask = mask.reshape(shape)
    return np.where(mask, b, a), np.where(mask, a, b)


def describe(pairs: PairSet) -> dict[str, Any]:
    """Return the identity of a PairSet as recorded in results files."""
    return {"name": pairs.name, "source": pairs.source, "sha256": pairs.sha256, "n_pairs": pairs.n_pairs,
            "categories": pairs.category_counts(), "orientation": pairs.orientation,
            "n_swapped": int(sum(pairs.swapped))}
