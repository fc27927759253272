"""Sweep files: read and validate the YAML that lists a sweep's runs (see :mod:`ua_helpers.runs.sweep` for the format).

An entry may declare what it needs beyond the package itself with ``requires``: a list of names from
:data:`REQUIREMENTS` (today ``ua-230``, the paper's third-party dataset). The sweep checks each named requirement
once, where the sweep command runs, and records an entry whose requirement is unmet as ``unavailable`` with the
reason, instead of running it; everything else about the entry (its parameters, its name) is validated as usual,
and an entry without ``requires`` that cannot get its dataset still fails.
"""
from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from .config import ParameterError, RunConfig
from .rundir import PATH_PARAMETERS

#: Top-level keys of a sweep file.
SWEEP_KEYS = ("root", "defaults", "entries")
#: Keys of an entry besides the run parameters (``gpus`` and ``cpus`` are also allowed in ``defaults``).
ENTRY_KEYS = ("name", "gpus", "cpus", "requires")
#: Run parameters an entry may set: every RunConfig field but ``run_dir``, which the sweep sets to root/name.
PARAMETER_KEYS = tuple(f.name for f in fields(RunConfig) if f.name != "run_dir")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")


class SweepError(ParameterError):
    """A sweep file that cannot be run: the message lists every problem, each naming its entry."""


def _ua230_unavailable() -> str | None:
    """Why ua-230 cannot be read here (``$UA_230_PATH``, the cache, then the pinned download), or None."""
    from ..inputs import data

    try:
        data.load_pairs("ua-230")
    except data.DatasetError as exc:
        return str(exc)
    return None


#: What an entry may list under ``requires``: name -> (what it means, a check returning why it is unmet or None).
REQUIREMENTS: dict[str, tuple[str, Callable[[], str | None]]] = {
    "ua-230": ("the paper's dataset: $UA_230_PATH, a cached copy, or the pinned download", _ua230_unavailable),
}


def unmet_requirement(name: str) -> str | None:
    """Check one requirement of :data:`REQUIREMENTS` here and now.

    Parameters
    ----------
    name : str
        A key of :data:`REQUIREMENTS`.

    Returns
    -------
    str or None
        Why the requirement is unmet (the check's message), or None when it is met.
    """
    if name not in REQUIREMENTS:
        raise ValueError(f"unknown requirement {name!r}; known: {', '.join(REQUIREMENTS)}")
    return REQUIREMENTS[name][1]()


