"""Inspect entry point: registers our model providers and tasks with Inspect."""

from eval_pipelines.containers import ContainerSandboxEnvironment  # noqa: F401
from eval_pipelines.sandbox import BwrapSandboxEnvironment  # noqa: F401
from eval_pipelines.scripted import ScriptedModelAPI  # noqa: F401
from eval_pipelines.tasks.agentic import agentic_smoke  # noqa: F401
from eval_pipelines.tasks.ctf import ctf_files, ctf_private_service, ctf_setuid  # noqa: F401
from eval_pipelines.tasks.smoke import popularity, security_guide, theory_of_mind  # noqa: F401
