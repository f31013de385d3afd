"""Alert channels: a generic JSON webhook, Slack incoming webhooks, PagerDuty Events API v2.

Plain HTTP (`urllib`) rather than dagster-slack / dagster-pagerduty 0.29.27: dagster-slack's
`SlackResource` wraps a bot-token `slack_sdk.WebClient` (chat.postMessage), not incoming
webhooks, and dagster-pagerduty sends through `pypd`, unmaintained since 2018, whose endpoint
is a module global. Each channel here is one POST of a documented JSON body to a URL from
config, so tests point every channel at a receiver on 127.0.0.1.

A channel with no URL (or, for PagerDuty, no routing key) is off. Each post is retried with
exponential backoff; what still fails is reported to the caller, which records it as
undelivered for the sensor to retry later (`eval_pipelines.safety.alerts`).
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from abc import ABC, abstractmethod
from typing import Any, Literal

from dagster import Config, ConfigurableResource, EnvVar
from pydantic import BaseModel, ConfigDict, Field

AlertKind = Literal["policy", "operator_stop", "capability_threshold", "run_failure"]


class Alert(BaseModel):
    """The message every channel renders in its own format."""

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Stable: incident id, or run-failure-<run id>; the dedup key.")
    kind: AlertKind
    severity: Literal["info", "warning", "error", "critical"]
    title: str
    summary: str
    run_id: str
    partition: str | None = None
    rule_id: str | None = None
    action: str | None = None
    quarantine: bool = False
    timestamp: str = Field(description="ISO 8601 time of detection.")
    source: str = "eval-platform"
    links: dict[str, str] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)

    def fields(self) -> dict[str, str]:
        """The short facts a person scans first."""
        facts = {"alert": self.id, "run": self.run_id, "partition": self.partition, "rule": self.rule_id,
                 "action": self.action, "quarantine": "yes" if self.quarantine else None}  # fmt: skip
        return {k: str(v) for k, v in facts.items() if v is not None}


class AlertChannel(Config, ABC):
    """One destination for alerts: a URL that takes a JSON POST (config of `AlertChannels`)."""

    url: str = Field(default="", description="Endpoint; empty turns the channel off.")
    timeout_seconds: float = Field(default=10.0, gt=0)
    attempts: int = Field(default=4, ge=1, description="Posts per delivery before giving up.")
    backoff_seconds: float = Field(default=0.5, ge=0, description="First retry delay; doubles.")

    @property
    @abstractmethod
    def name(self) -> str: ...

    @property
    def enabled(self) -> bool:
        return bool(self.url)

    @abstractmethod
    def body(self, alert: Alert) -> dict[str, Any]:
        """The JSON this channel's endpoint expects."""

    def send(self, alert: Alert) -> int:
        """POST the alert, retrying with backoff; returns the attempts used, raises the last error."""
        data = json.dumps(self.body(alert)).encode()
        for attempt in range(1, self.attempts + 1):
            request = urllib.request.Request(
                self.url, data=data, headers={"content-type": "application/json"}, method="POST"
            )
            try:
                with urllib.request.urlopen(request, timeout=self.timeout_seconds) as response:
                    response.read()
                return attempt
            except OSError as exc:  # HTTPError and URLError included
                if attempt == self.attempts:
                    raise AlertDeliveryError(f"{self.name}: {self.url}: {exc}") from exc
                time.sleep(self.backoff_seconds * 2 ** (attempt - 1))
        raise AssertionError("unreachable")


class AlertDeliveryError(RuntimeError):
    """A channel refused or did not answer every attempt."""


class WebhookChannel(AlertChannel):
    """A generic webhook: the alert as JSON, the whole incident record included."""

    @property
    def name(self) -> str:
        return "webhook"

    def body(self, alert: Alert) -> dict[str, Any]:
        return alert.model_dump(mode="json")


class SlackChannel(AlertChannel):
    """A Slack incoming webhook (`https://hooks.slack.com/services/...`): text plus blocks."""

    @property
    def name(self) -> str:
        return "slack"

    def body(self, alert: Alert) -> dict[str, Any]:
        text = f"[{alert.severity.upper()}] {alert.title}: {alert.summary}"
        facts = " | ".join(f"*{k}*: {v}" for k, v in alert.fields().items())
        links = " ".join(f"<{url}|{name}>" for name, url in alert.links.items())
        return {
            "text": text,
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": alert.title[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": alert.summary}},
                {"type": "section", "text": {"type": "mrkdwn", "text": facts}},
                *([{"type": "context", "elements": [{"type": "mrkdwn", "text": links}]}] if links else []),
            ],
        }  # fmt: skip


PAGERDUTY_EVENTS_URL = "https://events.pagerduty.com/v2/enqueue"


class PagerDutyChannel(AlertChannel):
    """PagerDuty Events API v2 `enqueue`: a trigger deduplicated on the alert's id."""

    url: str = PAGERDUTY_EVENTS_URL
    routing_key: str = Field(default="", description="The service integration key; empty: off.")

    @property
    def name(self) -> str:
        return "pagerduty"

    @property
    def enabled(self) -> bool:
        return bool(self.url and self.routing_key)

    def body(self, alert: Alert) -> dict[str, Any]:
        return {
            "routing_key": self.routing_key,
            "event_action": "trigger",
            "dedup_key": alert.id,
            "payload": {
                "summary": f"{alert.title}: {alert.summary}"[:1024],
                "source": alert.source,
                "severity": alert.severity,  # the same four levels PagerDuty takes
                "timestamp": alert.timestamp,
                "component": alert.partition or "evaluation",
                "group": alert.kind,
                "class": alert.rule_id or alert.kind,
                "custom_details": alert.fields() | {"details": alert.details},
            },
            "links": [{"href": url, "text": name} for name, url in alert.links.items()],
        }


class AlertChannels(ConfigurableResource):
    """The channels every alert goes to; those without an endpoint are off."""

    webhook: WebhookChannel = WebhookChannel()
    slack: SlackChannel = SlackChannel()
    pagerduty: PagerDutyChannel = PagerDutyChannel()

    def enabled(self) -> list[AlertChannel]:
        return [c for c in (self.webhook, self.slack, self.pagerduty) if c.enabled]


ALERT_ENV = {
    "webhook": "EVAL_ALERT_WEBHOOK_URL",
    "slack": "EVAL_ALERT_SLACK_WEBHOOK_URL",
    "pagerduty": "EVAL_ALERT_PAGERDUTY_URL",
}
PAGERDUTY_ROUTING_KEY_ENV = "EVAL_PAGERDUTY_ROUTING_KEY"


def alert_channels_from_env() -> AlertChannels:
    """Channels from environment variables; the routing key stays an `EnvVar` (a secret)."""
    env = {name: os.environ.get(variable, "") for name, variable in ALERT_ENV.items()}
    routing_key = (
        EnvVar(PAGERDUTY_ROUTING_KEY_ENV) if os.environ.get(PAGERDUTY_ROUTING_KEY_ENV) else ""
    )
    return AlertChannels(
        webhook=WebhookChannel(url=env["webhook"]),
        slack=SlackChannel(url=env["slack"]),
        pagerduty=PagerDutyChannel(url=env["pagerduty"] or PAGERDUTY_EVENTS_URL, routing_key=routing_key),
    )  # fmt: skip
