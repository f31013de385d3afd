"""Resources, chosen by deployment (`EVAL_DEPLOYMENT`: `local` default, or `scale`)."""

from resources.deployments import DEPLOYMENT_ENV, deployment_name, resources_for

__all__ = ["DEPLOYMENT_ENV", "deployment_name", "resources_for"]
