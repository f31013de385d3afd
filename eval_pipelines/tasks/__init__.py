"""Layer 2, Inspect tasks the platform ships: offline smoke tasks and agentic tasks for
sandboxes, written the way third-party tasks are. May import: `core`, `catalog`.
"""
