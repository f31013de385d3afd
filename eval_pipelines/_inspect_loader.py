"""The one place we reach into Inspect's private task loader.

Inspect has no public "load this task spec into a Task" call; `eval()` does it inside and
exits the process on failure. Loading ourselves lets `prepare` validate every task (and
inspect its sandbox needs) before anything runs. Pinned inspect-ai keeps this stable.
"""

from typing import Any

from inspect_ai import Task
from inspect_ai._eval.loader import load_tasks


def load_task_objects(spec: str, args: dict[str, Any]) -> list[Task]:
    return load_tasks([spec], args)
