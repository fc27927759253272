"""Hidden-state embeddings and output NLL for every statement: one batched forward pass per statement.

The seed notebook ran one forward pass per layer per statement plus two for the NLL. Here one pass per statement
gives every requested layer and the NLL at once; statements of similar length are batched with right padding,
and pooling and loss are masked per sequence. ``get_layer_embedding`` and ``get_output_preference`` keep the
seed's one-statement code as the reference path that tests compare against.
"""
from __future__ import annotations

import platform
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .._io import cache_dir, load_arrays, save_arrays, stable_hash
from ..options import POOLINGS, REPRESENTATIONS
from .batching import (
    BATCH_MEMORY_BYTES,
    PREFIXES,
    bytes_per_token,
    context_length,
    plan_batches,
    prefix_token_id,
    tokenize_statements,
)
from .data import PairSet
from .models import LoadedModel

CACHE_FORMAT = 2  # 2: token ids (flat + offsets) and digit flags stored; representation and prefix in the key
_RANDOM_TOKEN_STREAM = 3  # spawn key of the random-token vectors' SeedSequence (see random_token_vectors)


# --------------------------------------------------------------------------- the seed's reference path
def get_layer_embedding(text: str, model, tokenizer, layer_idx: int) -> np.ndarray:
    """Get mean-pooled embedding from a specific layer (the seed's code: one statement, tokens 1..T-1)."""
    import torch

    inputs = tokenizer(text, return_tensors="pt").to(model.device)
    with torch.no_grad():
        outputs = model(**inputs, output_hidden_states=True)
        hidden_states = outputs.hidden_states
    layer_hidden = hidden_states[layer_idx]
    # .float() before .numpy(): the same values as the seed's .numpy().astype(float32), and bfloat16 works too
    return layer_hidden[0, 1:, :].mean(dim=0).float().cpu().numpy()


def get_nll(text: str, model, tokenizer) -> float:
    """Mean next-token cross-entropy of one statement, as the model's ``loss`` for ``labels=input_ids``."""
    import torch

    inputs = tokenizer(text, return_tensors="pt").to(model.device)
    with torch.no_grad():
        outputs = model(**inputs, labels=inputs["input_ids"])
        return outputs.loss.item()


def get_output_preference(text_a: str, text_b: str, model, tokenizer) -> float:
    """Calculate output preference as NLL(B) - NLL(A) (the seed's code; > 0 means the model prefers A)."""
    return get_nll(text_b, model, tokenizer) - get_nll(text_a, model, tokenizer)


# --------------------------------------------------------------------------- layers
def resolve_layers(layers: str | int | Sequence[int], num_layers: int) -> list[int]:
    """Turn a layer spec into indices into ``hidden_states`` (0 = embeddings, ``num_layers`` = last block).

    ``"paper"`` is the seed's grid 0, 4, 8, ... plus the last block; ``"all"`` is 0..num_layers; a list (or a
    comma-separated string) is taken as given, sorted and de-duplicated.
    """
    if isinstance(layers, str):
        spec = layers.strip().lower()
        if spec == "paper":
            return sorted(set(range(0, num_layers + 1, 4)) | {num_layers})
        if spec == "all":
            return list(range(num_layers + 1))
        try:
            layers = [int(x) for x in spec.split(",") if x.strip()]
        except ValueError:
            raise ValueError(f"layers must be 'paper', 'all' or a list of integers; got {layers!r}") from None
    if isinstance(layers, (int, np.integer)):
        layers = [int(layers)]
    out = []
    for layer in layers:
        if isinstance(layer, bool) or not isinstance(layer, (int, np.integer)):
            raise ValueError(f"layer {layer!r} is not an integer")
        if not 0 <= layer <= num_layers:
            raise ValueError(
                f"layer {layer} is out of range: this model has hidden_states indices 0..{num_layers} "
                f"(0 = embeddings, {num_layers} = last block)"
            )
        out.append(int(layer))
    if not out:
        raise ValueError("no layers requested")
    return sorted(set(out))


