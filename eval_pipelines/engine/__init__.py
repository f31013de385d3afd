"""Layer 5, the eval engine boundary: everything that calls Inspect to load tasks, resolve
models, run one task and read its log, and every private Inspect API we use (`_private`).

Importing it loads Inspect: the code location reaches it only from inside an op.
May import: layers 0-4 (`core` ... `resources`); not `results`, its sibling.
"""
