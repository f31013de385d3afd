"""Incident reviews: a safety team resolves an incident (a false positive, or reviewed and
dealt with) or reopens it, recording who, why and when.

State lives in the Dagster instance, as observations of the `incident_reviews` asset,
partitioned like the incidents (model|suite), the incident named in the metadata: the
latest review of an incident is its state, and an incident never reviewed is open. The
history stays, as for quarantine (`eval_pipelines.safety.quarantine`). A key of its own, not
`incidents`: the safety sensor turns every `incidents` observation into an alert, and a
review must not alert.
"""

from __future__ import annotations

import getpass
import time
from dataclasses import dataclass

from dagster import AssetObservation, DagsterInstance

from eval_pipelines.core.names import INCIDENT_REVIEWS
from eval_pipelines.core.observations import observations
from eval_pipelines.safety.incidents import Incident

OPEN, RESOLVED = "open", "resolved"


@dataclass(frozen=True)
class IncidentReview:
    """One review of an incident: the state it left the incident in, by whom, why, when."""

    incident_id: str
    partition: str
    resolved: bool
    reason: str
    by: str
    at: float

    @property
    def state(self) -> str:
        return RESOLVED if self.resolved else OPEN


def _observation(review: IncidentReview) -> AssetObservation:
    return AssetObservation(
        asset_key=INCIDENT_REVIEWS,
        partition=review.partition,
        metadata={
            "incident_id": review.incident_id,
            "state": review.state,
            "reason": review.reason,
            "by": review.by,
            "at": review.at,
        },
    )


def _review(observation: AssetObservation) -> IncidentReview:
    meta = {k: v.value for k, v in observation.metadata.items()}
    return IncidentReview(
        incident_id=str(meta["incident_id"]),
        partition=str(observation.partition),
        resolved=meta["state"] == RESOLVED,
        reason=str(meta["reason"]),
        by=str(meta["by"]),
        at=float(meta["at"]),
    )


def latest_reviews(
    instance: DagsterInstance, partition: str | None = None
) -> dict[str, IncidentReview]:
    """The latest review of each reviewed incident of `partition` (or all), by incident id."""
    reviews = (_review(o) for _, o in observations(instance, INCIDENT_REVIEWS, partition))
    return {review.incident_id: review for review in reviews}  # later reviews win


def _record(
    instance: DagsterInstance, incident: Incident, resolved: bool, reason: str, by: str | None
) -> IncidentReview:
    """Check the move makes sense (a reason, a change of state), then record it."""
    verb = "resolve" if resolved else "reopen"
    if not reason.strip():
        raise ValueError(f"a reason is required to {verb} an incident")
    current = latest_reviews(instance, incident.partition).get(incident.id)
    if (current is not None and current.resolved) == resolved:
        state = RESOLVED if resolved else OPEN
        raise ValueError(f"incident {incident.id} is already {state}")
    review = IncidentReview(incident.id, incident.partition, resolved, reason.strip(),
                            by or getpass.getuser(), time.time())  # fmt: skip
    instance.report_runless_asset_event(_observation(review))
    return review


def resolve(
    instance: DagsterInstance, incident: Incident, reason: str, by: str | None = None
) -> IncidentReview:
    """Resolve an open incident; raises `ValueError` without a reason or if already resolved."""
    return _record(instance, incident, True, reason, by)


def reopen(
    instance: DagsterInstance, incident: Incident, reason: str, by: str | None = None
) -> IncidentReview:
    """Reopen a resolved incident; raises `ValueError` without a reason or if it is open."""
    return _record(instance, incident, False, reason, by)