# --------------------------------------------------------------------------- result
@dataclass
class Extraction:
    """Per-pair NLL and pooled hidden states for the requested layers.

    Attributes
    ----------
    nll_a, nll_b : ndarray of shape (n_pairs,)
        Mean next-token cross-entropy of each statement.
    n_tokens_a, n_tokens_b : ndarray of shape (n_pairs,)
        Token counts (including any special tokens the tokenizer adds).
    emb_a, emb_b : ndarray of shape (n_layers, n_pairs, d_model), float32
        Pooled hidden states; ``emb_a[i]`` belongs to ``layers[i]``. With another representation
        (``meta["representation"]``) every layer holds the same pooled token vectors.
    layers : list of int
    meta : dict
        Model, dataset and extraction settings, versions, timing.
    token_ids : ndarray of int64, shape (n_tokens_total,), optional
        The token ids of the 2 * n_pairs statements (A statements first, any prefix included), concatenated.
    token_offsets : ndarray of int64, shape (2 * n_pairs + 1,), optional
        Statement ``j``'s ids are ``token_ids[token_offsets[j]:token_offsets[j + 1]]``.
    token_has_digit : ndarray of bool, shape (n_tokens_total,), optional
        Whether each token's text contains a digit.
    """

    nll_a: np.ndarray
    nll_b: np.ndarray
    n_tokens_a: np.ndarray
    n_tokens_b: np.ndarray
    emb_a: np.ndarray
    emb_b: np.ndarray
    layers: list[int]
    meta: dict[str, Any] = field(default_factory=dict)
    token_ids: np.ndarray | None = None
    token_offsets: np.ndarray | None = None
    token_has_digit: np.ndarray | None = None

    @property
    def preference(self) -> np.ndarray:
        """NLL(B) - NLL(A) per pair, shape (n_pairs,): positive means the model prefers statement A."""
        return self.nll_b - self.nll_a

    @property
    def n_pairs(self) -> int:
        return len(self.nll_a)

    def layer(self, layer: int) -> tuple[np.ndarray, np.ndarray]:
        """Return ``(emb_a, emb_b)`` of one layer, each of shape (n_pairs, d_model)."""
        if layer not in self.layers:
            raise ValueError(f"layer {layer} was not extracted; available: {self.layers}")
        i = self.layers.index(layer)
        return self.emb_a[i], self.emb_b[i]

    def require_tokens(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(token_ids, token_offsets, token_has_digit)``, or raise ValueError where they were not kept."""
        if self.token_ids is None or self.token_offsets is None or self.token_has_digit is None:
            raise ValueError("this extraction holds no token ids (made by an older version or by hand); "
                             "extract again with extraction.extract")
        if self.token_offsets.shape != (2 * self.n_pairs + 1,):
            raise ValueError(f"token_offsets has shape {self.token_offsets.shape}; expected ({2 * self.n_pairs + 1},)")
        return self.token_ids, self.token_offsets, self.token_has_digit

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"nll_a": self.nll_a, "nll_b": self.nll_b, "n_tokens_a": self.n_tokens_a,
               "n_tokens_b": self.n_tokens_b, "emb_a": self.emb_a, "emb_b": self.emb_b,
               "layers": np.asarray(self.layers, dtype=np.int64)}
        if self.token_ids is not None:
            out.update(token_ids=np.asarray(self.token_ids, dtype=np.int64),
                       token_offsets=np.asarray(self.token_offsets, dtype=np.int64),
                       token_has_digit=np.asarray(self.token_has_digit, dtype=bool))
        return out


# --------------------------------------------------------------------------- token-level representations
def flatten_tokens(ids: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Store ragged token ids without pickle: ``(token_ids, token_offsets)``, shapes (total,) and (n + 1,)."""
    lengths = np.array([len(s) for s in ids], dtype=np.int64)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    flat = np.fromiter((t for s in ids for t in s), dtype=np.int64, count=int(offsets[-1]))
    return flat, offsets


def pool_token_vectors(table: np.ndarray, token_ids, token_offsets, pooling: str = "mean",
                       vocab_ids=None) -> np.ndarray:
    """Pool per-token vectors over the positions the hidden states are pooled over (:func:`extract`).

    ``"mean"`` averages positions 1..T-1 of each statement (the seed skips position 0), ``"last"`` takes
    position T-1.

    Parameters
    ----------
    table : ndarray of shape (n_vocab_rows, d_model)
        One vector per token id: row ``t`` for id ``t``, or row ``k`` for ``vocab_ids[k]`` when given.
    token_ids : ndarray of int, shape (n_tokens_total,)
    token_offsets : ndarray of int, shape (n_statements + 1,)
    pooling : {"mean", "last"}
    vocab_ids : ndarray of int, shape (n_vocab_rows,), sorted, optional
        The ids of ``table``'s rows.

    Returns
    -------
    ndarray of shape (n_statements, d_model), float64
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}; got {pooling!r}")
    ids = np.asarray(token_ids, dtype=np.int64)
    offsets = np.asarray(token_offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    if lengths.size == 0 or np.any(lengths < 2) or offsets[0] != 0 or offsets[-1] != ids.size:
        raise ValueError("token_offsets must start at 0, end at len(token_ids) and give every statement >= 2 tokens")
    if vocab_ids is None:
        rows = ids
    else:
        vocab_ids = np.asarray(vocab_ids, dtype=np.int64)
        rows = np.minimum(np.searchsorted(vocab_ids, ids), vocab_ids.size - 1)
        if not np.array_equal(vocab_ids[rows], ids):
            raise ValueError("vocab_ids lacks some of the token ids")
    table = np.asarray(table, dtype=np.float64)
    if pooling == "last":
        return table[rows[offsets[1:] - 1]]
    position = np.arange(ids.size) - np.repeat(offsets[:-1], lengths)  # position of each token in its statement
    kept = table[rows[position >= 1]]  # [sum(T - 1), d_model]
    starts = np.concatenate([[0], np.cumsum(lengths - 1)[:-1]])
    return np.add.reduceat(kept, starts, axis=0) / (lengths - 1)[:, None]


def random_token_vectors(vocab_ids, d_model: int, seed: int = 42) -> np.ndarray:
    """Return one seeded standard-normal vector per token id, shape (len(vocab_ids), d_model), float64.

    Id ``t``'s vector depends only on ``(seed, t)``: it is drawn by
    ``default_rng(SeedSequence([seed, t], spawn_key=(3,))).standard_normal(d_model)``, so a token has the same
    vector in every statement and every data set, and no vector depends on which other tokens occur.
    """
    if isinstance(d_model, bool) or not isinstance(d_model, (int, np.integer)) or d_model < 1:
        raise ValueError(f"d_model must be a positive integer; got {d_model!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer; got {seed!r}")
    out = np.empty((len(vocab_ids), int(d_model)))
    for k, t in enumerate(np.asarray(vocab_ids, dtype=np.int64)):
        ss = np.random.SeedSequence([int(seed), int(t)], spawn_key=(_RANDOM_TOKEN_STREAM,))
        out[k] = np.random.default_rng(ss).standard_normal(int(d_model))
    return out


def random_token_embeddings(token_ids, token_offsets, d_model: int, seed: int = 42,
                            pooling: str = "mean") -> np.ndarray:
    """Pool :func:`random_token_vectors` over each statement's tokens: shape (n_statements, d_model), float64."""
    vocab = np.unique(np.asarray(token_ids, dtype=np.int64))
    return pool_token_vectors(random_token_vectors(vocab, d_model, seed), token_ids, token_offsets, pooling,
                              vocab_ids=vocab)


# --------------------------------------------------------------------------- cache
def cache_key(fingerprint: str, dtype: str, dataset_sha256: str, layers, pooling: str,
              representation: str = "hidden-states", prefix: str = "none", seed: int = 42) -> str:
    """Key of an extraction: everything that determines its numbers (``seed`` only for ``"random-tokens"``)."""
    spec = layers if isinstance(layers, str) else [int(x) for x in layers]
    return stable_hash({"format": CACHE_FORMAT, "model": fingerprint, "dtype": dtype,
                        "dataset": dataset_sha256, "layers": spec, "pooling": pooling,
                        "representation": representation, "prefix": prefix,
                        "representation_seed": int(seed) if representation == "random-tokens" else None})[:32]


def cache_key_for(model: str, pairs: PairSet, *, revision: str | None = None, dtype: str = "auto",
                  device: str = "auto", layers="paper", pooling: str = "mean", representation: str = "hidden-states",
                  prefix: str = "none", seed: int = 42) -> str:
    """Return the key :func:`extract` would use for these arguments, without loading the model.

    The model part is :func:`~ua_helpers.inputs.models.model_fingerprint` (what ``load_model`` records as the
    LoadedModel's fingerprint) and the dtype is resolved as ``load_model`` resolves it.
    """
    from .models import model_fingerprint, resolve_dtype

    spec = layers if isinstance(layers, str) else sorted({int(x) for x in layers})
    return cache_key(model_fingerprint(model, revision), resolve_dtype(dtype, device), pairs.identity, spec,
                     pooling, representation, prefix, seed)


def check_preference(ext: Extraction, pairs: PairSet) -> None:
    """Raise ValueError unless the preference NLL(B) - NLL(A) is finite and varies across pairs.

    A constant preference has no correlation with anything; it is only knowable after extraction, so the
    extraction notebook checks it rather than letting the statistics fail later.
    """
    pref = np.asarray(ext.preference, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(pref))
    if bad.size:
        i = int(bad[0])
        raise ValueError(f"the preference of {bad.size} pair(s) is not finite, e.g. pair {i} "
                         f"(category {pairs.category[i]!r}): NLL(A) = {ext.nll_a[i]}, NLL(B) = {ext.nll_b[i]}")
    if np.ptp(pref) == 0:
        raise ValueError(f"the preference NLL(B) - NLL(A) is {pref[0]!r} for all {pref.size} pairs: a constant "
                         "cannot be correlated with anything (are the A and B statements identical?)")


def _cache_path(key: str, cache: bool | str | Path) -> Path | None:
    if cache is False or cache is None:
        return None
    root = cache_dir("extractions") if cache is True else Path(cache)
    return root / f"extraction-{key}.npz"


def load_cached(key: str, cache: bool | str | Path = True) -> Extraction | None:
    """Return the cached extraction for ``key``, or None (a missing or unreadable file is a miss)."""
    path = _cache_path(key, cache)
    if path is None or not path.is_file():
        return None
    try:
        arrays, meta = load_arrays(path)
        return Extraction(
            nll_a=arrays["nll_a"], nll_b=arrays["nll_b"], n_tokens_a=arrays["n_tokens_a"],
            n_tokens_b=arrays["n_tokens_b"], emb_a=arrays["emb_a"], emb_b=arrays["emb_b"],
            layers=[int(x) for x in arrays["layers"]], meta={**meta, "cache_file": str(path)},
            token_ids=arrays["token_ids"], token_offsets=arrays["token_offsets"],
            token_has_digit=arrays["token_has_digit"],
        )
    except Exception as exc:  # a damaged cache file is recomputed, never trusted
        warnings.warn(f"ignoring unreadable extraction cache {path}: {exc}", stacklevel=2)
        return None


# --------------------------------------------------------------------------- batched extraction
def _tokenize(lm: LoadedModel, pairs: PairSet, prefix: str = "none") -> list[list[int]]:
    return tokenize_statements(lm.tokenizer, pairs, context_length(lm), lm.name,
                               prefix_token_id(lm.tokenizer, prefix))


def _has_digit(tokenizer, token_ids: np.ndarray) -> np.ndarray:
    """Whether each token's text (as the tokenizer spells it) contains a decimal digit, shape like token_ids."""
    vocab, inverse = np.unique(token_ids, return_inverse=True)
    texts = tokenizer.convert_ids_to_tokens([int(t) for t in vocab])
    flags = np.array([any(ch.isdigit() for ch in str(text)) for text in texts], dtype=bool)
    return flags[inverse.reshape(-1)]


def _forward_batch(lm: LoadedModel, batch: list[list[int]], layers: list[int], pooling: str):
    """Run one padded batch; return pooled states ``[n_layers, batch, d_model]`` and NLL ``[batch]``.

    With ``layers`` empty no hidden state is requested (another representation replaces them)."""
    import torch
    import torch.nn.functional as F

    lengths = torch.tensor([len(s) for s in batch])
    t_max = int(lengths.max())
    pad_id = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else 0
    input_ids = torch.full((len(batch), t_max), pad_id, dtype=torch.long)  # [batch, pos]
    for b, seq in enumerate(batch):
        input_ids[b, : len(seq)] = torch.tensor(seq)
    positions = torch.arange(t_max)[None, :]
    attention_mask = (positions < lengths[:, None]).long()  # [batch, pos], right padding
    dev = lm.input_device
    with torch.no_grad():
        out = lm.model(input_ids=input_ids.to(dev), attention_mask=attention_mask.to(dev),
                       output_hidden_states=bool(layers))
    # NLL: mean cross-entropy of tokens 1..T-1 given their prefixes, in float32 as transformers' loss does.
    logits = out.logits[:, :-1, :].float()  # [batch, pos-1, vocab]
    targets = input_ids[:, 1:].to(logits.device)
    # Flattened (tokens, vocab) layout, as transformers' loss: the (batch, vocab, pos) layout takes another
    # kernel on CPU that differs by ~1e-4 in float32.
    token_nll = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1),
                                reduction="none").view(targets.shape)  # [batch, pos-1]
    score_mask = attention_mask[:, 1:].to(token_nll.device).float()
    nll = (token_nll * score_mask).sum(1) / score_mask.sum(1)
    # Pooling: the seed averages positions 1..T-1 (it skips position 0); "last" takes position T-1.
    if pooling == "mean":
        pool = ((positions >= 1) & (positions < lengths[:, None])).float()
    else:
        pool = (positions == (lengths[:, None] - 1)).float()
    pool = pool / pool.sum(1, keepdim=True)  # [batch, pos]
    pooled = [
        torch.einsum("bp,bpd->bd", pool.to(out.hidden_states[layer].device), out.hidden_states[layer].float())
        for layer in layers
    ]
    if not pooled:
        return np.zeros((0, len(batch), lm.d_model), dtype=np.float32), nll.double().cpu().numpy()
    return torch.stack([p.cpu() for p in pooled]).numpy(), nll.double().cpu().numpy()


