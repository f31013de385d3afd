"""Layer 10, asset definitions only: the evaluation results (a graph of the evaluation ops),
their checks, incidents, the leaderboard and the analytics.

May import: `eval_pipelines` layers 0-9 (up to `eval_pipelines.jobs`) and `resources`; the
sensors and the code location import this package, nothing below them does.
"""
