"""Read a task's compose file (or Dockerfile) into the services a sample's sandbox runs.

The keys are those the compose files of the field's evals use (surveyed in `inspect_evals`
0.26.0: 145 files). A key this sandbox does not carry out is refused before anything starts,
naming the key and the file: a compose key silently ignored changes what a task measures.
Keys that only shape how Compose itself pulls or restarts (`pull_policy`, `restart`,
`platform` for this machine's own architecture) are accepted and have no effect here, and
`x-inspect_k8s_sandbox` is for the Kubernetes sandbox, ignored locally by design.
"""

from __future__ import annotations

import platform
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from eval_pipelines.catalog.specs import SandboxSpec

COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml")
DOCKERFILE = "Dockerfile"
DEFAULT_SERVICE = "default"

_TOP_KEYS = {"services", "volumes", "networks", "name", "include"}
_INCLUDE_KEYS = {"path"}
_SERVICE_KEYS = {
    "image", "build", "command", "entrypoint", "user", "working_dir", "environment", "env_file",
    "init", "expose", "ports", "healthcheck", "network_mode", "networks", "mem_limit", "cpus",
    "shm_size", "depends_on", "extra_hosts", "hostname", "cap_add", "cap_drop", "ulimits",
    "volumes", "deploy", "stop_grace_period", "restart", "pull_policy", "platform", "tty",
    "stdin_open", "x-default", "x-local", "x-inspect_k8s_sandbox",
}  # fmt: skip
_BUILD_KEYS = {"context", "dockerfile", "args", "target"}
_HEALTHCHECK_KEYS = {"test", "interval", "timeout", "retries", "start_period", "disable"}
_DEPLOY_KEYS = {"resources"}
_REFUSED = {
    "privileged": "a privileged container is the host's root: never given",
    "runtime": "the platform chooses the runtime (runc or gVisor), not the task",
    "security_opt": "the platform sets the security profile (Docker's default seccomp)",
    "pid": "no container shares the host's process namespace",
    "ipc": "no container shares the host's IPC namespace",
    "devices": "no host devices are given to sandboxes",
}
_DURATION = re.compile(r"^(?:(\d+(?:\.\d+)?)(h|ms|us|m|s))+$")
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)\s*([bkmg]?)b?$", re.IGNORECASE)


class ComposeError(ValueError):
    """A compose file asks for something the container sandbox will not do."""


@dataclass(frozen=True)
class Build:
    context: Path
    dockerfile: str = DOCKERFILE
    args: dict[str, str] = field(default_factory=dict)
    target: str | None = None


@dataclass(frozen=True)
class Healthcheck:
    test: list[str]
    interval: float = 30.0
    timeout: float = 30.0
    retries: int = 3
    start_period: float = 0.0


@dataclass(frozen=True)
class Service:
    name: str
    image: str | None
    build: Build | None
    command: list[str] | str | None = None
    entrypoint: list[str] | str | None = None
    user: str | None = None
    working_dir: str | None = None
    environment: dict[str, str] = field(default_factory=dict)
    init: bool = False
    network: bool = True
    """False: `network_mode: none`, not even the sample's private network."""
    memory_bytes: int | None = None
    cpus: float | None = None
    shm_bytes: int | None = None
    depends_on: dict[str, str] = field(default_factory=dict)
    """Service -> condition (`service_started`, `service_healthy`)."""
    extra_hosts: dict[str, str] = field(default_factory=dict)
    hostname: str | None = None
    cap_add: tuple[str, ...] = ()
    cap_drop: tuple[str, ...] = ()
    ulimits: dict[str, tuple[int, int]] = field(default_factory=dict)
    volumes: dict[str, str] = field(default_factory=dict)
    """Named volume -> mount point: inside the sample only, never a host path."""
    copies: tuple[tuple[Path, str], ...] = ()
    """Files of the task's own folder (`./x:/path` in `volumes`) copied in at start: a copy,
    never a mount, so nothing the sample writes reaches the host."""
    healthcheck: Healthcheck | None = None
    stop_grace_seconds: float = 10.0

    def memory_within(self, limits: SandboxSpec) -> int:
        """Its memory limit in bytes: the compose file's, never above the suite's."""
        ceiling = limits.memory_mb << 20
        return min(self.memory_bytes or ceiling, ceiling)

    def cpus_within(self, limits: SandboxSpec) -> float:
        """Its CPU limit in cores: the compose file's, never above the suite's."""
        return min(self.cpus or limits.cpu, limits.cpu)


