"""Check a batched extraction against the seed's one-statement functions, with tolerances derived from precision.

The batched path (:func:`ua_helpers.inputs.extraction.extract`) and the seed's path (:func:`~ua_helpers.inputs.extraction.
get_layer_embedding`, :func:`~ua_helpers.inputs.extraction.get_output_preference`) compute the same functions of the same
weights in the same dtype; they differ only in the order of floating-point operations (matrix products blocked
for other shapes, padding, pooling in float32 rather than in the model's dtype). So their difference is bounded by
rounding, and the tolerance follows from the dtype's machine epsilon ``eps`` (float32 2**-23, float16 2**-10,
bfloat16 2**-7) and the magnitudes involved:

* **Embeddings.** Every block writes its output to the residual stream in the model's dtype, a relative rounding
  of about ``eps / 2`` of the largest component, and the two paths round independently. Independent roundings
  of the ``L`` blocks and the embedding layer add like a random walk, to about ``sqrt(L + 1) * eps`` of the
  vector's largest component (the worst case, all of one sign, is ``(L + 1) * eps``; the measurements below
  follow the square root: the ratio does not grow from 4 to 30 blocks). Mean pooling averages and does not
  enlarge it. Normalisation layers and attention amplify a difference by a model-dependent factor, and in
  float32 the reordered long dot products dominate the storage rounding: :data:`EMB_FACTOR` covers both.
* **Preference.** NLL is a mean of ``logsumexp(z) - z[target]`` over tokens: a perturbation ``d`` of the logits
  moves each term by at most ``2 * max|d|``, and the logits carry the final hidden state's relative error times
  their own magnitude, for which the NLL itself stands in (a model's NLL grows with its logits' spread). The
  preference is a difference of two NLLs, so its tolerance is ``sqrt(L + 1) * eps * (|NLL(A)| + |NLL(B)|)``
  times :data:`PREF_FACTOR`.

Measured ratios of the observed difference to ``sqrt(L + 1) * eps`` (times the NLL scale for the preference),
batched (13 pairs, one batch, padded) against the seed's path on CPU, largest over the sampled pairs:

=========================  ==========  ==========
model, dtype               embedding   preference
=========================  ==========  ==========
tiny GPT-NeoX (4), fp32    1.41        0.27
tiny GPT-NeoX (4), bf16    0.21        0.01
tiny GPT-NeoX (4), fp16    0.22        0.01
smollm2-135m (30), fp32    0.62        0.41
smollm2-135m (30), bf16    0.10        0.03
smollm2-135m (30), fp16    0.14        0.10
=========================  ==========  ==========

The factors are about ten times the largest ratio (16 and 4). For Pythia-6.9B (32 blocks) in float16 that
allows 9.0e-2 of a vector's largest component and 2.2e-2 nats per nat of ``|NLL(A)| + |NLL(B)|``; in float32,
1.1e-5 and 2.7e-6.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from .data import PairSet
from .extraction import Extraction, get_layer_embedding, get_nll
from .models import LoadedModel

if TYPE_CHECKING:
    import pandas as pd

#: Machine epsilon (spacing of floats at 1) of each dtype a model can be loaded in.
EPS = {"float32": 2.0**-23, "float16": 2.0**-10, "bfloat16": 2.0**-7}
#: Amplification allowance of the embedding tolerance (largest measured ratio 1.41, see the module docstring).
EMB_FACTOR = 16.0
#: Amplification allowance of the preference tolerance (largest measured ratio 0.41).
PREF_FACTOR = 4.0

EMB_COLUMN = "max rel. diff. embedding"
PREF_COLUMN = "abs. diff. preference"


class OneForwardPerInput:
    """A causal LM that runs one forward pass per distinct input and answers the seed's calls from it.

    The seed's :func:`~ua_helpers.inputs.extraction.get_layer_embedding` runs a whole forward pass for each layer it
    reads, and :func:`~ua_helpers.inputs.extraction.get_nll` one more for the loss. Wrapped in this object, the model
    computes each distinct ``input_ids`` once, with ``output_hidden_states=True`` and ``labels=input_ids``, and
    returns that same output to every later call on the same input whose ``labels`` are absent or equal to the
    ``input_ids`` -- the seed's code path, unchanged, at one pass per statement instead of ``n_layers + 2``. The
    hidden states and the loss of that pass are the ones each separate call computes: the same operations on
    the same inputs (``tests/unit/test_extraction.py`` checks they are equal to the bit).

    Parameters
    ----------
    model : transformers.PreTrainedModel
        Called as ``model(input_ids=..., attention_mask=..., output_hidden_states=True, labels=...)``.
    """

    def __init__(self, model):
        self.model = model
        self.passes = 0  # forward passes run (one per distinct input)
        self._outputs: dict[tuple, object] = {}

    @property
    def device(self):
        """The wrapped model's device (the seed moves its inputs there)."""
        return self.model.device

    def __call__(self, *, labels=None, output_hidden_states=None, **inputs):
        ids = inputs["input_ids"]
        if labels is not None and not (labels.shape == ids.shape and bool((labels == ids).all())):
            raise ValueError("OneForwardPerInput answers labels=input_ids (the seed's NLL) only")
        key = tuple(sorted((name, tuple(v.shape), tuple(v.flatten().tolist())) for name, v in inputs.items()))
        if key not in self._outputs:
            self._outputs[key] = self.model(**inputs, labels=ids, output_hidden_states=True)
            self.passes += 1
        return self._outputs[key]


