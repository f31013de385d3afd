"""The evaluation platform: Inspect evaluations orchestrated, isolated, monitored and stored by
Dagster. Its subpackages are layers, bottom first: `core`, `catalog`, `tasks`, then
`sandbox` | `scripted` | `execution`, (`resources/`), `engine` | `results`, `safety`,
`evaluation`, `analytics`, `jobs`, (`assets/`, `sensors/`), `definitions`, `control`, `cli`.
Imports point down only (docs/architecture.md; enforced by tests/test_layers.py).
"""
