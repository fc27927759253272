"""What a run reads: pair sets, published reference numbers, models and their caches, and the extraction.

``data.load_pairs`` -> ``models.load_model`` -> ``extraction.extract`` (per statement: NLL, token count, pooled
hidden states of every layer). ``seedcheck`` re-runs the seed's own functions on a sample. Imports only the
package's leaves (``_io``, ``_checks``, ``options``).
"""