def extract(
    lm: LoadedModel,
    pairs: PairSet,
    layers: str | Sequence[int] = "paper",
    batch_size: int = 32,
    pooling: str = "mean",
    cache: bool | str | Path = True,
    progress: bool = True,
    max_batch_bytes: int = BATCH_MEMORY_BYTES,
    representation: str = "hidden-states",
    prefix: str = "none",
    seed: int = 42,
) -> Extraction:
    """Compute NLL and pooled hidden states of every statement in one batched forward pass each.

    Parameters
    ----------
    lm : LoadedModel
    pairs : PairSet
    layers : "paper", "all" or list of int, default="paper"
        Indices into ``hidden_states`` (see :func:`resolve_layers`).
    batch_size : int, default=32
        Most statements per forward pass; batches hold statements of similar length.
    pooling : {"mean", "last"}, default="mean"
        ``"mean"`` averages tokens 1..T-1 as the seed does; ``"last"`` takes the last token.
    cache : bool or path, default=True
        Reuse and store the result in the content-addressed cache (True: the user cache directory).
    progress : bool, default=True
        Show a progress bar.
    max_batch_bytes : int, default=BATCH_MEMORY_BYTES (1 GiB)
        Activation memory allowed per forward pass (see :func:`~ua_helpers.inputs.batching.bytes_per_token`): long statements go in smaller
        batches, whatever ``batch_size`` says (:func:`~ua_helpers.inputs.batching.plan_batches`). Like ``batch_size``, it does not enter the
        cache key: it only changes floating-point rounding.
    representation : {"hidden-states", "token-embeddings", "random-tokens"}, default="hidden-states"
        What ``emb_a``/``emb_b`` hold: the pooled hidden states (the seed); the model's input embedding table
        pooled the same way; or :func:`random_token_embeddings` (a seeded Gaussian vector per token id, no
        model). The last two are the same at every layer. The NLL always comes from the model's forward pass.
    prefix : {"none", "bos"}, default="none"
        ``"bos"`` puts the tokenizer's BOS (or end-of-text) token before every statement
        (:func:`~ua_helpers.inputs.batching.prefix_token_id`), so pooling skips a non-word and the NLL scores every word.
    seed : int, default=42
        Seed of the random-token vectors (used, and in the cache key, only for ``"random-tokens"``).

    Returns
    -------
    Extraction

    Raises
    ------
    ValueError
        A statement shorter than 2 tokens or longer than the model's context (:func:`~ua_helpers.inputs.batching.context_length`), naming
        the pair; bad ``pooling``, ``batch_size`` or ``max_batch_bytes``.
    """
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}; got {pooling!r}")
    if representation not in REPRESENTATIONS:
        raise ValueError(f"representation must be one of {REPRESENTATIONS}; got {representation!r}")
    if prefix not in PREFIXES:
        raise ValueError(f"prefix must be one of {PREFIXES}; got {prefix!r}")
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer; got {batch_size!r}")
    if isinstance(max_batch_bytes, bool) or not isinstance(max_batch_bytes, (int, np.integer)) \
            or max_batch_bytes < 1:
        raise ValueError(f"max_batch_bytes must be a positive integer; got {max_batch_bytes!r}")
    layer_list = resolve_layers(layers, lm.num_layers)
    key = cache_key(lm.fingerprint, lm.dtype, pairs.identity, layers if isinstance(layers, str) else layer_list,
                    pooling, representation, prefix, seed)
    cached = load_cached(key, cache)
    if cached is not None:
        return cached

    import torch
    import transformers
    from tqdm import tqdm

    start = time.perf_counter()
    prefix_id = prefix_token_id(lm.tokenizer, prefix)
    ids = _tokenize(lm, pairs, prefix)
    n_total, n = len(ids), pairs.n_pairs
    hidden = representation == "hidden-states"
    emb = np.zeros((len(layer_list), n_total, lm.d_model), dtype=np.float32)  # [layer, statement, d_model]
    nll = np.zeros(n_total, dtype=np.float64)
    batches = plan_batches([len(s) for s in ids], int(batch_size), int(max_batch_bytes), *bytes_per_token(lm))
    for idx in tqdm(batches, desc=f"extract {lm.name}", unit="batch", disable=not progress):
        pooled, batch_nll = _forward_batch(lm, [ids[j] for j in idx], layer_list if hidden else [], pooling)
        if hidden:
            emb[:, idx, :] = pooled
        nll[idx] = batch_nll
    token_ids, token_offsets = flatten_tokens(ids)
    if representation == "token-embeddings":
        vocab = np.unique(token_ids)
        weight = lm.model.get_input_embeddings().weight  # [vocab, d_model]
        table = weight[torch.as_tensor(vocab, device=weight.device)].detach().float().cpu().numpy()
        emb[:] = pool_token_vectors(table, token_ids, token_offsets, pooling, vocab_ids=vocab)
    elif representation == "random-tokens":
        emb[:] = random_token_embeddings(token_ids, token_offsets, lm.d_model, int(seed), pooling)
    n_tokens = np.array([len(s) for s in ids], dtype=np.int64)
    meta = {
        "model": lm.describe(), "dataset": {"name": pairs.name, "source": pairs.source, "sha256": pairs.sha256,
                                            "n_pairs": n},
        "layers": layer_list, "layers_spec": layers if isinstance(layers, str) else layer_list,
        "pooling": pooling, "representation": representation, "prefix": prefix, "prefix_token_id": prefix_id,
        "representation_seed": int(seed) if representation == "random-tokens" else None,
        "batch_size": int(batch_size), "max_batch_bytes": int(max_batch_bytes),
        "n_batches": len(batches), "context_length": context_length(lm), "cache_key": key,
        "elapsed_s": round(time.perf_counter() - start, 3), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                     "numpy": np.__version__, "python": platform.python_version()},
    }
    result = Extraction(nll_a=nll[:n], nll_b=nll[n:], n_tokens_a=n_tokens[:n], n_tokens_b=n_tokens[n:],
                        emb_a=emb[:, :n], emb_b=emb[:, n:], layers=layer_list, meta=meta, token_ids=token_ids,
                        token_offsets=token_offsets, token_has_digit=_has_digit(lm.tokenizer, token_ids))
    path = _cache_path(key, cache)
    if path is not None:
        result.emb_a, result.emb_b = np.ascontiguousarray(result.emb_a), np.ascontiguousarray(result.emb_b)
        save_arrays(path, result.arrays(), meta)
        result.meta["cache_file"] = str(path)
    return result
