"""A sample that asks for Inspect's docker sandbox with no compose file or Dockerfile: Inspect
would run its default image (aisiuk/inspect-tool-support)."""

from inspect_ai import Task, task
from inspect_ai.dataset import Sample


@task
def default_image():
    return Task(dataset=[Sample(input="hi", sandbox="docker")])
