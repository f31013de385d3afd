"""Safety policy: the rules the monitor applies to every evaluation.

The platform ships a baseline (`catalog/safety/baseline.yaml`) that applies to every suite.
A suite's `safety:` block can only tighten it, the way `SandboxMaxima` bounds sandbox specs:
add rules, or name a baseline rule by id to raise its severity, escalate its action, lower
its counter threshold or set `quarantine`; never remove a rule, change what it matches or
weaken it. A rule that would loosen the baseline is refused with its id and the reason.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from eval_pipelines.catalog.spec_files import Spec, load_yaml_spec
from eval_pipelines.core.events import SandboxEvent, SandboxEventKind
from eval_pipelines.core.kinds import Action, Severity

BASELINE_PATH = Path(__file__).resolve().parent / "safety" / "baseline.yaml"

Watch = Literal["tool_call", "tool_output", "model_output", "sandbox_event"]
Counter = Literal["memory_bytes", "pids", "cpu_seconds"]
# Where a task's tools run: `bwrap` has no network at all; a `container` sample has its
# services on a private network (and nothing beyond it).
SandboxKind = Literal["bwrap", "container"]
# Weakest first: a suite may only move a baseline rule to the right.
SEVERITIES: tuple[Severity, ...] = ("info", "warning", "critical")
ACTIONS: tuple[Action, ...] = ("record", "block_call", "stop_sample", "stop_evaluation")
RULE_ID_PATTERN = r"^[a-z0-9][a-z0-9._-]{0,62}$"


class RuleMatch(Spec):
    """What a rule matches; every field given must match (an empty match matches all).

    - `tools`: tool names (tool_call, tool_output);
    - `regex`: searched in the call's arguments, the tool's output, the model's output text,
      or a sandbox event's details as JSON;
    - `event`: the sandbox event kind (sandbox_event);
    - `counter` + `threshold`: a counter of the event's details at or above the threshold;
    - `sandboxes`: the kinds of sandbox the task's tools run in (`bwrap`, `container`).
    """

    tools: tuple[str, ...] = ()
    sandboxes: tuple[SandboxKind, ...] = ()
    regex: str | None = None
    event: SandboxEventKind | None = None
    counter: Counter | None = None
    threshold: float | None = Field(default=None, gt=0)

    @field_validator("regex")
    @classmethod
    def _compiles(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"regex {value!r} does not compile: {exc}") from exc
        return value

    @model_validator(mode="after")
    def _counter_has_threshold(self) -> RuleMatch:
        if (self.counter is None) != (self.threshold is None):
            raise ValueError("`counter` and `threshold` go together")
        return self

    def without_threshold(self) -> dict[str, Any]:
        return self.model_dump(exclude={"threshold"})


class SafetyRule(Spec):
    """One rule: what it watches and matches, how bad a hit is, and what happens then."""

    id: str = Field(pattern=RULE_ID_PATTERN)
    description: str = ""
    severity: Severity
    watch: Watch
    match: RuleMatch = RuleMatch()
    action: Action = "record"
    quarantine: bool = Field(
        default=False, description="A hit also quarantines the run's logs and the model."
    )

    @model_validator(mode="after")
    def _consistent(self) -> SafetyRule:
        where = f"rule {self.id!r}"
        m = self.match
        if self.action == "block_call" and self.watch != "tool_call":
            raise ValueError(
                f"{where}: block_call needs watch tool_call (other events already ran)"
            )
        if self.watch == "sandbox_event":
            if m.event is None:
                raise ValueError(f"{where}: a sandbox_event rule names its `match.event` kind")
            if m.tools:
                raise ValueError(f"{where}: `match.tools` does not apply to sandbox events")
        else:
            if m.event is not None or m.counter is not None:
                raise ValueError(
                    f"{where}: `match.event` and `match.counter` apply to sandbox_event rules only"
                )
            if self.watch == "model_output" and m.tools:
                raise ValueError(f"{where}: `match.tools` does not apply to model output")
        return self

    def matches_text(self, tool: str | None, text: str, sandbox: str | None = None) -> bool:
        """A tool call, tool output or model output hit (`tool` is None for model output),
        in a task whose tools run in `sandbox` (a `SandboxKind`, None: no sandbox)."""
        if self.match.tools and tool not in self.match.tools:
            return False
        if self.match.sandboxes and sandbox not in self.match.sandboxes:
            return False
        return self.match.regex is None or re.search(self.match.regex, text) is not None

    def matches_event(self, event: SandboxEvent) -> bool:
        m = self.match
        if event.kind != m.event:
            return False
        if m.counter is not None:
            value = event.details.get(m.counter)
            if not isinstance(value, int | float) or value < (m.threshold or 0):
                return False
        return m.regex is None or re.search(m.regex, json.dumps(event.details)) is not None


class SafetyPolicy(Spec):
    """A set of rules with unique ids (the baseline, or a suite's tightened copy)."""

    rules: tuple[SafetyRule, ...] = ()

    @field_validator("rules")
    @classmethod
    def _unique_ids(cls, rules: tuple[SafetyRule, ...]) -> tuple[SafetyRule, ...]:
        ids = [r.id for r in rules]
        repeated = sorted({i for i in ids if ids.count(i) > 1})
        if repeated:
            raise ValueError(f"rule ids must be unique; repeated: {', '.join(repeated)}")
        return rules

    def watching(self, watch: Watch) -> list[SafetyRule]:
        return [r for r in self.rules if r.watch == watch]


class RuleOverride(Spec):
    """A suite's entry: a new rule (all fields), or a baseline rule's id plus what tightens."""

    id: str = Field(pattern=RULE_ID_PATTERN)
    description: str | None = None
    severity: Severity | None = None
    watch: Watch | None = None
    match: RuleMatch | None = None
    action: Action | None = None
    quarantine: bool | None = None


def _loosening(base: SafetyRule, rule: SafetyRule) -> list[str]:
    """How `rule` would weaken `base` (empty when it only tightens)."""
    problems = []
    if rule.watch != base.watch:
        problems.append(f"changes watch {base.watch} to {rule.watch}")
    if rule.match.without_threshold() != base.match.without_threshold():
        problems.append("changes what the baseline rule matches (only a lower threshold may)")
    elif (rule.match.threshold or 0) > (base.match.threshold or 0):
        problems.append(f"raises the threshold {base.match.threshold} to {rule.match.threshold}")
    if SEVERITIES.index(rule.severity) < SEVERITIES.index(base.severity):
        problems.append(f"lowers severity {base.severity} to {rule.severity}")
    if ACTIONS.index(rule.action) < ACTIONS.index(base.action):
        problems.append(f"weakens action {base.action} to {rule.action}")
    if base.quarantine and not rule.quarantine:
        problems.append("turns quarantine off")
    return problems


def tighten(baseline: SafetyPolicy, entries: list[RuleOverride]) -> SafetyPolicy:
    """The baseline with a suite's entries applied; `ValueError` names a loosening rule."""
    rules = {r.id: r for r in baseline.rules}
    for entry in entries:
        given = entry.model_dump(exclude_none=True, exclude_unset=True)
        base = rules.get(entry.id)
        if base is None:
            missing = [f for f in ("severity", "watch") if f not in given]
            if missing:
                raise ValueError(
                    f"rule {entry.id!r}: a new rule needs {' and '.join(missing)} "
                    "(it is not a baseline rule to tighten)"
                )
            rules[entry.id] = SafetyRule.model_validate(given)
            continue
        rule = SafetyRule.model_validate({**base.model_dump(), **given})
        problems = _loosening(base, rule)
        if problems:
            raise ValueError(
                f"rule {entry.id!r} may only tighten the baseline rule: {'; '.join(problems)}"
            )
        rules[entry.id] = rule
    return SafetyPolicy(rules=tuple(rules.values()))


@cache
def baseline_policy() -> SafetyPolicy:
    """The platform baseline; a broken file fails every suite that loads (fail closed)."""
    return load_yaml_spec(BASELINE_PATH, SafetyPolicy)


class SuiteSafety(Spec):
    """A suite's `safety:` block: new rules, and baseline rules (by id) made stricter."""

    rules: tuple[RuleOverride, ...] = ()

    @model_validator(mode="after")
    def _only_tightens(self) -> SuiteSafety:
        self.policy()
        return self

    def policy(self) -> SafetyPolicy:
        """The policy this suite runs under: the baseline, tightened by these rules."""
        return tighten(baseline_policy(), list(self.rules))
