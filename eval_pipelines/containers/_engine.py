"""The Docker Engine API: images built offline and cached by content, and everything a sample
creates labelled with its owner so that nothing outlives it, even a `kill -9`.

Docker's Python SDK (`docker`) speaks the Engine API (Podman's compatible socket too); no
Compose binary is involved.
"""

from __future__ import annotations

import hashlib
import ipaddress
import os
import shutil
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound

from eval_pipelines.containers._compose import Build, Project, Service
from eval_pipelines.core.processes import start_time

SOCKET_ENV = "EVAL_DOCKER_HOST"
DEFAULT_SOCKET = "unix:///var/run/docker.sock"
LABEL = "org.eval-pipelines.sandbox"
OWNER_LABEL = "org.eval-pipelines.owner"
BUILT_LABEL = "org.eval-pipelines.built-from"
BUILT_REPOSITORY = "eval-sandbox"
BASE_IMAGE = "eval-base:bookworm"
_HOW_TO_START = (
    "start the engine with `scripts/docker_engine.sh` (installed by `make setup`), or point "
    f"{SOCKET_ENV} at a running Docker or Podman socket"
)


# Where the engine draws sample networks from (scripts/docker_engine.sh configures it), and
# the host firewall rule that keeps them off the host's own addresses.
SANDBOX_POOL = ipaddress.ip_network("198.18.64.0/18")
_HOST_GUARD = ["INPUT", "-s", str(SANDBOX_POOL), "-j", "DROP"]


class EngineError(RuntimeError):
    """The container engine is missing, or cannot give a sample what it needs."""


def engine_url() -> str:
    return os.environ.get(SOCKET_ENV) or os.environ.get("DOCKER_HOST") or DEFAULT_SOCKET


def client() -> docker.DockerClient:
    """A client of the engine, or `EngineError` with how to start one."""
    try:
        engine = docker.DockerClient(base_url=engine_url(), version="auto", timeout=120)
        engine.ping()
    except DockerException as exc:
        raise EngineError(
            f"no container engine answers at {engine_url()}: {_HOW_TO_START}"
        ) from exc
    return engine


def engine_problems(runtime: str = "runc") -> list[str]:
    """Why the container sandbox cannot run here on `runtime` (empty: it can)."""
    try:
        engine = client()
    except EngineError as exc:
        return [str(exc)]
    try:
        info = engine.info()
    finally:
        engine.close()
    problems = []
    runtimes = info.get("Runtimes") or {}
    if runtime not in runtimes:
        problems.append(
            f"the engine at {engine_url()} has no {runtime!r} runtime (it has: "
            f"{', '.join(sorted(runtimes))}); register it in the engine's config "
            "(scripts/docker_engine.sh starts one with gVisor's runsc) or choose another"
        )
    problem = disk_quota_problem(info)
    if problem:
        problems.append(problem)
    return problems


def disk_quota_problem(info: dict) -> str | None:
    """Why the engine cannot cap a container's disk (None: it can), from `docker info`."""
    driver = info.get("Driver")
    backing = dict(info.get("DriverStatus") or []).get("Backing Filesystem")
    if driver == "btrfs" or (driver == "overlay2" and backing == "xfs"):
        return None
    return (
        f"the engine at {engine_url()} stores containers with {driver}"
        f"{f' on {backing}' if backing else ''}, which cannot cap a container's disk (the "
        "suite's disk_mb): an agent could fill the host's disk. Start the project's engine, "
        "whose data is on btrfs with quotas: stop this one, then run scripts/docker_engine.sh"
    )


def host_guard_problem(subnet: str) -> str | None:
    """Why a sample network of `subnet` could reach the host (None: it cannot).

    An internal network has no route out, but its gateway address is the host's, where any
    service listening on all addresses answers. The host's firewall drops what the sandbox
    pool sends to the host; a network outside that pool is not covered.
    """
    fix = "run scripts/docker_engine.sh (as root), which configures the pool and the rule"
    if not ipaddress.ip_network(subnet).subnet_of(SANDBOX_POOL):
        return (
            f"the engine gave the sample network {subnet}, outside the sandbox pool "
            f"{SANDBOX_POOL} that the host firewall guards; {fix}"
        )
    iptables = shutil.which("iptables") or "/usr/sbin/iptables"
    try:
        guarded = subprocess.run([iptables, "-C", *_HOST_GUARD], capture_output=True).returncode
    except OSError:
        guarded = 1
    if guarded != 0:
        return f"the host firewall does not drop what {SANDBOX_POOL} sends to the host; {fix}"
    return None


def missing_images(projects: Iterable[Project]) -> list[str]:
    """The `image:`s of the projects (without a `build:`) that the engine's store lacks."""
    engine = client()
    try:
        missing = []
        for service in (s for project in projects for s in project.services):
            if service.build is None:
                try:
                    engine.images.get(service.image)
                except ImageNotFound:
                    missing.append(f"{service.image} (service {service.name!r})")
        return missing
    finally:
        engine.close()


