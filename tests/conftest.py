"""Shared fixtures: loopback S3 (moto), GCS (emulator) and Azure (Azurite) servers for the whole test session.

Fixtures (request them by name; none is autouse, so tests that need no server start none):

``s3_server`` (session)
    A :class:`tests.servers.S3Server`: ``.bucket`` (exists), ``.endpoint`` (``http://127.0.0.1:PORT``),
    ``.uri(key)`` -> ``"s3://BUCKET/KEY"``, ``.env`` (the variables below), ``.create_bucket(name)``,
    ``.client(service="s3")`` (a botocore client), ``.process`` (the moto subprocess). While it is
    active, ``os.environ`` holds ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID=testing``,
    ``AWS_SECRET_ACCESS_KEY=testing``, ``AWS_DEFAULT_REGION=us-east-1`` and
    ``AWS_EC2_METADATA_DISABLED=true``, so in-process code *and* subprocesses (the ``taskbox`` CLI)
    reach moto. Variables that could send S3 traffic elsewhere (``AWS_PROFILE``,
    ``AWS_ENDPOINT_URL_S3``, ``FLYTE_AWS_*``...) are removed and ``~/.aws`` is hidden.

``gcs_server`` (session)
    A :class:`tests.servers.GCSServer`: ``.bucket``, ``.endpoint``, ``.uri(key)`` -> ``"gs://BUCKET/KEY"``,
    ``.env``, ``.create_bucket(name)``. Exports ``STORAGE_EMULATOR_HOST`` and
    ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false``.

``azure_server`` (session)
    A :class:`tests.servers.AzureServer`: Azurite's blob service with the well-known development account
    (``devstoreaccount1`` and its published key), ``.container`` (exists), ``.endpoint``,
    ``.blob_endpoint`` (``http://127.0.0.1:PORT/devstoreaccount1``), ``.uri(key)`` ->
    ``"abfs://CONTAINER/KEY"``, ``.connection_string(endpoint=..., key=...)``, ``.env``, ``.client()`` (the
    SDK's), ``.create_container(name)``. Exports ``AZURE_STORAGE_CONNECTION_STRING`` (with
    ``BlobEndpoint`` at Azurite: how adlfs and taskbox reach an emulator); the ``FLYTE_AZURE_*`` and other
    ``AZURE_*`` variables are removed, so no test ever falls back to ``DefaultAzureCredential``. Azurite is
    installed by the same script into ``.azurite`` (or ``$TASKBOX_AZURITE_DIR``).

``unique_prefix`` (function)
    A key prefix unique to the test (``<test name>-<8 hex>``): use ``s3_server.uri(f"{unique_prefix}/x")``
    so tests sharing the session bucket never see each other's objects.

``s3_base`` / ``gcs_base`` / ``azure_base`` (function)
    ``s3://BUCKET/<unique_prefix>``, ``gs://BUCKET/<unique_prefix>`` and ``abfs://CONTAINER/<unique_prefix>``.

``storage_base`` (function, parametrised ``local`` / ``s3`` / ``gcs`` / ``azure``)
    A fresh base location on each backend; a test using it runs four times. The local one is a
    directory under ``tmp_path``; the servers start only for the remote parameters.

``servers_venv`` (session)
    Path of the venv holding the servers (installed on first use, see below); pass it to
    ``servers.start_moto(venv=..., env=...)`` to start an extra, differently configured server.

``fresh_filesystems`` (function)
    Clears taskbox's cached remote filesystems before and after the test; use it when a test changes
    storage environment variables (with ``monkeypatch``).

Servers are installed by scripts/install-test-servers.sh into ``.venv-servers`` (or
``$TASKBOX_SERVERS_VENV``). If that venv is missing, the first server fixture runs the script once;
set ``TASKBOX_SERVERS_AUTO_INSTALL=0`` to turn that off, and the tests then fail (never skip) with the
install hint.

Parallel runs (``make test``: pytest-xdist, ``--dist loadgroup``): session fixtures start once per worker,
each server on a free port of its own. :data:`XDIST_GROUPS` keeps the tests that must not compete on one
worker; each worker ships its reliability ledger to the controller, which prints one merged table.
"""

from __future__ import annotations

import os
import re
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest

import servers

S3_BUCKET = "taskbox-test"
GCS_BUCKET = "taskbox-test"
AZURE_CONTAINER = "taskbox-test"

