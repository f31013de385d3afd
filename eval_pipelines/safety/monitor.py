"""The safety monitor in the op process: judges every tool call, tool output, model output
and sandbox event of one Inspect evaluation against the suite's policy, and acts at once.

Where it hooks (inspect-ai 0.3.285):
- tool calls, before they run: an approver (`eval(approval=...)`);
- tool output, before the model sees it: a reviewer (`eval(review=...)`);
- model output: `inspect_ai.hooks` (`on_before_model_generate` sees each earlier output
  before the model is called again; `on_sample_end` sees the final one);
- sandbox events: the process-global bus, published from the tool call's coroutine.
The monitor of the running eval is found through a context variable set around
`eval_async`, so hooks and bus (both process-global) reach only their own evaluation.

Actions: `record`; `block_call` (the model gets the rule's reason as the tool's error);
`stop_sample` (`TerminateSampleError` with the rule id as the sample's recorded reason);
`stop_evaluation` (this process's eval is cancelled first, then the incident is recorded,
then the run is tagged safety-stopped and cancelled everywhere). Every hit is recorded
as an incident; a stop's incident is recorded again, same id, with `killed_at` once the
sample (or this process's evaluation) has ended.

Audit trail: every sandbox event and every verdict (a judged tool call, tool output or
model output, with the rules it hit, none included) and every incident, timestamped, in
`audit`; the op stores it as JSONL beside the task's logs (`audit_jsonl`).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol

from dagster import DagsterInstance, get_dagster_logger
from inspect_ai.approval import Approval, ApprovalPolicy, Approver, approver, auto_approver
from inspect_ai.hooks import BeforeModelGenerate, Hooks, SampleEnd, hooks
from inspect_ai.model import ChatMessageAssistant
from inspect_ai.review import Review, Reviewer, ReviewPolicy, reviewer
from inspect_ai.util import LimitExceededError

from eval_pipelines.catalog.policy import SafetyPolicy, SafetyRule
from eval_pipelines.core import events
from eval_pipelines.engine._private import TerminateSampleError, sample_active
from eval_pipelines.execution.stopping import stop_run
from eval_pipelines.safety.incidents import Incident, record_incident
from resources.artifact_store import ArtifactStore

EXCERPT_CHARS = 2000


@dataclass(frozen=True)
class MonitorScope:
    """What the monitor is watching: one task of one run of one partition."""

    run_id: str
    partition: str
    model_id: str
    suite: str
    task: str
    sandbox: str | None = None
    """The kind of sandbox the task's tools run in (`bwrap`, `container`; None: none)."""


class RunControl(Protocol):
    """How a `stop_evaluation` reaches the run."""

    def halt(self, reason: str) -> None:
        """Stop this process's evaluation now (in-process, fast)."""

    def end_run(self, reason: str) -> None:
        """Mark the run safety-stopped and cancel it in every process or pod."""


class DagsterRunControl:
    """`halt` through the op's `RunWatch`; `end_run` through the instance."""

    def __init__(self, instance: DagsterInstance, run_id: str, halt: Any):
        self._instance, self._run_id, self._halt = instance, run_id, halt

    def halt(self, reason: str) -> None:
        self._halt(reason)

    def end_run(self, reason: str) -> None:
        try:
            stop_run(self._instance, self._run_id, reason, safety=True)
        except Exception as exc:  # e.g. a run without a launcher origin: the sensor ends it
            get_dagster_logger().warning(f"safety stop: cannot cancel run {self._run_id}: {exc}")


_current: ContextVar[SafetyMonitor | None] = ContextVar("eval_safety_monitor", default=None)


def _excerpt(text: str) -> str:
    return text if len(text) <= EXCERPT_CHARS else text[:EXCERPT_CHARS] + " [...]"


def _call_text(arguments: dict[str, Any]) -> str:
    """The text a tool call rule reads: string arguments as they are, others as JSON."""
    return "\n".join(v if isinstance(v, str) else json.dumps(v) for v in arguments.values())


