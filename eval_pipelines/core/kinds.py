"""The vocabulary of incidents, with no imports of ours: specs and the policy use it while
`resources` (which the incident record needs) is still being imported."""

from typing import Literal

Severity = Literal["info", "warning", "critical"]
Action = Literal["record", "block_call", "stop_sample", "stop_evaluation"]
IncidentKind = Literal["policy", "operator_stop", "capability_threshold"]