# Variables that could route storage traffic away from the loopback servers or pick up real credentials.
_SCRUBBED_ENV = (
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ENDPOINT_URL_S3",
    "AWS_SESSION_TOKEN",
    "AWS_SECURITY_TOKEN",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "FLYTE_AWS_ENDPOINT",
    "FLYTE_AWS_ACCESS_KEY_ID",
    "FLYTE_AWS_SECRET_ACCESS_KEY",
    "GOOGLE_APPLICATION_CREDENTIALS",
    "FLYTE_AZURE_STORAGE_ACCOUNT_NAME",
    "FLYTE_AZURE_STORAGE_ACCOUNT_KEY",
    "FLYTE_AZURE_TENANT_ID",
    "FLYTE_AZURE_CLIENT_ID",
    "FLYTE_AZURE_CLIENT_SECRET",
    "AZURE_STORAGE_CONNECTION_STRING",
    "AZURE_STORAGE_ACCOUNT_NAME",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_TENANT_ID",
    "AZURE_STORAGE_CLIENT_ID",
    "AZURE_STORAGE_CLIENT_SECRET",
    "AZURE_STORAGE_ANON",
    "AZURE_STORAGE_ENDPOINT",
    # DefaultAzureCredential's sources: no test may reach for a token
    "AZURE_CLIENT_ID",
    "AZURE_CLIENT_SECRET",
    "AZURE_TENANT_ID",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_AUTHORITY_HOST",
    "IDENTITY_ENDPOINT",
    "IDENTITY_HEADER",
    "MSI_ENDPOINT",
    "MSI_SECRET",
)


def _reset_storage() -> None:
    remote = sys.modules.get("taskbox.storage.remote")
    if remote is not None:
        remote.reset_filesystems()


@pytest.fixture(scope="session")
def servers_venv() -> Path:
    """The venv holding moto and the GCS emulator; installs it once if missing (see module doc)."""
    venv = servers.servers_venv()
    if not servers.servers_installed(venv) and os.environ.get("TASKBOX_SERVERS_AUTO_INSTALL", "1") != "0":
        servers.install_servers(venv)
    return servers.require_servers_venv(venv)


@pytest.fixture(scope="session")
def _loopback_env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[pytest.MonkeyPatch]:
    """Session-wide environment hygiene shared by both server fixtures."""
    mp = pytest.MonkeyPatch()
    for name in _SCRUBBED_ENV:
        mp.delenv(name, raising=False)
    empty = tmp_path_factory.mktemp("no-aws-config") / "none"
    mp.setenv("AWS_CONFIG_FILE", str(empty))
    mp.setenv("AWS_SHARED_CREDENTIALS_FILE", str(empty))
    no_proxy = ",".join(filter(None, [os.environ.get("NO_PROXY", ""), "127.0.0.1", "localhost"]))
    mp.setenv("NO_PROXY", no_proxy)
    mp.setenv("no_proxy", no_proxy)
    yield mp
    mp.undo()
    _reset_storage()


ServerT = TypeVar("ServerT", bound=Any)


def _exported(server: ServerT, env: pytest.MonkeyPatch) -> Iterator[ServerT]:
    """Yield ``server`` with its ``env`` exported for the session, storage clients reset around it."""
    for name, value in server.env.items():
        env.setenv(name, value)
    _reset_storage()
    yield server
    _reset_storage()


@pytest.fixture(scope="session")
def s3_server(servers_venv: Path, _loopback_env: pytest.MonkeyPatch) -> Iterator[servers.S3Server]:
    """moto on 127.0.0.1 with bucket ``taskbox-test``; its env is exported for the session."""
    server = servers.start_moto_with_bucket(S3_BUCKET, venv=servers_venv)
    with server.process:
        yield from _exported(server, _loopback_env)


@pytest.fixture(scope="session")
def gcs_server(servers_venv: Path, _loopback_env: pytest.MonkeyPatch) -> Iterator[servers.GCSServer]:
    """The GCS emulator on 127.0.0.1 with bucket ``taskbox-test``; its env is exported for the session."""
    with servers.start_gcs_emulator(GCS_BUCKET, venv=servers_venv) as process:
        yield from _exported(servers.GCSServer(process, GCS_BUCKET), _loopback_env)


@pytest.fixture(scope="session")
def azure_server(
    tmp_path_factory: pytest.TempPathFactory, _loopback_env: pytest.MonkeyPatch
) -> Iterator[servers.AzureServer]:
    """Azurite on 127.0.0.1 with container ``taskbox-test``; its env is exported for the session."""
    servers.require_azurite(auto_install=os.environ.get("TASKBOX_SERVERS_AUTO_INSTALL", "1") != "0")
    with servers.start_azurite(tmp_path_factory.mktemp("azurite")) as process:
        server = servers.AzureServer(process, AZURE_CONTAINER)
        server.create_container(AZURE_CONTAINER)
        yield from _exported(server, _loopback_env)


@pytest.fixture
def unique_prefix(request: pytest.FixtureRequest) -> str:
    """``<sanitised test name>-<8 hex>``: a key prefix no other test uses."""
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", request.node.name).strip("-")[:60] or "test"
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def s3_base(s3_server: servers.S3Server, unique_prefix: str) -> str:
    """``s3://taskbox-test/<unique_prefix>``."""
    return s3_server.uri(unique_prefix)