@dataclass(frozen=True)
class Project:
    """A sample's services, the agent's (`default`) first."""

    source: Path
    services: tuple[Service, ...]
    volumes: tuple[str, ...] = ()

    @property
    def default(self) -> Service:
        return self.services[0]

    def service(self, name: str) -> Service:
        return next(s for s in self.services if s.name == name)


def load_project(path: Path) -> Project:
    """The project a compose file or a Dockerfile describes, or `ComposeError`."""
    if path.name == DOCKERFILE or path.name.endswith(".Dockerfile"):
        build = Build(context=path.parent, dockerfile=path.name)
        return Project(path, (Service(name=DEFAULT_SERVICE, image=None, build=build, init=True),))
    bodies, volumes = _collect(path, (path.resolve(),))
    if not bodies:
        raise ComposeError(f"{path}: a compose file needs a mapping of `services`")
    services = [_service(source, name, body) for name, (source, body) in bodies.items()]
    named = [s for s in services if s.name == DEFAULT_SERVICE] or [
        s for s in services if bodies[s.name][1].get("x-default")
    ]
    first = named[0] if named else services[0]
    for service in services:
        for volume in service.volumes:
            if volume not in volumes:
                raise ComposeError(
                    f"{path}: service {service.name!r} mounts {volume!r}, which is not a named "
                    "volume of the file; host paths are never mounted into a sandbox"
                )
        for dependency in service.depends_on:
            if dependency not in bodies:
                raise ComposeError(
                    f"{path}: service {service.name!r} depends on {dependency!r}, no such service"
                )
    ordered = (first, *(s for s in services if s is not first))
    return Project(path, ordered, tuple(volumes))


