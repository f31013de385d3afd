"""Layer 7, the evaluation: its Launchpad config and plan types, and the ops prepare -> run each
task -> publish; the Inspect work they do (`inspect_work`) loads only inside the op.

May import: layers 0-6 (`core` ... `safety`).
"""
