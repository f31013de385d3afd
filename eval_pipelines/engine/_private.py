"""Every private Inspect API the platform uses, and the only module that imports them.

Each has no public equivalent (see why beside it); tests/test_inspect_contract.py pins their
behaviour against the inspect-ai version in the lock file, so an upgrade that changes one
fails there, not in a run.
"""

from typing import Any

from inspect_ai import Task
from inspect_ai._eval.loader import load_tasks

# Resume a task from an unfinished log: Inspect's own retry mechanism has no public form.
from inspect_ai._eval.task.task import PreviousTask

# The folder a task was loaded from, where Inspect looks for its compose file or Dockerfile.
from inspect_ai._eval.task.util import task_run_dir

# End a sample with an exact reason from tool or sandbox code (a public LimitExceededError
# raised in a tool only becomes a tool error).
from inspect_ai._util.exception import TerminateSampleError

# The sample a hook or approver runs in, to stop it from outside its own call.
from inspect_ai.log._samples import sample_active

# eval_async() has no `display` argument; a worker thread would default to plain output.
from inspect_ai.util._display import init_display_type

__all__ = [
    "PreviousTask",
    "TerminateSampleError",
    "init_display_type",
    "load_task_objects",
    "sample_active",
    "task_run_dir",
]


def load_task_objects(spec: str, args: dict[str, Any]) -> list[Task]:
    """Load a task spec into `Task`s: Inspect has no public call for it (`eval()` does it
    inside and exits the process on failure), and `prepare` must validate every task and
    its sandbox needs before anything runs."""
    return load_tasks([spec], args)
