"""The project's Python must not have CPython's AST recursion-depth race (gh-106905).

On 3.11.7 that race made pytest abort with INTERNALERROR ("AST constructor recursion depth
mismatch") while formatting an error on a loaded machine, and the rest of the suite never
ran. This provokes it on purpose: threads parse while a finalizer releases the GIL during
garbage collection. 3.11.7 fails within seconds; 3.13 (the pinned version) does not.
"""

import subprocess
import sys

PROVOKE = r"""
import ast, gc, sys, threading, time

SRC = "\n".join(
    f"def f{i}(a, b):\n    return [(x, {{y: z for y, z in zip(a, b)}}) for x in range({i})]"
    for i in range(30)
)
errors, stop = [], time.time() + float(sys.argv[1])


class Churn:
    def __init__(self):
        self.me = self  # a cycle: freed by the collector, which runs __del__

    def __del__(self):
        time.sleep(0)  # releases the GIL in the middle of another thread's ast.parse


def parse():
    while time.time() < stop and not errors:
        try:
            ast.parse(SRC)
        except SystemError as exc:
            errors.append(str(exc))


def litter():
    while time.time() < stop and not errors:
        Churn()
        time.sleep(0.0005)


gc.set_threshold(200, 5, 5)
threads = [threading.Thread(target=parse) for _ in range(3)]
threads += [threading.Thread(target=litter) for _ in range(2)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(errors[0] if errors else "ok")
"""


def test_ast_construction_is_thread_safe():
    result = subprocess.run(
        [sys.executable, "-c", PROVOKE, "8"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok", (
        f"Python {sys.version.split()[0]} has the AST recursion-depth race: {result.stdout}"
    )
