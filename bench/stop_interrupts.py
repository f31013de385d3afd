"""How often a second interrupt cuts a stop's cleanup short: two SIGINTs at random offsets.

A stop often arrives twice (Dagster's signal and the watch's status poll). This repeats
`run_until_stopped` on a stand-in eval that takes `--cleanup` seconds to clean up, sends
SIGINT once it has started and again after a random 0-0.7 s, and counts the stops that
raised before the cleanup finished. Run it with other work on the cores (e.g. two
`while :; do :; done`), where the race shows:

    .venv/bin/python bench/stop_interrupts.py --stops 200
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from dagster import DagsterInstance  # noqa: E402

from eval_pipelines.execution.stopping import RunWatch, run_until_stopped  # noqa: E402
from tests.run_support import Work, started_run  # noqa: E402


class Interrupt(BaseException):
    pass


def raise_interrupt(signum, frame):
    raise Interrupt()


def one_stop(instance: DagsterInstance, cleanup_seconds: float) -> bool:
    """True if the cleanup had finished when the interrupt came out of run_until_stopped."""
    run = started_run(instance)
    work = Work(cleanup_seconds)
    both_sent = threading.Event()

    def interrupt_twice():
        work.started.wait(30)
        time.sleep(random.uniform(0, 0.01))
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(random.uniform(0, 0.7))
        os.kill(os.getpid(), signal.SIGINT)
        both_sent.set()

    threading.Thread(target=interrupt_twice, daemon=True).start()
    finished = False
    try:
        with RunWatch(instance, run.run_id, poll_seconds=0.1) as watch:
            run_until_stopped(work, watch)
    except Interrupt:
        finished = work.cleaned_up.is_set()
    for _ in range(3):  # the second signal may still be on its way
        try:
            both_sent.wait(5)
            time.sleep(0.05)
            break
        except Interrupt:
            pass
    return finished


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stops", type=int, default=100)
    parser.add_argument("--cleanup", type=float, default=0.8, help="seconds the cleanup takes")
    args = parser.parse_args()
    signal.signal(signal.SIGINT, raise_interrupt)
    instance = DagsterInstance.ephemeral()
    cut_short = sum(not one_stop(instance, args.cleanup) for _ in range(args.stops))
    print(f"cleanups cut short: {cut_short} of {args.stops} stops (load {os.getloadavg()[0]:.1f})")


if __name__ == "__main__":
    main()