class SafetyMonitor:
    """Applies one policy to one Inspect evaluation; see the module docstring."""

    def __init__(
        self,
        policy: SafetyPolicy,
        scope: MonitorScope,
        instance: DagsterInstance,
        artifacts: ArtifactStore,
        control: RunControl,
    ):
        self.policy, self.scope = policy, scope
        self._instance, self._artifacts, self._control = instance, artifacts, control
        self._lock = threading.Lock()
        self._seen: set[tuple[str, str]] = set()  # (rule, sample uuid) of sandbox events
        self._checked: dict[str, int] = {}  # sample uuid -> model outputs already judged
        self._awaiting_kill: dict[str, list[Incident]] = {}  # sample uuid -> stop incidents
        self.incidents: list[Incident] = []
        self.audit: list[dict[str, Any]] = []
        self.stop_reason: str | None = None

    # -- wiring -----------------------------------------------------------------------

    def approval(self, task_policies: list[ApprovalPolicy] | None) -> list[ApprovalPolicy]:
        """Ours first (it escalates what it lets through), then the task's own policies,
        or an auto-approver: an eval-level approval replaces the task's, and escalations
        nobody takes are rejected."""
        rest = task_policies or [ApprovalPolicy(auto_approver(), "*")]
        return [ApprovalPolicy(safety_approver(), "*"), *rest]

    def review(self) -> list[ReviewPolicy]:
        return [ReviewPolicy(safety_reviewer(), "*")]

    @contextlib.contextmanager
    def active(self) -> Iterator[SafetyMonitor]:
        """Around `eval_async`: hooks and sandbox events of this eval reach this monitor."""
        token = _current.set(self)
        unsubscribe = events.subscribe(self._on_sandbox_event)
        try:
            yield self
        finally:
            unsubscribe()
            _current.reset(token)

    def close(self) -> None:
        """After this process's evaluation has ended: stops still open are now complete."""
        with self._lock:
            pending = [i for group in self._awaiting_kill.values() for i in group]
            self._awaiting_kill.clear()
        self._mark_killed(pending)

    def audit_jsonl(self) -> bytes:
        """The audit trail, one JSON object per line, in the order things happened."""
        with self._lock:
            entries = sorted(self.audit, key=lambda entry: entry["at"])
        return b"".join(json.dumps(e, default=str).encode() + b"\n" for e in entries)

    def _audit(self, entry: str, at: float | None = None, **fields: Any) -> None:
        """Keep one timestamped audit entry, with the sample it belongs to."""
        active = sample_active()
        sample = {"sample_id": str(active.sample.id), "epoch": active.epoch} if active else {}
        with self._lock:
            self.audit.append({"at": at or time.time(), "entry": entry, **sample, **fields})

    # -- the watch points -------------------------------------------------------------

    async def _approve(self, message, call, view, history) -> Approval:
        text = _call_text(call.arguments)
        evidence = {"tool": call.function, "arguments": _excerpt(text)}
        hits = [
            r
            for r in self.policy.watching("tool_call")
            if r.matches_text(call.function, text, self.scope.sandbox)
        ]
        self._audit("tool_call", rules=[r.id for r in hits], **evidence)
        for rule in hits:
            self._act(rule, f"tool call {call.function} matched", evidence)
            if rule.action == "block_call":
                return Approval(
                    decision="reject",
                    explanation=f"Blocked by safety rule {rule.id}: {rule.description}",
                )
        return Approval(decision="escalate")

    async def _review(self, message, call, result, output, view, history) -> Review:
        text = result.text
        evidence = {"tool": call.function, "output": _excerpt(text)}
        hits = [
            r
            for r in self.policy.watching("tool_output")
            if r.matches_text(call.function, text, self.scope.sandbox)
        ]
        self._audit("tool_output", rules=[r.id for r in hits], **evidence)
        for rule in hits:
            self._act(rule, f"output of {call.function} matched", evidence)
        return Review(decision="continue")

    def judge_model_output(self, sample_uuid: str, outputs: list[str]) -> None:
        """Model outputs not judged yet for this sample (its `sample_uuid`; the hooks call
        this with every assistant message so far)."""
        with self._lock:
            start = self._checked.get(sample_uuid, 0)
            self._checked[sample_uuid] = max(start, len(outputs))
        for text in outputs[start:]:
            hits = [
                r
                for r in self.policy.watching("model_output")
                if r.matches_text(None, text, self.scope.sandbox)
            ]
            self._audit("model_output", rules=[r.id for r in hits], output=_excerpt(text))
            for rule in hits:
                self._act(rule, "model output matched", {"output": _excerpt(text)})

    def _on_sandbox_event(self, event: events.SandboxEvent) -> None:
        if _current.get() is not self:
            return  # another evaluation's sandbox
        self._audit(
            "sandbox_event",
            at=event.at,
            event=event.kind,
            sandbox=event.sandbox,
            details=event.details,
        )
        active = sample_active()
        for rule in self.policy.watching("sandbox_event"):
            if not rule.matches_event(event):
                continue
            key = (rule.id, active.sample_uuid if active else "")
            with self._lock:
                if key in self._seen:  # counters repeat at 10 Hz: one incident per sample
                    continue
                self._seen.add(key)
            evidence = {"event": event.kind, "sandbox": event.sandbox, **event.details}
            self._act(rule, f"sandbox {event.kind}", evidence, detected_at=event.at)

    # -- acting ---------------------------------------------------------------------------

    def _act(
        self,
        rule: SafetyRule,
        what: str,
        evidence: dict[str, Any],
        detected_at: float | None = None,
    ) -> None:
        """Stop first where the rule says so, then record; raises to end the sample."""
        detected_at = detected_at or time.time()
        reason = f"safety: {rule.id}: {what}"
        if rule.action == "stop_evaluation":
            self.stop_reason = self.stop_reason or reason
            self._control.halt(reason)
        active = sample_active()
        incident = Incident(
            rule_id=rule.id,
            severity=rule.severity,
            action=rule.action,
            quarantine=rule.quarantine,
            run_id=self.scope.run_id,
            partition=self.scope.partition,
            model_id=self.scope.model_id,
            suite=self.scope.suite,
            task=self.scope.task,
            sample_id=None if active is None else str(active.sample.id),
            epoch=None if active is None else active.epoch,
            summary=f"{rule.id} ({rule.severity}, {rule.action}): {what}",
            evidence=evidence,
            detected_at=detected_at,
        )
        self._audit(
            "incident", at=detected_at, incident_id=incident.id, rule=rule.id, action=rule.action
        )
        with self._lock:
            self.incidents.append(incident)
            if rule.action in ("stop_sample", "stop_evaluation"):
                key = active.sample_uuid if active else ""
                self._awaiting_kill.setdefault(key, []).append(incident)
        record_incident(self._instance, self._artifacts, incident)
        if rule.action == "stop_evaluation":
            self._control.end_run(reason)
        if rule.action in ("stop_sample", "stop_evaluation"):
            raise TerminateSampleError(reason)

    def sample_ended(self, sample_uuid: str) -> None:
        with self._lock:
            pending = self._awaiting_kill.pop(sample_uuid, [])
            self._checked.pop(sample_uuid, None)
        self._mark_killed(pending)

    def _mark_killed(self, incidents: list[Incident]) -> None:
        killed_at = time.time()
        for incident in incidents:
            updated = incident.model_copy(update={"killed_at": killed_at})
            record_incident(self._instance, self._artifacts, updated)


