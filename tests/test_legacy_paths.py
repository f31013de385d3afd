"""Old module paths that stored data names still resolve after the layering move.

Step outputs are pickled by Dagster's IO manager (re-executing a run from failure loads
them), and an instance's `dagster.yaml` names the run launcher by module: both outlive
the code that wrote them.
"""

import pickle
import subprocess
import sys

from eval_pipelines.core.task_results import SampleRow, TaskScore
from eval_pipelines.evaluation.plan import TaskRunResult
from tests.conftest import PROJECT_ROOT

# Where each type lived when earlier runs pickled it -> where it lives now.
MOVED = {
    b"eval_pipelines.ops\nTaskRunResult": b"eval_pipelines.evaluation.plan\nTaskRunResult",
    b"eval_pipelines.inspect_bridge\nSampleRow": b"eval_pipelines.core.task_results\nSampleRow",
    b"eval_pipelines.task_results\nTaskScore": b"eval_pipelines.core.task_results\nTaskScore",
}


def _result() -> TaskRunResult:
    row = SampleRow(task="t", sample_id="1", epoch=1, score=1.0, input_tokens=1,
                    output_tokens=1, total_tokens=2, total_time=0.1, working_time=0.1, error=None,
                    limit=None)  # fmt: skip
    score = TaskScore(task="t", mean=1.0, stderr=0.0, ci95_low=1.0, ci95_high=1.0, n=1, errors=0)
    return TaskRunResult(task="t", log_uri="file:///x.eval", inspect_status="success",
                         rows=[row], score=score)  # fmt: skip


def test_step_outputs_pickled_under_the_old_paths_load():
    # Protocol 0 names each class as "module\nname": rewritten to the paths of before the move.
    data = pickle.dumps(_result(), protocol=0)
    for old, new in MOVED.items():
        assert new in data
        data = data.replace(new, old)
    assert b"eval_pipelines.evaluation.plan" not in data

    assert pickle.loads(data) == _result()


def test_an_instance_config_naming_the_old_launcher_path_loads():
    """In a fresh interpreter: `module: eval_pipelines.launcher` as older dagster.yaml has it."""
    code = (
        "from dagster._serdes.config_class import ConfigurableClassData\n"
        "data = ConfigurableClassData('eval_pipelines.launcher', 'EvalRunLauncher', '{}')\n"
        "print(type(data.rehydrate(object)).__module__)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True,
                            text=True, timeout=120)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "eval_pipelines.execution.launcher"