def owner() -> str:
    """This process, as the labels name it: pid and start time, so a reused pid is not it."""
    return f"{os.getpid()}:{start_time(os.getpid())}"


def _owner_alive(value: str) -> bool:
    pid_text, _, started = value.partition(":")
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    return bool(started) and start_time(pid) == started


def reap(engine: docker.DockerClient) -> int:
    """Remove the containers, networks and volumes of samples whose process is gone."""
    removed = 0
    for container in engine.containers.list(all=True, filters={"label": LABEL}):
        if not _owner_alive(container.labels.get(OWNER_LABEL, "")):
            _quietly(lambda c=container: c.remove(force=True, v=True))
            removed += 1
    for network in engine.networks.list(filters={"label": LABEL}):
        if not _owner_alive(network.attrs.get("Labels", {}).get(OWNER_LABEL, "")):
            _quietly(network.remove)
            removed += 1
    for volume in engine.volumes.list(filters={"label": LABEL}):
        if not _owner_alive((volume.attrs.get("Labels") or {}).get(OWNER_LABEL, "")):
            _quietly(lambda v=volume: v.remove(force=True))
            removed += 1
    return removed


def _quietly(action) -> None:
    try:
        action()
    except NotFound:
        pass


@dataclass(frozen=True)
class ServiceImage:
    service: str
    reference: str
    """What the compose file names (an image, or the tag we built)."""
    digest: str
    """The image id (sha256:...): what exactly ran."""


def service_image(engine: docker.DockerClient, service: Service) -> ServiceImage:
    """The image a service runs: its `image` from the local store, or its `build`, built
    offline once per content (context, Dockerfile, args)."""
    if service.build is not None:
        key = build_key(service.build)  # reads the whole context: once
        tag = f"{BUILT_REPOSITORY}/{_slug(service.build.context.name)}:{key}"
        if service.image is not None:
            tag = service.image if ":" in service.image else f"{service.image}:latest"
        try:
            image = engine.images.get(tag)
            if image.labels.get(BUILT_LABEL) != key:
                raise ImageNotFound(tag)
        except ImageNotFound:
            image = _build(engine, service, tag, key)
        return ServiceImage(service.name, tag, image.id)
    try:
        image = engine.images.get(service.image)
    except ImageNotFound:
        raise EngineError(
            f"service {service.name!r}: image {service.image} is not in the engine's store and "
            "no registry is reachable; load it (`docker load -i FILE`), or build it from the "
            f"offline base (`evalctl images build`, then `docker tag {BASE_IMAGE} "
            f"{service.image}` if the base has what the task needs)"
        ) from None
    return ServiceImage(service.name, service.image, image.id)


def build_key(build: Build) -> str:
    """Content hash of what a build reads: every file of its context, the Dockerfile, args."""
    digest = hashlib.sha256()
    for path in sorted(_files(build.context)):
        relative = path.relative_to(build.context).as_posix()
        digest.update(f"{relative}\0{path.stat().st_mode & 0o777}\0".encode())
        digest.update(path.read_bytes())
    digest.update(f"{build.dockerfile}\0{sorted(build.args.items())}\0{build.target}".encode())
    return digest.hexdigest()[:20]


def _files(folder: Path) -> Iterator[Path]:
    for path in folder.rglob("*"):
        if path.is_file() and not path.is_symlink():
            yield path


def _build(engine: docker.DockerClient, service: Service, tag: str, key: str):
    build = service.build
    assert build is not None
    output: list[str] = []
    try:
        stream = engine.api.build(
            path=str(build.context),
            dockerfile=build.dockerfile,
            tag=tag,
            buildargs=build.args or None,
            target=build.target,
            rm=True,
            forcerm=True,
            pull=False,
            network_mode="none",
            labels={BUILT_LABEL: key},
            decode=True,
        )
        for chunk in stream:
            if "stream" in chunk:
                output.append(chunk["stream"])
            if "error" in chunk:
                raise EngineError(_build_failure(service, chunk["error"], output))
    except APIError as exc:
        raise EngineError(_build_failure(service, str(exc), output)) from exc
    return engine.images.get(tag)


def _build_failure(service: Service, error: str, output: list[str]) -> str:
    hint = ""
    if "pull access denied" in error or "not found" in error or "failed to resolve" in error:
        hint = (
            f"; its base image is not in the engine's store and no registry is reachable: "
            f"load it (`docker load -i FILE`) or build `FROM {BASE_IMAGE}` "
            "(`evalctl images build` makes it offline from Debian's packages)"
        )
    tail = "".join(output[-5:]).strip()
    return (
        f"service {service.name!r}: building {service.build.context}/{service.build.dockerfile} "
        f"failed: {error.strip()}{hint}" + (f"\n{tail}" if tail else "")
    )


def built_images(engine: docker.DockerClient) -> list:
    """The images the container sandbox built (from tasks' build contexts)."""
    return engine.images.list(filters={"label": BUILT_LABEL})


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in name.lower()).strip("-") or "task"
