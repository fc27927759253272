"""Tiny random GPT-NeoX models (Pythia's architecture) with tokenizers trained on the fly, for tests.

Saved with ``save_pretrained`` and loaded through :func:`ua_helpers.inputs.models.load_model`, the same
``from_pretrained`` path a hub model takes.
"""
from __future__ import annotations

from pathlib import Path

#: The tiny model's shape: Pythia's architecture at toy size.
TINY = {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "intermediate_size": 128}
TINY_SEED = 1234


def build_tiny_tokenizer(corpus: list[str]):
    """Train a byte-level BPE tokenizer (as GPT-NeoX's) on ``corpus``; return a ``PreTrainedTokenizerFast``."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(corpus, trainer=trainer)
    # As Pythia's tokenizer: no BOS is added and there is no pad token (extraction pads with id 0).
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                   unk_token="<|endoftext|>")


def save_tiny_model(target: Path, tokenizer, shape: dict = TINY, seed: int = TINY_SEED) -> Path:
    """Save a random GPT-NeoX model of ``shape`` (weights from ``seed``) and ``tokenizer`` with save_pretrained."""
    import torch
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    config = GPTNeoXConfig(
        vocab_size=len(tokenizer), max_position_embeddings=512, rotary_pct=0.25, use_parallel_residual=True,
        initializer_range=0.1, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        tie_word_embeddings=False, **shape,
    )
    torch.manual_seed(seed)
    GPTNeoXForCausalLM(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def build_tiny_model_dir(target: Path, corpus: list[str]) -> Path:
    """Train a tokenizer on ``corpus`` and save the default tiny model with it to ``target``."""
    return save_tiny_model(target, build_tiny_tokenizer(corpus))


def stub_gguf(tmp_path: Path, monkeypatch, model_dir: Path) -> Path:
    """A stand-in GGUF file in ``tmp_path`` whose conversion (into ``$UA_CACHE_DIR``) copies ``model_dir``.

    ``models._convert_gguf`` is replaced for the test, so the GGUF path of :mod:`ua_helpers.inputs.models` (conversion
    cache, completion record, verification) runs on the tiny model in well under a second.
    """
    import shutil

    from ua_helpers.inputs import models

    gguf = tmp_path / "tiny.gguf"
    gguf.write_bytes(b"GGUF" + bytes(60))

    def convert(source, name, out):
        for path in model_dir.iterdir():
            if path.is_file():
                shutil.copyfile(path, out / path.name)  # a new modification time, as a real conversion
        return {"gguf": str(source)}

    monkeypatch.setattr(models, "_convert_gguf", convert)
    return gguf
