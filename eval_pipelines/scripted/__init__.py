"""Deterministic, offline model providers for tests, demos and red-teaming.

Use them with Inspect model strings `scripted/<policy>`: `scripted/reference`,
`scripted/weak`, `scripted/red-team`. They never touch the network, fill in `usage` (so
nothing needs tiktoken's download), and answer the same way every time.

Layer 3. May import: `core`, `catalog`, `tasks` (the answer key of the shipped tasks).
"""

from eval_pipelines.scripted._policies import POLICIES, Policy, policy
from eval_pipelines.scripted._provider import ScriptedModelAPI

__all__ = ["POLICIES", "Policy", "ScriptedModelAPI", "policy"]