def _collect(path: Path, chain: tuple[Path, ...]) -> tuple[dict[str, tuple[Path, dict]], list[str]]:
    """Service name -> (the file that defines it, its body), and the named volumes: of this
    file and of the files it `include`s, each read relative to its own folder, as Compose
    does. A service defined twice, or an include cycle, is an error."""
    try:
        raw = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise ComposeError(f"{path}: cannot read the compose file: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("services") or {}, dict):
        raise ComposeError(f"{path}: a compose file needs a mapping of `services`")
    _check_keys(path, "the file", raw, _TOP_KEYS, extension_ok=True)
    bodies: dict[str, tuple[Path, dict]] = {}
    volumes = list((raw.get("volumes") or {}).keys())
    for included in _includes(path, raw.get("include")):
        if included.resolve() in chain:
            raise ComposeError(f"{path}: includes {included}, which includes it back")
        more, more_volumes = _collect(included, (*chain, included.resolve()))
        for name, (source, body) in more.items():
            if name in bodies:
                raise ComposeError(
                    f"{path}: service {name!r} is defined by both {bodies[name][0]} and {source}"
                )
            bodies[name] = (source, body)
        volumes += [v for v in more_volumes if v not in volumes]
    for name, body in (raw.get("services") or {}).items():
        if name in bodies:
            raise ComposeError(
                f"{path}: service {name!r} is defined by both {bodies[name][0]} and {path}"
            )
        bodies[name] = (path, body)
    return bodies, volumes


def _includes(path: Path, value: Any) -> list[Path]:
    """The files an `include:` names (short syntax, or long syntax with a single `path`)."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise ComposeError(f"{path}: `include` is a list of files")
    files = []
    for entry in value:
        if isinstance(entry, dict):
            _check_keys(path, "an include", entry, _INCLUDE_KEYS)
            entry = entry.get("path")
        if not isinstance(entry, str):
            raise ComposeError(f"{path}: an include names one file by its `path`: {entry!r}")
        included = path.parent / entry
        if not included.is_file():
            raise ComposeError(f"{path}: includes {entry}, which is not a file")
        files.append(included)
    return files


def _check_keys(
    path: Path, where: str, body: dict, allowed: set[str], *, extension_ok: bool = False
) -> None:
    for key in body:
        if key in _REFUSED:
            raise ComposeError(f"{path}: {where}: `{key}` is refused: {_REFUSED[key]}")
        if key not in allowed and not (extension_ok and str(key).startswith("x-")):
            raise ComposeError(
                f"{path}: {where}: compose key `{key}` is not supported by the container "
                "sandbox; refusing to run the task without it"
            )


def _service(path: Path, name: str, body: Any) -> Service:
    where = f"service {name!r}"
    if not isinstance(body, dict):
        raise ComposeError(f"{path}: {where} is not a mapping")
    _check_keys(path, where, body, _SERVICE_KEYS)
    if body.get("image") is None and body.get("build") is None:
        raise ComposeError(f"{path}: {where} has neither `image` nor `build`")
    wanted = body.get("platform")
    if wanted and wanted.split("/")[-1] not in _architectures():
        raise ComposeError(f"{path}: {where} asks for platform {wanted}; this machine runs "
                           f"{platform.machine()}")  # fmt: skip
    network_mode = body.get("network_mode")
    if network_mode not in (None, "none", "bridge"):
        raise ComposeError(
            f"{path}: {where}: network_mode {network_mode!r} is refused; a sample's services "
            "share its private network only (`none` for no network)"
        )
    named, copies = _volumes(path, where, body.get("volumes"))
    deploy = body.get("deploy") or {}
    _check_keys(path, f"{where} deploy", deploy, _DEPLOY_KEYS)
    limits = (deploy.get("resources") or {}).get("limits") or {}
    memory = body.get("mem_limit", limits.get("memory"))
    cpus = body.get("cpus", limits.get("cpus"))
    return Service(
        name=name,
        image=body.get("image"),
        build=_build(path, where, body.get("build")),
        command=body.get("command"),
        entrypoint=body.get("entrypoint"),
        user=None if body.get("user") is None else str(body["user"]),
        working_dir=body.get("working_dir"),
        environment=_environment(path, where, body),
        init=bool(body.get("init", False)),
        network=network_mode != "none",
        memory_bytes=None if memory is None else _bytes(path, where, memory),
        cpus=None if cpus is None else float(cpus),
        shm_bytes=None if body.get("shm_size") is None else _bytes(path, where, body["shm_size"]),
        depends_on=_depends_on(body.get("depends_on")),
        extra_hosts=_extra_hosts(body.get("extra_hosts")),
        hostname=body.get("hostname"),
        cap_add=tuple(body.get("cap_add") or ()),
        cap_drop=tuple(body.get("cap_drop") or ()),
        ulimits=_ulimits(body.get("ulimits")),
        volumes=named,
        copies=copies,
        healthcheck=_healthcheck(path, where, body.get("healthcheck")),
        stop_grace_seconds=_seconds(path, where, body.get("stop_grace_period", "10s")),
    )


def _architectures() -> set[str]:
    machine = platform.machine()
    return {machine, {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)}


def _build(path: Path, where: str, build: Any) -> Build | None:
    if build is None:
        return None
    if isinstance(build, str):
        build = {"context": build}
    _check_keys(path, f"{where} build", build, _BUILD_KEYS)
    context = (path.parent / build.get("context", ".")).resolve()
    if not context.is_dir():
        raise ComposeError(f"{path}: {where}: build context {context} is not a folder")
    args = build.get("args") or {}
    if isinstance(args, list):
        args = dict(item.split("=", 1) for item in args)
    return Build(
        context=context,
        dockerfile=build.get("dockerfile", DOCKERFILE),
        args={str(k): str(v) for k, v in args.items()},
        target=build.get("target"),
    )


def _environment(path: Path, where: str, body: dict) -> dict[str, str]:
    values: dict[str, str] = {}
    files = body.get("env_file") or []
    for file in [files] if isinstance(files, str) else files:
        env_path = path.parent / file
        try:
            lines = env_path.read_text().splitlines()
        except OSError as exc:
            raise ComposeError(f"{path}: {where}: cannot read env_file {env_path}: {exc}") from exc
        for line in lines:
            if line.strip() and not line.lstrip().startswith("#") and "=" in line:
                key, value = line.split("=", 1)
                values[key.strip()] = value.strip()
    environment = body.get("environment") or {}
    if isinstance(environment, list):
        environment = dict(
            item.split("=", 1) if "=" in item else (item, "") for item in environment
        )
    # A bare name would take the host's value in Compose: never the host's environment here.
    values.update({str(k): "" if v is None else str(v) for k, v in environment.items()})
    return values


def _depends_on(value: Any) -> dict[str, str]:
    if value is None:
        return {}
    if isinstance(value, list):
        return {name: "service_started" for name in value}
    return {name: (spec or {}).get("condition", "service_started") for name, spec in value.items()}


def _extra_hosts(value: Any) -> dict[str, str]:
    if not value:
        return {}
    items = value.items() if isinstance(value, dict) else (i.split(":", 1) for i in value)
    return {str(host): str(address) for host, address in items}


def _ulimits(value: Any) -> dict[str, tuple[int, int]]:
    limits = {}
    for name, limit in (value or {}).items():
        if isinstance(limit, dict):
            limits[name] = (int(limit["soft"]), int(limit["hard"]))
        else:
            limits[name] = (int(limit), int(limit))
    return limits


def _volumes(
    path: Path, where: str, value: Any
) -> tuple[dict[str, str], tuple[tuple[Path, str], ...]]:
    named, copies = {}, []
    folder = path.parent.resolve()
    for item in value or []:
        if isinstance(item, dict):
            source, target = str(item.get("source", "")), item.get("target")
        else:
            source, _, rest = str(item).partition(":")
            target = rest.split(":")[0] if rest else None
        if not source or not target:
            raise ComposeError(f"{path}: {where}: volume {item!r} needs a source and a target")
        if source.startswith("."):
            copied = (folder / source).resolve()
            if not copied.is_relative_to(folder) or not copied.exists():
                raise ComposeError(
                    f"{path}: {where}: volume {item!r} is refused: a task file to copy in must "
                    "exist inside the compose file's folder"
                )
            copies.append((copied, target))
        elif source.startswith(("/", "~")):
            raise ComposeError(
                f"{path}: {where}: volume {item!r} is refused: a host path is never mounted "
                "into a sandbox"
            )
        else:
            named[source] = target
    return named, tuple(copies)


def _healthcheck(path: Path, where: str, value: Any) -> Healthcheck | None:
    if not value or value.get("disable"):
        return None
    _check_keys(path, f"{where} healthcheck", value, _HEALTHCHECK_KEYS)
    test = value.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    if not test or test[0] not in ("CMD", "CMD-SHELL"):
        raise ComposeError(f"{path}: {where}: healthcheck `test` must be CMD or CMD-SHELL")
    return Healthcheck(
        test=[str(t) for t in test],
        interval=_seconds(path, where, value.get("interval", "30s")),
        timeout=_seconds(path, where, value.get("timeout", "30s")),
        retries=int(value.get("retries", 3)),
        start_period=_seconds(path, where, value.get("start_period", "0s")),
    )


def _seconds(path: Path, where: str, value: Any) -> float:
    if isinstance(value, int | float):
        return float(value)
    text = str(value).strip()
    if not _DURATION.match(text):
        raise ComposeError(f"{path}: {where}: {value!r} is not a duration (e.g. 10s, 1m30s)")
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001, "us": 1e-6}
    return sum(float(n) * scale[u] for n, u in re.findall(r"(\d+(?:\.\d+)?)(h|ms|us|m|s)", text))


def _bytes(path: Path, where: str, value: Any) -> int:
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value).strip())
    if not match:
        raise ComposeError(f"{path}: {where}: {value!r} is not a size (e.g. 512m, 2g)")
    number, unit = match.groups()
    return int(
        float(number) * {"": 1, "b": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}[unit.lower()]
    )
