"""How runs are made: the configuration, the run folder (lock, staging, manifest), sweeps and cross-run tables.

``config.RunConfig`` -> ``rundir.execute`` (the six notebooks through papermill into a locked, staged folder) ->
``sweep`` (many runs from one file) -> ``crossrun`` and ``choices`` (what holds across runs). Imports ``report``
and below; ``book`` and ``cli`` sit above it.
"""
