"""What a run computes from an extraction: metrics, correlations, resampling, multiplicity, controls, evidence.

``metrics`` and ``levels`` (pair, category and random-bin level) -> ``stats`` and ``inference`` (bootstrap CIs,
permutations, Holm/BH, Spearman, partial r) -> ``controls``, ``robustness``, ``redundancy`` -> ``evidence`` (the
ladder). Arrays in, arrays and plain dicts out; imports ``inputs`` and the leaves, never ``report`` or ``runs``.
"""