# Registered with Inspect (its logs name them); both find their monitor through the context.
@approver(name="eval_pipelines/safety_monitor")
def safety_approver() -> Approver:
    """Judges each tool call before it runs; escalates what it lets through."""

    async def approve(message, call, view, history) -> Approval:
        monitor = _current.get()
        if monitor is None:
            return Approval(decision="escalate")
        return await monitor._approve(message, call, view, history)

    return approve


@reviewer(name="eval_pipelines/safety_monitor")
def safety_reviewer() -> Reviewer:
    """Judges each tool's output before the model sees it."""

    async def review(message, call, result, output, view, history) -> Review:
        monitor = _current.get()
        if monitor is None:
            return Review(decision="continue")
        return await monitor._review(message, call, result, output, view, history)

    return review


def _assistant_texts(messages) -> list[str]:
    return [m.text for m in messages if isinstance(m, ChatMessageAssistant)]


@hooks(name="eval_pipelines_safety", description="Safety monitor: model output rules.")
class SafetyHooks(Hooks):
    """Process-global; acts only inside an evaluation run under `SafetyMonitor.active()`."""

    async def on_before_model_generate(self, data: BeforeModelGenerate) -> None:
        monitor, active = _current.get(), sample_active()
        if monitor is None or active is None:
            return
        try:
            monitor.judge_model_output(active.sample_uuid, _assistant_texts(data.input))
        except TerminateSampleError as stop:
            # Only a limit error leaves a hook: it ends the sample with our reason.
            raise LimitExceededError("custom", value=1, limit=0, message=stop.reason) from stop

    async def on_sample_end(self, data: SampleEnd) -> None:
        monitor = _current.get()
        if monitor is None:
            return
        messages = data.sample.messages
        with contextlib.suppress(TerminateSampleError):  # the sample is over already
            monitor.judge_model_output(data.sample_id, _assistant_texts(messages))
        monitor.sample_ended(data.sample_id)
