"""Legacy path of the evaluation's step outputs, kept so outputs pickled by earlier runs load.

New code imports `eval_pipelines.evaluation.plan`. Nothing of the project imports this module.
"""

from eval_pipelines.evaluation.plan import PreparedEvaluation, TaskPlan, TaskRunResult

__all__ = ["PreparedEvaluation", "TaskPlan", "TaskRunResult"]
