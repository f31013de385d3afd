"""A read-only view of the conversation a scripted model is asked to continue."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from inspect_ai.model import ChatMessage, ChatMessageAssistant, ChatMessageTool, ChatMessageUser
from inspect_ai.tool import ToolInfo

SUBMIT_TOOL = "submit"


@dataclass(frozen=True)
class Conversation:
    messages: list[ChatMessage]
    tools: list[ToolInfo]

    @cached_property
    def prompt(self) -> str:
        """Text of the first user message: what the sample asked."""
        for message in self.messages:
            if isinstance(message, ChatMessageUser):
                return message.text.strip()
        return ""

    @property
    def turns_taken(self) -> int:
        return sum(isinstance(m, ChatMessageAssistant) for m in self.messages)

    @property
    def last_tool_output(self) -> str | None:
        for message in reversed(self.messages):
            if isinstance(message, ChatMessageTool):
                return message.text.strip()
        return None

    def has_tool(self, name: str) -> bool:
        return any(t.name == name for t in self.tools)