@pytest.fixture
def gcs_base(gcs_server: servers.GCSServer, unique_prefix: str) -> str:
    """``gs://taskbox-test/<unique_prefix>``."""
    return gcs_server.uri(unique_prefix)


@pytest.fixture
def azure_base(azure_server: servers.AzureServer, unique_prefix: str) -> str:
    """``abfs://taskbox-test/<unique_prefix>``."""
    return azure_server.uri(unique_prefix)


@pytest.fixture(params=["local", "s3", "gcs", "azure"])
def storage_base(request: pytest.FixtureRequest, tmp_path: Path, unique_prefix: str) -> str:
    """A fresh base location on the local file system, moto, the GCS emulator, or Azurite."""
    if request.param == "local":
        return str(tmp_path / "store" / unique_prefix)
    server = request.getfixturevalue(f"{request.param}_server")
    return server.uri(unique_prefix)


@pytest.fixture
def fresh_filesystems() -> Iterator[None]:
    """Forget cached remote filesystems before and after the test (for tests that change the env)."""
    _reset_storage()
    yield
    _reset_storage()


# --- pytest-xdist (``make test`` runs the suite on several worker processes) -----------------------------

#: Tests that must not run at the same time as each other: under ``--dist loadgroup`` each group is one unit
#: of work, run on one xdist worker (the other workers go on with the rest). ``images``: the image tests
#: share the session's variant builds (one build per variant; docker builds are CPU- and disk-heavy).
#: ``bounds``: tests that measure peak memory, kill runs at chosen moments or fill a disk run one after
#: another, so that they do not compete with each other for memory, CPU time and disk.
#: Keys are node-id prefixes (paths relative to the repository root).
XDIST_GROUPS: dict[str, str] = {
    "tests/images/": "images",
    "tests/reliability/test_resource_bounds.py": "bounds",
    "tests/reliability/test_kill_random.py": "bounds",
    "tests/reliability/test_kill_rerun.py": "bounds",
    "tests/reliability/test_disk_full.py": "bounds",
}
_LEDGER_KEY = "taskbox_reliability_ledger"


def xdist_group_of(nodeid: str) -> str | None:
    """The :data:`XDIST_GROUPS` group of a test's node id, or None when it may run anywhere."""
    for prefix, group in XDIST_GROUPS.items():
        if nodeid.startswith(prefix):
            return group
    return None


@pytest.hookimpl(optionalhook=True)  # an xdist hook (controller side): absent without pytest-xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: object) -> object | None:
    """``--dist loadgroup`` with :data:`XDIST_GROUPS` as the groups, read from the node ids.

    Why not ``@pytest.mark.xdist_group``: xdist 3.8 tags a grouped test by rewriting ``item._nodeid``, which
    pytest 9 no longer reads, so the marks are silently ignored. Grouping by node id needs no marks.
    """
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    class _Scheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return xdist_group_of(nodeid) or super()._split_scope(nodeid)

    return _Scheduling(config, log)


def _ledger_module() -> ModuleType | None:
    """tests/reliability/ledger.py if a test imported it (the summary is printed only then)."""
    return sys.modules.get("reliability.ledger")


def pytest_sessionfinish(session: pytest.Session) -> None:
    """On an xdist worker: hand this worker's ledger rows to the controller (see pytest_testnodedown)."""
    workeroutput = getattr(session.config, "workeroutput", None)
    ledger_module = _ledger_module()
    if workeroutput is not None and ledger_module is not None:
        workeroutput[_LEDGER_KEY] = ledger_module.LEDGER.export()


@pytest.hookimpl(optionalhook=True)  # an xdist hook: absent (and never called) without pytest-xdist
def pytest_testnodedown(node: object, error: object) -> None:
    """On the xdist controller: merge a finished worker's ledger rows into the controller's ledger."""
    data = getattr(node, "workeroutput", {}).get(_LEDGER_KEY)
    if data:
        from reliability.ledger import LEDGER

        LEDGER.merge(data)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the reliability suite's ledger (tests/reliability/ledger.py) when any of its tests ran.

    Under xdist this runs on the controller only, with every worker's rows merged.
    """
    if hasattr(terminalreporter.config, "workeroutput"):
        return
    ledger_module = _ledger_module()
    if ledger_module is None:
        return
    table = ledger_module.LEDGER.table()
    if not table:
        return
    terminalreporter.write_sep("=", "reliability summary (tests/reliability)")
    terminalreporter.write_line(table)
    for detail in ledger_module.LEDGER.lost_details:
        terminalreporter.write_line(f"LOST: {detail}")
    path = os.environ.get("TASKBOX_RELIABILITY_SUMMARY")
    if path:
        ledger_module.LEDGER.write_json(path)
