"""Keeps analytics assets (the leaderboard) up to date as evaluations land."""

from dagster import AssetSelection, AutomationConditionSensorDefinition, DefaultSensorStatus

# Dagster's implicit automation sensor starts stopped; analytics should just follow results.
analytics_automation_sensor = AutomationConditionSensorDefinition(
    "analytics_automation",
    target=AssetSelection.groups("analytics"),
    default_status=DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=30,
)
