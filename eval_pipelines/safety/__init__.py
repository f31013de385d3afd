"""Layer 6, safety: the in-process monitor, incidents (announced, recorded, reviewed), model
quarantine, alerts and the `safety_alert` / `quarantine` jobs.

The policies the monitor applies are specs (`eval_pipelines.catalog.policy`); what sandboxes
observe is plain data (`eval_pipelines.core.events`).
May import: layers 0-5 (`core`, `catalog`, `tasks`, `sandbox`, `scripted`, `execution`,
`resources`, `engine`, `results`).
"""
