"""How fast the platform stops work it was told to stop, and notices work that died.

Against a real webserver and daemon on a fresh instance, each trial launches the agentic
suite over GraphQL as the UI does (a scripted model that logs every call; tool calls in
bwrap sandboxes) and, once it is evaluating:

- terminate: GraphQL Terminate (SAFE_TERMINATE, the UI's button), then measures
  Terminate -> last model or tool call (the call log; sandbox processes sampled every
  20 ms) and Terminate -> run CANCELED;
- death: kill -9 of the run worker, then measures death -> run marked FAILURE (the
  daemon's run monitoring asking our launcher's worker health check) and death -> last
  model or tool call.

Targets (issue 6): Terminate -> last call <= 5 s; worker death -> FAILURE <= 15 s.

    .venv/bin/python bench/control.py                 # 5 trials per executor and fault
    .venv/bin/python bench/control.py --trials 3 --executors in_process
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.run_support import (  # noqa: E402
    TERMINATE,
    graphql,
    launch_from_the_ui_api,
    model_calls,
    wait_for,
    wait_for_status,
    write_ledger_model,
)
from tests.sandbox_support import sandbox_processes  # noqa: E402
from tests.services import PROJECT_ROOT, dagster_services, free_port  # noqa: E402

EPOCHS = 200  # far more work than a trial lets run
WARM_CALLS = 20


class ToolActivity:
    """Samples sandbox processes every 20 ms; remembers when one was last seen."""

    def __init__(self):
        self.last_seen = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self):
        while not self._stop.wait(0.02):
            if sandbox_processes():
                self.last_seen = time.time()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def trial(kind: str, executor: str, port: int, instance, ledger: Path) -> dict[str, float]:
    from dagster import DagsterRunStatus

    from eval_pipelines.core.names import WORKER_TAG
    from eval_pipelines.core.processes import ProcessIdentity

    start_calls = len(model_calls(ledger))
    run_id = launch_from_the_ui_api(port, instance, executor, EPOCHS)
    wait_for(lambda: len(model_calls(ledger)) >= start_calls + WARM_CALLS, 300, "model calls")
    wait_for(sandbox_processes, 60, "a tool call", interval=0.02)
    with ToolActivity() as tools:
        if kind == "terminate":
            t0 = time.time()
            graphql(port, TERMINATE, {"runId": run_id, "policy": "SAFE_TERMINATE"})
            expected = DagsterRunStatus.CANCELED
        else:
            worker = ProcessIdentity.from_tag(instance.get_run_by_id(run_id).tags[WORKER_TAG])
            t0 = time.time()
            os.kill(worker.pid, signal.SIGKILL)
            expected = DagsterRunStatus.FAILURE
        run = wait_for_status(instance, run_id, 120)
        ended = time.time()
        wait_for(lambda: not sandbox_processes(), 30, "sandboxes to end")
        time.sleep(3)  # long enough for anything still working to call the model again
    if run.status != expected:
        raise SystemExit(f"{kind} trial: run {run_id} ended {run.status}, expected {expected}")
    last_call = max([t for t in model_calls(ledger) if t > t0] + [tools.last_seen, t0])
    return {"last call": last_call - t0, "run ended": ended - t0}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--executors", default="in_process,multiprocess")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-control-") as folder:
        tmp = Path(folder)
        home = tmp / "home"
        home.mkdir()
        (home / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
        ledger = tmp / "calls.log"
        write_ledger_model(tmp / "models", ledger)
        os.environ.update(DAGSTER_HOME=str(home), EVAL_MODEL_PATH=str(tmp / "models"))
        from dagster import DagsterInstance

        DagsterInstance.get().dispose()  # create the schema before the services race to
        port = free_port()
        services = dagster_services(tmp, port, dict(os.environ))
        results: dict[tuple[str, str], list[dict[str, float]]] = {}
        try:
            services[0].wait_for_http(f"http://127.0.0.1:{port}/server_info", timeout=120)
            with DagsterInstance.get() as instance:
                for executor in args.executors.split(","):
                    for kind in ("terminate", "death"):
                        for number in range(args.trials):
                            measured = trial(kind, executor, port, instance, ledger)
                            print(f"{executor:12} {kind:9} #{number + 1}: {measured}", flush=True)
                            results.setdefault((executor, kind), []).append(measured)
        finally:
            for service in services:
                service.stop()

    print(
        f"\n{platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}; "
        f"{args.trials} trials each; seconds"
    )
    print(f"{'executor':12} {'fault':9} {'measure':10} {'p50':>6} {'p99':>6} {'max':>6}  target")
    targets = {("terminate", "last call"): "<= 5", ("death", "run ended"): "<= 15"}
    for (executor, kind), rows in results.items():
        for measure in ("last call", "run ended"):
            values = [r[measure] for r in rows]
            print(
                f"{executor:12} {kind:9} {measure:10} {statistics.median(values):6.2f} "
                f"{percentile(values, 0.99):6.2f} {max(values):6.2f}  "
                f"{targets.get((kind, measure), '')}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
