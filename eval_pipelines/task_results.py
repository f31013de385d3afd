"""Legacy path of a task's result types, kept so outputs pickled by earlier runs load.

New code imports `eval_pipelines.core.task_results`. Nothing of the project imports this module.
"""

from eval_pipelines.core.task_results import SampleRow, TaskScore

__all__ = ["SampleRow", "TaskScore"]
