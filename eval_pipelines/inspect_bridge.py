"""Legacy path of a task's result types (they were defined here first), kept so outputs pickled
by earlier runs load without importing Inspect.

New code imports `eval_pipelines.core.task_results`. Nothing of the project imports this module.
"""

from eval_pipelines.core.task_results import SampleRow, TaskScore

__all__ = ["SampleRow", "TaskScore"]
