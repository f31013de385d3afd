"""The suite's own scheduling holds with the locked pytest and pytest-xdist.

`make test` runs the service tests one at a time within each `xdist_group` (conftest.py):
more daemons at once on 2 cores starve each other's runs past their deadlines. pytest 9.2
made xdist's `--dist loadgroup` ignore the groups without a word (pytest-xdist#1386), and
the suite ran that way unnoticed: this runs both ways a group is given here, a module's
`pytestmark` and a marker added by a `tryfirst` collection hook, in a real xdist session.
"""

import subprocess
import sys
from collections import Counter
from pathlib import Path

CONFTEST = """
import pytest

@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    for item in items:
        if item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.xdist_group("services"))
"""

TESTS = """
import os
import time
import pytest

{mark}

def record(name):
    with open(os.environ["WORKERS_LOG"], "a") as log:
        log.write(f"{{name}} {{os.environ['PYTEST_XDIST_WORKER']}}\\n")

@pytest.mark.parametrize("i", range(4))
def test_it(i):
    time.sleep(0.2)  # long enough that the other worker is free to take the next one
    record("{name}")
"""


def test_each_xdist_group_runs_in_one_worker(tmp_path: Path):
    (tmp_path / "conftest.py").write_text(CONFTEST)
    modules = {
        "by_pytestmark": 'pytestmark = pytest.mark.xdist_group("run-faults")',
        "by_hook": "pytestmark = pytest.mark.slow",
        "ungrouped": "",
    }
    for name, mark in modules.items():
        (tmp_path / f"test_{name}.py").write_text(TESTS.format(mark=mark, name=name))
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    slow: a service test\n")
    workers_log = tmp_path / "workers.log"

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-n",
            "2",
            "--dist",
            "loadgroup",
            "-q",
            "-p",
            "no:cacheprovider",
        ],
        cwd=tmp_path,
        env={"WORKERS_LOG": str(workers_log), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    ran = Counter(tuple(line.split()) for line in workers_log.read_text().splitlines())
    workers = {name: {w for (module, w) in ran if module == name} for name in modules}
    assert sum(ran.values()) == 12
    assert len(workers["by_pytestmark"]) == 1, f"the pytestmark group was split: {ran}"
    assert len(workers["by_hook"]) == 1, f"the hook's group was split: {ran}"
