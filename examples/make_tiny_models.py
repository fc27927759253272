"""Make the three tiny model directories that ``examples/sweep-tiny.yaml`` runs, offline.

Random GPT-NeoX models (Pythia's architecture at toy size: the numbers they give mean nothing) saved with
``save_pretrained``, each with a byte-level BPE tokenizer trained here on the bundled replication-230 statements
(as GPT-NeoX's tokenizer: no BOS token added, no pad token). Nothing is downloaded. Run from the repository root::

    python examples/make_tiny_models.py            # writes models/tiny-a-step1, models/tiny-a-step2, models/tiny-b
    ua-book sweep examples/sweep-tiny.yaml

``tiny-a-step1`` and ``tiny-a-step2`` share one configuration with differently seeded weights (two "checkpoints" of
one model); ``tiny-b`` is another model (other width and depth). A directory that already holds a model is left as
it is (its weights identify the sweep's earlier runs); ``--force`` makes it again. Each directory is written into a
temporary sibling and renamed into place, so an interrupted run leaves no half-written model.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from pathlib import Path

#: name -> (GPT-NeoX shape, weight seed); the names are the model directories sweep-tiny.yaml lists.
MODELS = {
    "tiny-a-step1": ({"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
                      "intermediate_size": 128}, 1),
    "tiny-a-step2": ({"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4,
                      "intermediate_size": 128}, 2),
    "tiny-b": ({"hidden_size": 32, "num_hidden_layers": 6, "num_attention_heads": 4, "intermediate_size": 64}, 3),
}
VOCAB_SIZE = 600


def train_tokenizer(corpus: list[str], vocab_size: int = VOCAB_SIZE):
    """Train a byte-level BPE tokenizer on ``corpus``; return a ``PreTrainedTokenizerFast``.

    Parameters
    ----------
    corpus : list of str
        Texts to learn merges from.
    vocab_size : int, default=600
        Size of the vocabulary (256 byte tokens, one special token, the rest merges).

    Returns
    -------
    transformers.PreTrainedTokenizerFast
        With ``<|endoftext|>`` as BOS, EOS and UNK token, and no pad token (extraction pads with id 0).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    if not corpus:
        raise ValueError("corpus is empty: the tokenizer needs texts to learn from")
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   unk_token="<|endoftext|>")


def save_model(target: Path, tokenizer, shape: dict, seed: int) -> Path:
    """Save a random GPT-NeoX model of ``shape`` (weights from ``seed``) and ``tokenizer`` into ``target``.

    Parameters
    ----------
    target : Path
        The model directory; must not exist (the caller decides whether to replace one).
    tokenizer : transformers.PreTrainedTokenizerFast
    shape : dict
        ``hidden_size``, ``num_hidden_layers``, ``num_attention_heads``, ``intermediate_size``.
    seed : int
        Seeds ``torch`` before the weights are initialized.

    Returns
    -------
    Path
        ``target``, holding ``config.json``, the weights and the tokenizer files.
    """
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    target = Path(target)
    if target.exists():
        raise FileExistsError(f"{target} exists; remove it or choose another directory")
    config = GPTNeoXConfig(
        vocab_size=len(tokenizer), max_position_embeddings=512, rotary_pct=0.25, use_parallel_residual=True,
        initializer_range=0.1, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False, **shape,
    )
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=target.parent))
    try:
        staging.chmod(0o777 & ~_umask())  # mkdtemp's 0700 would hide the model from other users
        torch.manual_seed(seed)
        GPTNeoXForCausalLM(config).save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        staging.replace(target)  # atomic: the directory appears complete or not at all
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def make_models(out: Path, force: bool = False, log=print) -> dict[str, Path]:
    """Make every model of :data:`MODELS` under ``out`` (existing ones are kept unless ``force``).

    Returns
    -------
    dict
        Model name -> its directory.
    """
    from ua_helpers.inputs.data import load_pairs

    out = Path(out)
    todo = [name for name in MODELS if force or not (out / name / "config.json").is_file()]
    for name in MODELS:
        if name not in todo:
            log(f"{out / name}: kept (holds a model; --force makes it again)")
    if todo:
        pairs = load_pairs("replication-230")
        tokenizer = train_tokenizer(list(pairs.stmt_a) + list(pairs.stmt_b))
        for name in todo:
            target = out / name
            old = None
            if target.exists():  # --force: move the old one aside, put the new one in place, then delete
                old = Path(tempfile.mkdtemp(prefix=f".{name}.old.", dir=out))
                target.replace(old / name)
            shape, seed = MODELS[name]
            save_model(target, tokenizer, shape, seed)
            if old is not None:
                shutil.rmtree(old)
            log(f"{target}: GPT-NeoX, {shape['num_hidden_layers']} layers, d_model {shape['hidden_size']}, "
                f"vocabulary {len(tokenizer)}, seed {seed}")
    return {name: out / name for name in MODELS}


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments and make the models; return the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="models",
                        help="where the model directories go (default: models, from the current directory, "
                             "as sweep-tiny.yaml expects)")
    parser.add_argument("--force", action="store_true", help="make existing model directories again")
    args = parser.parse_args(argv)
    make_models(Path(args.out), force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
