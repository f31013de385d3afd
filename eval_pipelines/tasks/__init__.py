"""Inspect tasks the platform ships: offline smoke tasks and agentic tasks for sandboxes."""
