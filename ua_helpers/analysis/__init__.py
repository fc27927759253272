"""What a run computes from an extraction: metrics, correlations, resampling, multiplicity, controls, evidence.

``metrics`` and ``levels`` (pair, category and random-bin level) -> ``stats`` and ``inference`` (bootstrap CIs,
permutations, Holm/BH, Spearman, partial r) -> ``controls``, ``robustness``, ``redundancy`` -> ``evidence`` (the
ladder). Arrays in, arrays and plain dicts out; imports ``inputs`` and the leaves, never ``report`` or ``runs``.

The standard arrays keep one name and shape in every function of the folder (docstrings refer here):

- ``metric_values``: ndarray of shape (n_layers, n_metrics, n_pairs), each metric per layer and pair
  (:func:`ua_helpers.analysis.metrics.compute_all_layers`);
- ``preference``: ndarray of shape (n_pairs,), NLL(B) - NLL(A) (positive: the model prefers statement A);
- ``layers``: sequence of int, length n_layers; ``metric_names``: sequence of str, length n_metrics;
- ``emb_a``, ``emb_b``: ndarray of shape (n_layers, n_pairs, d_model), the pooled hidden states (or the
  representation a control asks for) of each pair's statements A and B.
"""
