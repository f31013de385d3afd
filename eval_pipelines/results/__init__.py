"""Layer 5, published results read back from the Dagster instance: which run published a
partition, resume checkpoints, run provenance, and the IO manager of the result assets.

May import: layers 0-4 (`core` ... `resources`); not `engine`, its sibling.
"""