@dataclass(frozen=True)
class SweepEntry:
    """One run of a sweep.

    Attributes
    ----------
    name : str
        The run directory's name under the sweep root.
    params : dict
        Every run parameter but ``run_dir``, validated and normalized (``RunConfig.to_parameters()``).
    gpus : float, default=0
        GPUs the entry's Ray task reserves (0: it runs on CPU). Ignored by the local engine.
    cpus : float, default=1
        CPUs the entry's Ray task reserves. Ignored by the local engine.
    requires : tuple of str, default=()
        Names from :data:`REQUIREMENTS`; where one is unmet the sweep records the entry as ``unavailable``.
    """

    name: str
    params: dict[str, Any] = field(default_factory=dict)
    gpus: float = 0
    cpus: float = 1
    requires: tuple[str, ...] = ()

    @property
    def model(self) -> str:
        return self.params["model"]

    @property
    def revision(self) -> str | None:
        return self.params.get("revision")


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file: its entries in file order, and the root it names (if any)."""

    entries: tuple[SweepEntry, ...]
    root: str | None = None
    source: str | None = None

    @property
    def names(self) -> list[str]:
        return [e.name for e in self.entries]


def _absolute_if_local(value: Any) -> Any:
    """An existing relative path becomes absolute (the notebooks run in another directory); anything else stays."""
    if not isinstance(value, str) or not value.strip() or value.startswith(("http://", "https://")):
        return value
    path = Path(value).expanduser()
    if not path.is_absolute() and path.exists():
        return str(path.resolve())
    return value


def _check_resources(where: str, mapping: Mapping[str, Any], errors: list[str]) -> dict[str, float]:
    out: dict[str, float] = {}
    for key, minimum, strict in (("gpus", 0, False), ("cpus", 0, True)):
        if key not in mapping:
            continue
        value = mapping[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
                or value < minimum or (strict and value == minimum):
            errors.append(f"{where}: {key} must be a number {'>' if strict else '>='} {minimum}; got {value!r}")
        else:
            out[key] = value
    return out


def _check_requires(where: str, mapping: Mapping[str, Any], errors: list[str]) -> tuple[str, ...]:
    if "requires" not in mapping:
        return ()
    value = mapping["requires"]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.append(f"{where}: requires must be a list of names ({', '.join(REQUIREMENTS)}); got {value!r}")
        return ()
    unknown = [v for v in value if v not in REQUIREMENTS]
    if unknown:
        errors.append(f"{where}: unknown requirement(s) {', '.join(unknown)}; known: "
                      + "; ".join(f"{k} ({text})" for k, (text, _) in REQUIREMENTS.items()))
        return ()
    return tuple(dict.fromkeys(value))


def parse_sweep(obj: Any, source: str = "<sweep>") -> Sweep:
    """Validate a parsed sweep file and return its entries.

    Parameters
    ----------
    obj : mapping
        The file's content: ``entries`` (required, a non-empty list of mappings), ``defaults`` and ``root``
        (optional). An entry holds ``name``, run parameters, ``gpus`` / ``cpus`` and optionally ``requires``
        (a list of :data:`REQUIREMENTS` names; only in entries, not in ``defaults``).
    source : str, default="<sweep>"
        Named in error messages.

    Returns
    -------
    Sweep

    Raises
    ------
    SweepError
        Listing every problem found: unknown keys, missing or duplicate names, invalid parameters (each naming
        its entry).
    """
    if not isinstance(obj, Mapping):
        raise SweepError(f"{source}: a sweep file is a mapping with 'entries' (and optionally 'root' and "
                         f"'defaults'); got {type(obj).__name__}")
    errors: list[str] = []
    unknown = sorted(set(obj) - set(SWEEP_KEYS))
    if unknown:
        errors.append(f"unknown top-level key(s) {', '.join(map(str, unknown))}; allowed: {', '.join(SWEEP_KEYS)}")
    root = obj.get("root")
    if root is not None and (not isinstance(root, str) or not root.strip()):
        errors.append(f"root must be a directory path; got {root!r}")
    defaults = obj.get("defaults") or {}
    if not isinstance(defaults, Mapping):
        errors.append(f"defaults must be a mapping of run parameters; got {defaults!r}")
        defaults = {}
    allowed_defaults = set(PARAMETER_KEYS) | {"gpus", "cpus"}
    bad = sorted(set(defaults) - allowed_defaults)
    if bad:
        errors.append(_unknown_message("defaults", bad, sorted(allowed_defaults)))
    default_resources = _check_resources("defaults", defaults, errors)
    default_params = {k: v for k, v in defaults.items() if k in PARAMETER_KEYS}

    raw_entries = obj.get("entries")
    if not isinstance(raw_entries, list) or not raw_entries:
        errors.append("entries must be a non-empty list of mappings, each with a 'name'")
        raw_entries = []
    entries: list[SweepEntry] = []
    seen: dict[str, str] = {}
    for i, raw in enumerate(raw_entries, start=1):
        if not isinstance(raw, Mapping):
            errors.append(f"entry #{i}: must be a mapping with a 'name'; got {raw!r}")
            continue
        name = raw.get("name")
        where = f"entry #{i} ({name!r})" if name is not None else f"entry #{i}"
        if not isinstance(name, str) or not _NAME.match(name):
            errors.append(f"{where}: name must be a string of letters, digits, '.', '_', '+' or '-' (it names the "
                          f"run directory), starting with a letter or digit; got {name!r}")
            name = None
        elif name.lower() in seen:
            errors.append(f"{where}: duplicate name (entry {seen[name.lower()]!r} has it already; names are "
                          "compared ignoring case, as they name directories)")
            name = None
        else:
            seen[name.lower()] = name
        bad = sorted(set(raw) - set(PARAMETER_KEYS) - set(ENTRY_KEYS))
        if bad:
            errors.append(_unknown_message(where, bad, sorted(set(PARAMETER_KEYS) | set(ENTRY_KEYS))))
        resources = {**default_resources, **_check_resources(where, raw, errors)}
        requires = _check_requires(where, raw, errors)
        merged = {**default_params, **{k: v for k, v in raw.items() if k in PARAMETER_KEYS}}
        merged = {k: (_absolute_if_local(v) if k in PATH_PARAMETERS else v) for k, v in merged.items()}
        try:
            cfg = RunConfig.from_mapping(merged)
        except ParameterError as exc:
            errors.append(f"{where}: {exc}")
            continue
        if name is not None and not bad:
            params = cfg.to_parameters()
            params.pop("run_dir")
            entries.append(SweepEntry(name=name, params=params, requires=requires, **resources))
    if errors:
        raise SweepError(f"{source}: invalid sweep file:\n  - " + "\n  - ".join(errors))
    return Sweep(entries=tuple(entries), root=root, source=source)


def _unknown_message(where: str, bad: Sequence[Any], allowed: Sequence[str]) -> str:
    hint = " (run_dir is set by the sweep: <root>/<name>)" if "run_dir" in bad else ""
    return f"{where}: unknown key(s) {', '.join(map(str, bad))}{hint}; allowed: {', '.join(allowed)}"


def load_sweep(path: str | os.PathLike) -> Sweep:
    """Read and validate a sweep file (YAML); see :func:`parse_sweep`."""
    import yaml

    path = Path(path).expanduser()
    if not path.is_file():
        raise SweepError(f"sweep file {path} does not exist")
    try:
        obj = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise SweepError(f"{path} is not valid YAML: {exc}") from None
    return parse_sweep(obj, source=str(path))


def default_root(sweep_file: str | os.PathLike) -> Path:
    """Where a sweep's runs go when neither ``--root`` nor the file's ``root`` says: ``runs/<file stem>``."""
    return Path("runs") / Path(sweep_file).stem
