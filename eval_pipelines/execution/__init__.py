"""Layer 2, where and how ops run: executors (in-process, multiprocess, Kubernetes), the local
run launcher, the Kubernetes manifests, and stopping an evaluation when its run is stopped.

May import: `eval_pipelines.core`, `eval_pipelines.catalog`.
"""