class SeedPathMismatch(AssertionError):
    """The batched extraction disagrees with the seed's one-statement path beyond what rounding allows."""


def check_scope(pooling: str = "mean", representation: str = "hidden-states", prefix: str = "none") -> tuple[str, str]:
    """Say what the seed's one-statement functions can check of an extraction made with these settings.

    The seed's functions tokenize the bare statement, mean-pool the hidden states over tokens 1..T-1 and score
    the NLL. With a BOS prefix neither the statement's tokens nor its NLL are the seed's, so nothing can be
    compared; with another representation or ``"last"`` pooling the preference can, the geometry cannot.

    Returns
    -------
    (scope, reason)
        scope: ``"full"`` (embeddings and preference), ``"preference"`` or ``"none"``; reason: one sentence.
    """
    if prefix != "none":
        return "none", (f"not applicable: with prefix={prefix!r} every statement starts with a token the original "
                        "notebook's functions do not add, so neither its pooled states nor its NLL are theirs")
    if representation != "hidden-states":
        return "preference", (f"the preference only: representation={representation!r} replaces the hidden "
                              "states the original notebook's functions pool")
    if pooling != "mean":
        return "preference", (f"the preference only: the original notebook's functions mean-pool, this run uses "
                              f"pooling={pooling!r}")
    return "full", "pooled hidden states of every extracted layer and the preference"


def seed_tolerances(dtype: str, num_layers: int, nll_scale=1.0) -> tuple[float, np.ndarray]:
    """Return the largest differences rounding allows: ``(embedding, preference)``.

    Parameters
    ----------
    dtype : {"float32", "float16", "bfloat16"}
    num_layers : int
        The model's number of blocks ``L``.
    nll_scale : float or array-like of shape (n_sample,), default=1.0
        ``|NLL(A)| + |NLL(B)|`` of each checked pair (the preference's magnitude scale).

    Returns
    -------
    emb_tol : float
        ``EMB_FACTOR * sqrt(L + 1) * eps``: relative to the largest component of the seed's vector.
    pref_tol : ndarray of shape like ``nll_scale``
        ``PREF_FACTOR * sqrt(L + 1) * eps * max(nll_scale, 1)``: absolute, in nats.
    """
    if dtype not in EPS:
        raise ValueError(f"dtype must be one of {', '.join(EPS)}; got {dtype!r}")
    if isinstance(num_layers, bool) or not isinstance(num_layers, (int, np.integer)) or num_layers < 0:
        raise ValueError(f"num_layers must be a non-negative integer; got {num_layers!r}")
    scale = np.asarray(nll_scale, dtype=np.float64)
    if not np.all(np.isfinite(scale)) or np.any(scale < 0):
        raise ValueError("nll_scale must be finite and non-negative")
    base = np.sqrt(int(num_layers) + 1) * EPS[dtype]
    return EMB_FACTOR * base, PREF_FACTOR * base * np.maximum(scale, 1.0)


