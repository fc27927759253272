"""What a forward pass may be given: statements checked against their length, batches bounded by memory.

A statement shorter than 2 tokens cannot be pooled over tokens 1..T-1 nor scored; one longer than the model's
context would be truncated silently, so both are refused, naming the pair. Batches are formed from statements of
similar length within a memory budget (:data:`BATCH_MEMORY_BYTES`), so memory stays bounded whatever
``batch_size`` says; where the budget does not bind they are the plain slices of ``batch_size`` statements.
"""
from __future__ import annotations

import numpy as np

from ..options import PREFIXES  # noqa: F401  (prompt prefixes, see prefix_token_id)
from .data import PairSet
from .models import LoadedModel

#: Memory allowed for one forward pass's activations (logits, hidden states, attention scores), in bytes.
BATCH_MEMORY_BYTES = 1 << 30
#: A tokenizer's ``model_max_length`` at or above this is transformers' "not set" placeholder.
_UNSET_LENGTH = 10**9


def _text_config(lm: LoadedModel):
    config = lm.model.config
    return config.get_text_config() if hasattr(config, "get_text_config") else config


def context_length(lm: LoadedModel) -> int | None:
    """Return the longest input the model takes, in tokens: the smaller of the configuration's
    ``max_position_embeddings`` (or ``n_positions``) and the tokenizer's ``model_max_length`` where set; None
    where neither says (a model without a position limit)."""
    config = _text_config(lm)
    limits = [getattr(config, a, None) for a in ("max_position_embeddings", "n_positions")]
    limits.append(getattr(lm.tokenizer, "model_max_length", None))
    limits = [int(x) for x in limits if isinstance(x, (int, np.integer)) and 0 < x < _UNSET_LENGTH]
    return min(limits) if limits else None


def bytes_per_token(lm: LoadedModel) -> tuple[int, int]:
    """Estimate one forward pass's activation memory: ``(bytes per token, bytes per token pair per statement)``.

    Per token: the logits three times in float32 (the model's output, our float32 copy, the log-softmax of the
    cross-entropy) and every hidden state in the model's dtype. Per pair of positions of one statement: one
    attention score matrix per head in float32 (the largest transient of eager attention). A batch of ``n``
    statements padded to ``t`` tokens needs about ``n * (t * per_token + t**2 * per_pair)`` bytes.
    """
    import torch

    config = _text_config(lm)
    itemsize = torch.finfo(getattr(torch, lm.dtype)).bits // 8
    vocab = int(getattr(config, "vocab_size", 0) or len(lm.tokenizer))
    heads = int(getattr(config, "num_attention_heads", 1) or 1)
    per_token = 3 * 4 * vocab + (lm.num_layers + 1) * lm.d_model * itemsize
    return per_token, 4 * heads


def plan_batches(lengths, batch_size: int, max_batch_bytes: int, per_token: int, per_pair: int) -> list[np.ndarray]:
    """Group statements into batches bounded by a count and by a memory budget.

    Statements are taken in order of length (stable), so each batch is padded to its last statement's length;
    a batch closes when it holds ``batch_size`` statements or when the next statement would take its estimated
    memory ``n * (t * per_token + t**2 * per_pair)`` over ``max_batch_bytes``. Where the budget never binds,
    the batches are exactly ``batch_size``-sized slices of the length order (the numbers do not change). A
    statement that alone exceeds the budget forms its own batch (statements are bounded by the context).

    Parameters
    ----------
    lengths : array-like of shape (n_statements,)
        Token counts.
    batch_size, max_batch_bytes, per_token, per_pair : int
        Upper bound on statements per batch; the memory budget and its per-token and per-position-pair costs.

    Returns
    -------
    list of ndarray of int
        Statement indices per batch, in increasing length.
    """
    lengths = np.asarray(lengths, dtype=np.int64)
    if lengths.ndim != 1:
        raise ValueError(f"lengths must be one-dimensional; got shape {lengths.shape}")
    order = np.argsort(lengths, kind="stable")
    batches, current = [], []
    for j in order:
        t = int(lengths[j])
        cost = (len(current) + 1) * (t * per_token + t * t * per_pair)
        if current and (len(current) == batch_size or cost > max_batch_bytes):
            batches.append(np.asarray(current))
            current = []
        current.append(j)
    if current:
        batches.append(np.asarray(current))
    return batches


def prefix_token_id(tokenizer, prefix: str = "none") -> int | None:
    """Return the token id put before every statement: None for ``"none"``; the BOS id for ``"bos"``.

    Without a prefix the seed's pooling (tokens 1..T-1) drops the statement's first token, a real word where the
    tokenizer adds no BOS (SmolLM2, Pythia by default), and the NLL never scores it. With ``"bos"`` position 0
    holds the tokenizer's BOS token, or its end-of-text (EOS) token where it defines no BOS.

    Raises
    ------
    ValueError
        An unknown prefix, or ``"bos"`` with a tokenizer that defines neither a BOS nor an end-of-text token.
    """
    if prefix not in PREFIXES:
        raise ValueError(f"prefix must be one of {', '.join(PREFIXES)}; got {prefix!r}")
    if prefix == "none":
        return None
    for attr in ("bos_token_id", "eos_token_id"):
        value = getattr(tokenizer, attr, None)
        if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            return int(value)
    raise ValueError(f"prefix='bos' needs a BOS or end-of-text token, but the tokenizer "
                     f"{type(tokenizer).__name__} defines neither (bos_token_id and eos_token_id are None)")


def tokenize_statements(tokenizer, pairs: PairSet, context: int | None = None,
                        model_name: str = "the model", prefix_id: int | None = None) -> list[list[int]]:
    """Tokenize every statement (A then B), refusing any shorter than 2 tokens or longer than ``context``.

    Parameters
    ----------
    tokenizer : a Hugging Face tokenizer
    pairs : PairSet
    context : int, optional
        The longest input the model takes (:func:`context_length`); None: no limit is checked.
    model_name : str
        Named in the error.
    prefix_id : int, optional
        Token id put before every statement (:func:`prefix_token_id`), unless the tokenizer already starts the
        statement with it; None: the tokenizer's ids as they are (the seed).

    Returns
    -------
    list of list of int
        Token ids of the 2 * n_pairs statements, A statements first.
    """
    texts = list(pairs.stmt_a) + list(pairs.stmt_b)
    ids = [list(tokenizer(t)["input_ids"]) for t in texts]
    if prefix_id is not None:
        ids = [seq if seq[:1] == [prefix_id] else [prefix_id, *seq] for seq in ids]
    n = pairs.n_pairs
    for j, seq in enumerate(ids):
        i, side = j % n, "A" if j < n else "B"
        if len(seq) < 2:
            raise ValueError(
                f"statement {side} of pair {i} (category {pairs.category[i]!r}) has {len(seq)} token(s): "
                f"{texts[j]!r}; pooling over tokens 1..T-1 and scoring the next token need at least 2"
            )
        if context is not None and len(seq) > context:
            raise ValueError(
                f"statement {side} of pair {i} (category {pairs.category[i]!r}) has {len(seq)} tokens, more "
                f"than the {context} of {model_name}'s context: {texts[j][:60]!r}...; shorten it (statements are "
                "refused rather than truncated, so that no score silently covers only part of a statement)"
            )
    return ids


def tokenizer_limit(tokenizer) -> int | None:
    """Return the tokenizer's ``model_max_length`` where it is really set (None for its "unset" sentinel)."""
    limit = getattr(tokenizer, "model_max_length", None)
    return int(limit) if isinstance(limit, (int, np.integer)) and 0 < limit < _UNSET_LENGTH else None
