"""Layer 3, where and how ops run: executors (in-process, multiprocess, Kubernetes), the local
run launcher, the Kubernetes manifests, and stopping an evaluation when its run is stopped.

May import: `core`, `catalog`, `tasks`; not `sandbox` or `scripted`, its siblings.
"""
