"""The study's published Pythia results, shipped inside the package and verified by SHA-256 when read.

The files in ``ua_helpers/published/`` are byte-for-byte copies of the original study's result files (numbers
only, no statement text; provenance in ``ua_helpers/published/PROVENANCE.md``). They make the book's comparison
with Pythia work offline: nothing here touches the network.

>>> from ua_helpers.inputs import published
>>> pair_level = published.load("pythia-6.9b_option_b_pair_level")   # the seed's results schema
>>> pair_level["results"]["0"]["margin_asymmetry"]["r"]               # doctest: +SKIP
-0.677...
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

from .._io import sha256_bytes

#: The commit of ``buk81/uniformity-asymmetry`` every file comes from.
SOURCE_REPOSITORY = "buk81/uniformity-asymmetry"
SOURCE_COMMIT = "660747c27b7a34a3c1dc45412397339bba3a8fdb"
SOURCE_FOLDER = "Results/pythia"
LICENSE = "MIT license, third-party"
#: The original study the published files, the ua-230 dataset and the metrics' definitions come from (facts from
#: its repository's README at SOURCE_COMMIT; ``CITATION.cff`` cites the same study).
STUDY = {
    "author": "Davide D'Elia",
    "title": "Uniformity Asymmetry: An Exploratory Metric for Detecting Representational Preferences in LLM "
             "Embeddings",
    "year": 2025,
    "venue": "Zenodo preprint, 2025-12-31",
    "doi": "10.5281/zenodo.18110161",
    "repository": f"https://github.com/{SOURCE_REPOSITORY}",
}


@dataclass(frozen=True)
class PublishedFile:
    """One shipped file: its name here, its original name, the SHA-256 of the original, and what it holds."""

    name: str
    original: str
    sha256: str
    about: str

    @property
    def url(self) -> str:
        """The pinned address of the original file."""
        return (f"https://raw.githubusercontent.com/{SOURCE_REPOSITORY}/{SOURCE_COMMIT}/{SOURCE_FOLDER}/"
                f"{self.original}")


#: Every shipped file, by its name here (without ``.json``).
FILES: dict[str, PublishedFile] = {f.name: f for f in (
    PublishedFile("pythia-6.9b_option_b_pair_level", "option_b_pair_level_20260102_142148.json",
                  "dcc543f4a71006c3b8fe8f78c64bfc32e5abcd4dd3dccc8917718ab941d8c0d6",
                  "pair level (the seed notebook), Pythia-6.9B float16 on ua-230, 5 metrics x 9 layers"),
    PublishedFile("pythia-6.9b_category_level_bootstrap_ci", "bootstrap_ci_20260102_132830.json",
                  "8442897e293e554044cc526fb0ddbddb51338e8164497066a498ebcf0da61490",
                  "category-level UA vs mean preference (n = 6 categories) per layer, bootstrap CI"),
    PublishedFile("pythia-6.9b_category_level_layers", "layer_analysis_20260102_122534.json",
                  "c5173e5cb5c4e06197f226450eed7bfe065a5c09394ce4c303bd6483d8fdf9b0",
                  "category-level r per layer and last-layer pooling variants"),
    PublishedFile("pythia-6.9b_category_level_last_layer", "pythia_6.9b_ua_results_20260102_002828.json",
                  "5438cec162222a392a3cd4525888d0fd583e6d8595b48d74f113862c0fa56068",
                  "per-category uniformity, UA and preference at Pythia-6.9B's last layer"),
    PublishedFile("pythia-12b_category_level_last_layer", "pythia_12b_ua_results_20260102_003540.json",
                  "67217098d444972755e1515448066e0c00fa9999d0238ea7048d5aee7b233a90",
                  "per-category uniformity, UA and preference at Pythia-12B's last layer"),
    PublishedFile("pythia-6.9b_option_a_bins", "option_a_bins_20260102_140002.json",
                  "9d4a32f7824105eb548a6051da84f07534ede0a9a2e4dd724ee2e3a64ed901ac",
                  "Option A: UA on k = 20 random bins of pairs per layer, bootstrap CI over bins"),
    PublishedFile("pythia_scaling_category_level_layers", "pythia_scaling_20260102_131212.json",
                  "0059fc6d640eaab7f133a9efa80159766a438b65e054592f555ad40575bb4b51",
                  "category-level r per layer for Pythia-410M, 1.4B, 6.9B and 12B"),
)}

#: The pair-level file the book compares a run with.
PAIR_LEVEL = "pythia-6.9b_option_b_pair_level"


def info(name: str) -> PublishedFile:
    """Return the provenance record of one shipped file; raise ``ValueError`` naming the known files."""
    key = name.removesuffix(".json")
    if key not in FILES:
        raise ValueError(f"no published file named {name!r}; the package ships {sorted(FILES)}")
    return FILES[key]


def read_bytes(name: str) -> bytes:
    """Return one shipped file's bytes after checking them against the recorded SHA-256.

    Raises
    ------
    ValueError
        The name is unknown, or the file's SHA-256 differs from the recorded one (a damaged installation).
    FileNotFoundError
        The package was installed without its data files.
    """
    record = info(name)
    path = resources.files("ua_helpers.inputs") / "published" / f"{record.name}.json"
    if not path.is_file():
        raise FileNotFoundError(f"the published file {record.name}.json is missing from the installed package "
                                f"({path}); reinstall ua-helpers")
    raw = path.read_bytes()
    digest = sha256_bytes(raw)
    if digest != record.sha256:
        raise ValueError(f"the shipped published file {record.name}.json has SHA-256 {digest}, not the recorded "
                         f"{record.sha256} of {record.url}: the installation is damaged; reinstall ua-helpers")
    return raw


def load(name: str) -> dict[str, Any]:
    """Read one shipped published file (SHA-256 verified) as a dict.

    Parameters
    ----------
    name : str
        A key of :data:`FILES`, with or without ``.json`` (e.g. ``"pythia-6.9b_option_b_pair_level"``).

    Returns
    -------
    dict
        The file's JSON content, unchanged.
    """
    return json.loads(read_bytes(name).decode("utf-8"))


def about(name: str) -> str:
    """Return one line, in Markdown, saying where a shipped file comes from (for pages and notebooks)."""
    record = info(name)
    return (f"`{record.original}` from `{SOURCE_REPOSITORY}` at commit `{SOURCE_COMMIT[:12]}` ({LICENSE}), "
            f"shipped in the package and checked against its SHA-256 `{record.sha256[:16]}…`")
