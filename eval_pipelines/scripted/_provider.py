"""The `scripted` Inspect model provider."""

from __future__ import annotations

import asyncio
import os
import time
from pathlib import Path
from typing import Any

from inspect_ai.model import (
    ChatMessage,
    GenerateConfig,
    ModelAPI,
    ModelOutput,
    ModelUsage,
    modelapi,
)
from inspect_ai.tool import ToolChoice, ToolInfo

from eval_pipelines.scripted._conversation import Conversation
from eval_pipelines.scripted._policies import POLICIES

CHARS_PER_TOKEN = 4
# How long a process waits for the others of a rendezvous before going on alone.
RENDEZVOUS_TIMEOUT_S = 300.0


def _tokens(text: str) -> int:
    return max(1, len(text) // CHARS_PER_TOKEN)


@modelapi(name="scripted")
class ScriptedModelAPI(ModelAPI):
    """Deterministic model whose answers come from a named policy (`scripted/<policy>`)."""

    def __init__(
        self,
        model_name: str,
        base_url: str | None = None,
        api_key: str | None = None,
        config: GenerateConfig = GenerateConfig(),  # noqa: B008 (Inspect's ModelAPI signature)
        call_log: str | None = None,
        latency_seconds: float = 0.0,
        rendezvous_processes: int = 1,
        **model_args: Any,
    ) -> None:
        super().__init__(model_name, base_url, api_key, [], config)
        # Optional audit trail: one line per generate() call (wall time, policy), so tests
        # and demos can check that no model call happens after a run was stopped.
        self._call_log = Path(call_log) if call_log else None
        # Optional simulated API latency: a run long enough to stop, watch or resume.
        self._latency = float(latency_seconds)
        # Optional rendezvous on the call log: each process's first call waits until this
        # many processes have called, so a test can have work in flight in several op
        # processes at once, however late a loaded host starts one of them.
        self._rendezvous = int(rendezvous_processes)
        if self._rendezvous > 1 and self._call_log is None:
            raise ValueError("rendezvous_processes needs a call_log to meet on")
        if model_name not in POLICIES:
            raise ValueError(
                f"unknown scripted model {model_name!r}; known: {', '.join(sorted(POLICIES))}"
            )
        self._policy = POLICIES[model_name]

    async def generate(
        self,
        input: list[ChatMessage],
        tools: list[ToolInfo],
        tool_choice: ToolChoice,
        config: GenerateConfig,
    ) -> ModelOutput:
        if self._call_log is not None:
            with self._call_log.open("a") as ledger:
                ledger.write(f"{time.time():.6f} {self.model_name} generate {os.getpid()}\n")
            if self._rendezvous > 1:
                await self._meet()
        if self._latency:
            await asyncio.sleep(self._latency)
        turn = self._policy(Conversation(messages=input, tools=tools))
        if turn.tool is not None:
            output = ModelOutput.for_tool_call(
                model=self.model_name,
                tool_name=turn.tool,
                tool_arguments=turn.arguments,
                content=turn.content,
            )
        else:
            output = ModelOutput.from_content(model=self.model_name, content=turn.content)
        input_tokens = sum(_tokens(m.text) for m in input)
        output_tokens = _tokens(turn.content + str(turn.arguments))
        output.usage = ModelUsage(
            input_tokens=input_tokens,
            output_tokens=output_tokens,
            total_tokens=input_tokens + output_tokens,
        )
        return output

    async def _meet(self) -> None:
        """Wait (once per process) until `rendezvous_processes` processes have called."""
        if os.getpid() in _MET:
            return
        deadline = time.monotonic() + RENDEZVOUS_TIMEOUT_S
        while time.monotonic() < deadline:
            lines = self._call_log.read_text().splitlines()
            if len({line.split()[-1] for line in lines if line}) >= self._rendezvous:
                break
            await asyncio.sleep(0.1)
        _MET.add(os.getpid())


# Processes whose rendezvous is over (the first call waits, the others do not).
_MET: set[int] = set()