def check_against_seed(lm: LoadedModel, pairs: PairSet, ext: Extraction, n_sample: int = 5,
                       seed: int = 42, embeddings: bool = True) -> "pd.DataFrame":
    """Compare a batched extraction with the seed's one-statement functions on a seeded sample of pairs.

    Parameters
    ----------
    lm : LoadedModel
        The model ``ext`` was computed with.
    pairs : PairSet
        The pairs ``ext`` was computed from (same order).
    ext : Extraction
    n_sample : int, default=5
        Pairs to recompute (at most ``n_pairs``); each costs two unbatched forward passes (one per statement,
        shared by the seed's calls through :class:`OneForwardPerInput`).
    seed : int, default=42
        Seed of the sample.
    embeddings : bool, default=True
        Compare the pooled hidden states too; False compares the preference only (see :func:`check_scope`), and
        the embedding column is NaN.

    Returns
    -------
    pandas.DataFrame
        One row per sampled pair (index ``pair``): ``category``; ``max rel. diff. embedding`` (over the
        extracted layers and both statements, relative to the largest |component| of the seed's vector);
        ``abs. diff. preference`` (nats); ``nll scale`` (``|NLL(A)| + |NLL(B)|``); and the tolerances of
        :func:`seed_tolerances`. ``attrs`` holds ``dtype`` and ``num_layers``. Judge it with
        :func:`assert_matches_seed`.
    """
    import pandas as pd

    if ext.n_pairs != pairs.n_pairs:
        raise ValueError(f"the extraction has {ext.n_pairs} pairs and the pair set {pairs.n_pairs}; "
                         "pass the pairs it was computed from")
    if isinstance(n_sample, bool) or not isinstance(n_sample, (int, np.integer)) or n_sample < 1:
        raise ValueError(f"n_sample must be a positive integer; got {n_sample!r}")
    scope, reason = check_scope(ext.meta.get("pooling", "mean"), ext.meta.get("representation", "hidden-states"),
                                ext.meta.get("prefix", "none"))
    if scope == "none" or (embeddings and scope != "full"):
        raise ValueError(f"the seed's path cannot check this extraction's {'embeddings' if scope != 'none' else 'numbers'}"
                         f": {reason}")
    sample = np.random.default_rng(seed).choice(pairs.n_pairs, size=min(int(n_sample), pairs.n_pairs),
                                                replace=False)
    rows = []
    for i in sorted(int(x) for x in sample):
        model = OneForwardPerInput(lm.model)  # the seed's functions, one forward pass per statement
        rel = 0.0 if embeddings else np.nan
        for li, layer in enumerate(ext.layers if embeddings else []):
            for text, emb in ((pairs.stmt_a[i], ext.emb_a[li, i]), (pairs.stmt_b[i], ext.emb_b[li, i])):
                ref = get_layer_embedding(text, model, lm.tokenizer, layer)
                scale = float(np.abs(ref).max())
                diff = float(np.abs(emb - ref).max())
                rel = max(rel, diff / scale if scale > 0 else (0.0 if diff == 0 else np.inf))
        nll_a, nll_b = get_nll(pairs.stmt_a[i], model, lm.tokenizer), get_nll(pairs.stmt_b[i], model, lm.tokenizer)
        rows.append({"pair": i, "category": pairs.category[i], EMB_COLUMN: rel,
                     PREF_COLUMN: abs((nll_b - nll_a) - float(ext.preference[i])),
                     "nll scale": abs(nll_a) + abs(nll_b)})
    check = pd.DataFrame(rows).set_index("pair")
    emb_tol, pref_tol = seed_tolerances(lm.dtype, lm.num_layers, check["nll scale"].to_numpy())
    check["embedding tolerance"] = emb_tol
    check["preference tolerance"] = pref_tol
    check.attrs.update({"dtype": lm.dtype, "num_layers": int(lm.num_layers), "embeddings": bool(embeddings)})
    return check


def assert_matches_seed(check: "pd.DataFrame", dtype: str | None = None) -> None:
    """Raise :class:`SeedPathMismatch` unless every row of ``check`` is within the rounding tolerances.

    Parameters
    ----------
    check : pandas.DataFrame
        What :func:`check_against_seed` returned.
    dtype : str, optional
        The model's dtype; defaults to ``check.attrs["dtype"]`` (a different value is refused).

    Raises
    ------
    SeedPathMismatch
        Naming each pair outside the tolerance, its difference and the bound. A failed check means the cached
        or computed extraction is not what the model computes: the run must not continue with it.
    """
    recorded = check.attrs.get("dtype")
    dtype = dtype or recorded
    if recorded is not None and dtype != recorded:
        raise ValueError(f"the check was computed in {recorded}, not {dtype}")
    num_layers = check.attrs.get("num_layers")
    if dtype is None or num_layers is None:
        raise ValueError("check lacks attrs 'dtype' and 'num_layers': pass what check_against_seed returned")
    if check.empty:
        raise ValueError("the check holds no pairs")
    emb_tol, pref_tol = seed_tolerances(dtype, num_layers, check["nll scale"].to_numpy())
    bad_emb = ~(check[EMB_COLUMN].to_numpy() <= emb_tol)  # NaN fails too, unless embeddings were not compared
    if check.attrs.get("embeddings", True) is False:
        bad_emb[:] = False
    bad_pref = ~(check[PREF_COLUMN].to_numpy() <= pref_tol)
    if bad_emb.any() or bad_pref.any():
        lines = [f"pair {i}: embedding rel. diff. {e:.2e} (tolerance {emb_tol:.2e}), preference diff. {p:.2e} "
                 f"nats (tolerance {t:.2e})"
                 for i, e, p, t, bad in zip(check.index, check[EMB_COLUMN], check[PREF_COLUMN], pref_tol,
                                            bad_emb | bad_pref) if bad]
        raise SeedPathMismatch(
            f"the batched extraction disagrees with the seed's one-statement path ({dtype}, {num_layers} "
            "blocks) beyond rounding:\n  " + "\n  ".join(lines)
            + "\nThe extraction (or its cache) is not what this model computes; delete the cached extraction "
              "and the converted model and run again."
        )
