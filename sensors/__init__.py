"""Layer 11, sensors and schedules, each with the run requests it builds: safety (incidents,
failures, operator stops), the model catalog, analytics, programme schedules and arrivals.

May import: everything below `eval_pipelines.definitions` (`assets` included).
"""
