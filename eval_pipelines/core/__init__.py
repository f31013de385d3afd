"""Layer 0, names and small utilities: every run tag, asset key and job name; the local
state folder; partitions; versions; process identities; log-viewer links; text rendering;
plain result and event types; the observation <-> record replay.

May import: nothing of this project (only the standard library, dagster and pydantic).
"""
