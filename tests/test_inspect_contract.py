"""The private Inspect APIs we rely on, pinned: an Inspect upgrade that moves or changes one
fails here, by name, instead of somewhere deep in an evaluation or, worse, silently.

Where used: `TerminateSampleError` and `sample_active()` by the safety monitor
(eval_pipelines/safety/monitor.py); `PreviousTask`, `init_display_type` and eval's
`ctl_server` parameter by the Inspect bridge (eval_pipelines/engine/bridge.py); `load_tasks`
by eval_pipelines/engine/_private.py. On an upgrade: re-check each, then bump CHECKED_WITH.
"""

import asyncio
import dataclasses
import inspect

import inspect_ai
from inspect_ai import Task, eval_async
from inspect_ai._eval.loader import load_tasks
from inspect_ai._eval.task.task import PreviousTask
from inspect_ai._eval.task.util import task_run_dir
from inspect_ai._util.exception import TerminateSampleError
from inspect_ai.dataset import Sample
from inspect_ai.log._samples import sample_active
from inspect_ai.solver import Generate, TaskState, solver
from inspect_ai.util._display import display_type, init_display_type

CHECKED_WITH = "0.3.285"


def test_the_installed_inspect_is_the_one_these_contracts_were_checked_against():
    assert inspect_ai.__version__ == CHECKED_WITH, (
        f"inspect-ai {inspect_ai.__version__} is installed; the private APIs this file pins "
        f"were checked against {CHECKED_WITH}: re-check them, then bump CHECKED_WITH"
    )


def test_eval_takes_the_arguments_the_bridge_passes():
    parameters = inspect.signature(eval_async).parameters
    for name in ("ctl_server", "approval", "review", "fail_on_error", "working_limit"):
        assert name in parameters, f"eval_async() lost its {name!r} parameter"


def test_previous_task_has_the_fields_a_resume_sets():
    fields = {f.name for f in dataclasses.fields(PreviousTask)}
    assert fields == {
        "id",
        "task",
        "task_args",
        "model",
        "model_roles",
        "sandbox",
        "log",
        "log_info",
    }


def test_init_display_type_silences_inspect_in_a_worker_thread():
    init_display_type("none")
    assert display_type() == "none"


def test_load_tasks_takes_specs_and_args():
    assert list(inspect.signature(load_tasks).parameters) == ["task_specs", "task_args"]


def test_a_loaded_task_knows_the_folder_its_docker_sandbox_resolves_in(tmp_path):
    (tmp_path / "t.py").write_text(
        "from inspect_ai import Task, task\nfrom inspect_ai.dataset import Sample\n"
        "@task\ndef t():\n    return Task(dataset=[Sample(input='hi')])\n"
    )
    [task] = load_tasks([f"{tmp_path / 't.py'}@t"], {})
    assert task_run_dir(task) == str(tmp_path.resolve())


def test_a_sample_knows_itself_and_terminate_ends_it_with_our_reason(tmp_path):
    """What the monitor does inside a sample: ask which sample runs, then end it."""
    seen = {}

    @solver
    def stop_here():
        async def solve(state: TaskState, generate: Generate) -> TaskState:
            active = sample_active()
            seen.update(id=active.sample.id, epoch=active.epoch, uuid=active.sample_uuid)
            raise TerminateSampleError("safety: contract-rule: stopped")

        return solve

    assert sample_active() is None  # outside any sample
    init_display_type("none")
    task = Task(dataset=[Sample(input="hi", target="x", id="s1")], solver=stop_here())

    [log] = asyncio.run(
        eval_async(task, model="scripted/reference", log_dir=str(tmp_path), ctl_server=False)
    )
    [sample] = log.samples
    assert seen == {"id": "s1", "epoch": 1, "uuid": sample.uuid}
    assert sample.limit is not None and sample.limit.type == "operator"
    stop = [e for e in sample.events if e.event == "sample_limit"][-1]
    assert stop.message == "safety: contract-rule: stopped"
