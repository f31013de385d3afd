"""Legacy path of the run launcher: the `dagster.yaml` of an existing instance names
`eval_pipelines.launcher`. New config names `eval_pipelines.execution.launcher`.
"""

from eval_pipelines.execution.launcher import EvalRunLauncher

__all__ = ["EvalRunLauncher"]
