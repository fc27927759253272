"""The values the run parameters that name an engine choice can take: a leaf module (it imports nothing).

:mod:`ua_helpers.runs.config` validates parameters against these and the engine modules (``models``, ``batching``,
``extraction``) implement them; both import them from here, so validating a parameter never loads the engine.
"""

#: Model dtypes; ``"auto"`` is float16 on CUDA and float32 elsewhere.
DTYPES = ("auto", "float32", "float16", "bfloat16")
#: What goes before every statement: nothing (the seed), or the tokenizer's BOS (or end-of-text) token.
PREFIXES = ("none", "bos")
#: How a statement's token vectors become one vector: mean over tokens 1..T-1 (the seed), or the last token.
POOLINGS = ("mean", "last")
#: What the geometry is made of: the model's hidden states (the seed), its input embedding table, or a seeded
#: Gaussian vector per token id (model-free). The preference always comes from the model's forward pass.
REPRESENTATIONS = ("hidden-states", "token-embeddings", "random-tokens")
