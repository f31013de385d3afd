"""Layer 4, resources, chosen by deployment (`EVAL_DEPLOYMENT`: `local` default, or `scale`):
`resources.deployments.resources_for`. Nothing is imported here, so importing one resource
module (the artifact store, say) does not pull in every deployment's resources.

May import: `eval_pipelines.core`, `catalog`, `tasks`, `sandbox`, `scripted`, `execution`.
"""
