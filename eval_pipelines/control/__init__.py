"""Layer 13, operating an instance from evalctl: submit and follow runs, the private daemon,
rebuilding assets in-process, schedules, and the `evalctl ui` services.

May import: everything below, `eval_pipelines.definitions` included; only the CLI imports it.
"""
