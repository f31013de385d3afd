"""Layer 4, published results read back from the Dagster instance: which run published a
partition, resume checkpoints, run provenance, and the IO manager of the result assets.

May import: layers 0-3 (`core`, `catalog`, `execution`, `sandbox`, `resources`).
"""
