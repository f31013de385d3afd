"""Shared fixtures: a real, throwaway Dagster instance and the project's definitions."""

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import pytest
from dagster import DagsterInstance

from eval_pipelines.core.home import INSTANCE_CONFIG
from eval_pipelines.core.partitions import model_partitions
from eval_pipelines.definitions import build_definitions
from tests.services import (
    dagster_services,
    free_port,
    moto_s3,
    stop_private_daemons,
    stop_services,
)

PROJECT_ROOT = Path(__file__).resolve().parent.parent
S3_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "test",
    "AWS_SECRET_ACCESS_KEY": "test",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def pytest_configure(config: pytest.Config) -> None:
    """Each test process (one per pytest-xdist worker) makes its sandboxes in a TMPDIR of its
    own, so checks for leftover sandboxes and sandbox processes see only its own tests'.

    Mode 0711: each sandbox's uid must reach its folder inside.
    """
    folder = Path(tempfile.mkdtemp(prefix="test-session-", dir="/tmp"))
    folder.chmod(0o711)
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = None  # recomputed from TMPDIR
    config.stash[_SESSION_TMPDIR] = folder


def pytest_unconfigure(config: pytest.Config) -> None:
    from eval_pipelines.sandbox._environment import reap_stale_sandboxes

    folder = config.stash.get(_SESSION_TMPDIR, None)
    if folder is not None:
        reap_stale_sandboxes(folder, abandoned_after=0)  # this test process is ending
        shutil.rmtree(folder, ignore_errors=True)


_SESSION_TMPDIR = pytest.StashKey[Path]()


# Fixtures that start real services: a test using one is slow whatever its marks say.
SERVICE_FIXTURES = frozenset({"services", "module_services"})


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects and pytest-xdist reads the groups
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that start real services (webserver, daemon, private daemons) are slow, and
    under pytest-xdist (`--dist loadgroup`) run one at a time within their group: the
    `services` group, unless the module names another (test_run_faults, test_safety_e2e:
    `run-faults`). The two groups run side by side, one per process; more daemons at once
    on 2 cores starve each other's runs past their tests' deadlines."""
    for item in items:
        if SERVICE_FIXTURES & set(item.fixturenames) and not item.get_closest_marker("slow"):
            item.add_marker(pytest.mark.slow)
        if item.get_closest_marker("slow") and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group("services"))


@pytest.fixture(autouse=True)
def _private_daemons_end_with_their_test(tmp_path_factory: pytest.TempPathFactory):
    """`evalctl run`'s private daemon outlives its last evalctl to let refresh runs end (up
    to 5 min): stopped here, it cannot load the next test or write into a removed folder."""
    yield
    stop_private_daemons(tmp_path_factory.getbasetemp())


@pytest.fixture(scope="session")
def instance_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The storage of a new instance of the project's dagster.yaml, made once per test
    process: a fresh home starts from a copy of it. Creating the SQLite schemas (and
    stamping their migrations) took 5 s a test on a loaded host, 25 s under heavy load;
    a copy takes milliseconds and is the same empty instance."""
    template = tmp_path_factory.mktemp("instance-template")
    shutil.copyfile(INSTANCE_CONFIG, template / "dagster.yaml")
    DagsterInstance.from_config(str(template)).dispose()
    return template


def fresh_home(home: Path, monkeypatch: pytest.MonkeyPatch, template: Path) -> Path:
    """`home` made a fresh DAGSTER_HOME with the project's dagster.yaml and the empty
    storage of `instance_template`, and no catalog or deployment variables from the
    caller's environment."""
    shutil.copytree(template, home)
    shutil.copyfile(INSTANCE_CONFIG, home / "dagster.yaml")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    for variable in (
        "EVAL_SUITE_PATH",
        "EVAL_MODEL_PATH",
        "EVAL_PROGRAMME_PATH",
        "EVAL_DEPLOYMENT",
    ):
        monkeypatch.delenv(variable, raising=False)
    return home


@pytest.fixture
def bus():
    """Every sandbox event published during the test (either sandbox)."""
    from eval_pipelines.core import events

    seen: list = []
    unsubscribe = events.subscribe(seen.append)
    yield seen
    unsubscribe()


def events_of(bus, kind: str) -> list[dict]:
    """The details of the `kind` events a `bus` saw."""
    return [e.details for e in bus if e.kind == kind]


@pytest.fixture
def dagster_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, instance_template: Path) -> Path:
    """A fresh DAGSTER_HOME with the project's dagster.yaml (SQLite storage inside it)."""
    return fresh_home(tmp_path / "dagster_home", monkeypatch, instance_template)


@pytest.fixture
def instance(dagster_home: Path):
    with DagsterInstance.get() as instance:
        instance.add_dynamic_partitions(model_partitions.name, ["reference", "weak"])
        yield instance


@pytest.fixture
def defs(dagster_home: Path):
    """Definitions built after DAGSTER_HOME points at the test's home."""
    return build_definitions()


@pytest.fixture
def s3_endpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    for name, value in S3_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    with moto_s3(tmp_path) as endpoint:
        client = boto3.client("s3", endpoint_url=endpoint)
        client.create_bucket(Bucket="evals")
        client.put_bucket_versioning(Bucket="evals", VersioningConfiguration={"Status": "Enabled"})
        yield endpoint


def write_suite(folder: Path, name: str, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.yaml"
    path.write_text(body)
    return path


@contextmanager
def running_services(home: Path, log_dir: Path) -> Iterator[dict]:
    """A webserver and daemon, served the project's code location by one code server
    (tests/services.py), on `home` (DAGSTER_HOME already) with this process's environment.
    `services` lists webserver and daemon (a test may replace the daemon); all are stopped
    afterwards."""
    env = dict(os.environ)
    # Create the SQLite schema once: webserver and daemon racing to create it can fail.
    DagsterInstance.get().dispose()

    port = free_port()
    webserver, daemon, code_server = dagster_services(log_dir, port, env)
    running = {
        "home": home,
        "port": port,
        "logs": [s.log for s in (webserver, daemon, code_server)],
        "services": [webserver, daemon],
        "code_server": code_server,
    }
    try:
        yield running
    finally:
        stop_services([*running["services"], code_server])


@pytest.fixture
def services(dagster_home: Path, tmp_path: Path):
    """Services (`running_services`) of this test's own, on its DAGSTER_HOME."""
    with running_services(dagster_home, tmp_path) as running:
        yield running


@pytest.fixture(scope="module")
def module_services_env() -> Iterator[dict[str, str]]:
    """Variables `module_services` starts with; a module overrides this fixture to set
    what its services must see (a catalog folder, a TMPDIR for its sandboxes)."""
    yield {}


@pytest.fixture(scope="module")
def module_services(
    tmp_path_factory: pytest.TempPathFactory, module_services_env, instance_template: Path
):
    """Services (`running_services`) shared by the tests of one module that neither stop nor
    break them, on a DAGSTER_HOME of the module's own (set for each of its tests): a start
    of webserver, daemon and code server costs some 4 Python processes importing Dagster.
    The instance keeps every earlier test's runs: each test tells its own apart (by run id,
    partition, incident)."""
    folder = tmp_path_factory.mktemp("module-services")
    with pytest.MonkeyPatch.context() as monkeypatch:
        home = fresh_home(folder / "dagster_home", monkeypatch, instance_template)
        for name, value in module_services_env.items():
            monkeypatch.setenv(name, value)
        with running_services(home, folder) as running:
            yield running
