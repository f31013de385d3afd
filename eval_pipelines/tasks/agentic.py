"""Agentic smoke tasks: the model must use bash/python tools, which run in a sandbox.

Each sample carries a `solution` (the tool calls that solve it) in its metadata; the
scripted `reference` model follows it, so these tasks double as an end-to-end check that
tool calls really execute in the sandbox and their output reaches the scorer.
"""

import hashlib

from inspect_ai import Task, task
from inspect_ai.agent import react
from inspect_ai.dataset import MemoryDataset, Sample
from inspect_ai.scorer import match
from inspect_ai.tool import bash, python

TOOL_TIMEOUT_SECONDS = 30

_DATA = "".join(f"record {i:04d}: value={i * 7919 % 1009}\n" for i in range(200))
_LOG = "".join(
    f"2026-11-01T00:{i // 60:02d}:{i % 60:02d} {'ERROR' if i % 7 == 3 else 'INFO'} event {i}\n"
    for i in range(300)
)


def agentic_dataset() -> MemoryDataset:
    return MemoryDataset(
        name="agentic_smoke",
        samples=[
            Sample(
                id="checksum",
                input="Compute the SHA-256 hex digest of the file data.txt in your working "
                "directory. Submit only the hex digest.",
                target=hashlib.sha256(_DATA.encode()).hexdigest(),
                files={"data.txt": _DATA},
                metadata={
                    "solution": [{"tool": "bash", "command": "sha256sum data.txt | cut -d' ' -f1"}]
                },
            ),
            Sample(
                id="count-errors",
                input="How many lines of app.log contain the word ERROR? Submit only the number.",
                target=str(sum("ERROR" in line for line in _LOG.splitlines())),
                files={"app.log": _LOG},
                metadata={"solution": [{"tool": "bash", "command": "grep -c ERROR app.log"}]},
            ),
            Sample(
                id="sum-of-squares",
                input="Use Python to compute the sum of the squares of the integers from 1 to "
                "100. Submit only the number.",
                target=str(sum(i * i for i in range(1, 101))),
                metadata={
                    "solution": [
                        {"tool": "python", "code": "print(sum(i*i for i in range(1, 101)))"}
                    ]
                },
            ),
        ],
    )


@task
def agentic_smoke() -> Task:
    """A ReAct agent with bash and python tools; needs an isolated sandbox."""
    return Task(
        dataset=agentic_dataset(),
        solver=react(
            tools=[bash(timeout=TOOL_TIMEOUT_SECONDS), python(timeout=TOOL_TIMEOUT_SECONDS)]
        ),
        scorer=match(),
    )
