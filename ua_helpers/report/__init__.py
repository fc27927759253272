"""How a run is told: the typed, schema-checked ``results.json``, sentences, tables, figures, number formats.

``results`` builds, validates and reads ``results.json`` (``results.schema.json``); ``findings``, ``tables``,
``plots``, ``levels_tables``, ``describe`` and ``show`` turn it into words, tables and figures. Imports
``analysis`` and ``inputs``, never ``runs`` or ``book``.
"""
