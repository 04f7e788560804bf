"""Real storage servers for tests, on 127.0.0.1 only: moto's S3 server, the GCS emulator, Azurite, a fault proxy.

Why: storage code is only trustworthy against servers that speak the real protocols (signing, XML and
JSON error bodies, multipart uploads, block blobs, connection handling), not mocks of the client library.
moto and gcp-storage-emulator run as subprocesses from their own virtual environment, because moto[server]
needs a botocore newer than the one s3fs's aiobotocore pins (docs/test-environment.md, 4). Azurite (the
Azure Storage emulator, a Node.js program from the npm registry) runs from its own folder, ``.azurite``.
The fault proxy that goes between a client and these servers lives in tests/faultproxy.py; its names
are re-exported here (``servers.FaultProxy``, ``servers.FailFirst``...) for the tests that use them so.

Invariants:
    * Every socket binds 127.0.0.1, never 0.0.0.0; every port is a free one picked at start.
    * A missing server venv or Azurite is a test *failure* with the install hint, never a skip.
    * Servers are stopped by whoever started them (``stop()`` / context manager); their output goes to
      a log file whose tail is shown when a server fails to start.

Usage (the session fixtures in tests/conftest.py do this once per run)::

    with start_moto() as proc:
        s3 = S3Server(proc, bucket="b"); s3.create_bucket("b"); os.environ.update(s3.env)
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from faultproxy import (  # noqa: F401 - re-exported: the storage and fast-execute tests use servers.<name>
    Action,
    CutUpstream,
    Delay,
    FailFirst,
    FaultProxy,
    ProxyRequest,
    RandomFaults,
    Reset,
    Respond,
    Rule,
    Stall,
    Truncate,
    azure_error,
    s3_error,
)

REPO = Path(__file__).resolve().parents[1]
INSTALL_SCRIPT = REPO / "scripts" / "install-test-servers.sh"
NOT_INSTALLED = "test servers are not installed: run `make test-servers` (scripts/install-test-servers.sh)"
AZURITE_NOT_INSTALLED = (
    "Azurite (the Azure Storage emulator) is not installed: run `make test-servers` "
    "(scripts/install-test-servers.sh installs azurite 3.35.0 from the npm registry into .azurite; it needs "
    "Node.js and npm: `make system-deps` or `apt-get install nodejs npm`)"
)
#: Azurite's well-known development account and key (published in Azurite's README; not a secret).
AZURITE_ACCOUNT = "devstoreaccount1"
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
HOST = "127.0.0.1"
START_TIMEOUT_S = 60.0

# No proxies for loopback checks, whatever the environment says.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


# --------------------------------------------------------------------------------------------------
# The venv
# --------------------------------------------------------------------------------------------------


def servers_venv() -> Path:
    """Where the servers live: ``$TASKBOX_SERVERS_VENV`` or ``<repo>/.venv-servers``."""
    return Path(os.environ.get("TASKBOX_SERVERS_VENV") or REPO / ".venv-servers")


def servers_installed(venv: Path | None = None) -> bool:
    """True if the venv has both servers' entry points."""
    venv = venv or servers_venv()
    return (venv / "bin" / "moto_server").exists() and (venv / "bin" / "python").exists()


def install_servers(venv: Path | None = None) -> None:
    """Run scripts/install-test-servers.sh (idempotent); its output goes to the test log."""
    env = dict(os.environ, TASKBOX_SERVERS_VENV=str(venv or servers_venv()))
    subprocess.run(["bash", str(INSTALL_SCRIPT)], env=env, check=False, timeout=900)


def require_servers_venv(venv: Path | None = None) -> Path:
    """Return the servers venv, or fail the calling test with the install hint."""
    venv = venv or servers_venv()
    if not servers_installed(venv):
        pytest.fail(f"{NOT_INSTALLED} (looked in {venv})", pytrace=False)
    return venv


def azurite_dir() -> Path:
    """Where Azurite lives: ``$TASKBOX_AZURITE_DIR`` or ``<repo>/.azurite``."""
    return Path(os.environ.get("TASKBOX_AZURITE_DIR") or REPO / ".azurite")


def azurite_binary(directory: Path | None = None) -> Path:
    """The ``azurite-blob`` launcher npm installed."""
    return (directory or azurite_dir()) / "node_modules" / ".bin" / "azurite-blob"


def require_azurite(directory: Path | None = None, *, auto_install: bool = False) -> Path:
    """Return the ``azurite-blob`` launcher; install it first if asked, else fail the test with the hint."""
    binary = azurite_binary(directory)
    if not binary.exists() and auto_install:
        env = dict(os.environ, TASKBOX_AZURITE_DIR=str(directory or azurite_dir()))
        subprocess.run(["bash", str(INSTALL_SCRIPT)], env=env, check=False, timeout=900)
    if not binary.exists() or shutil.which("node") is None:
        pytest.fail(f"{AZURITE_NOT_INSTALLED} (looked for {binary})", pytrace=False)
    return binary


# --------------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


#: A server's first real request may load its backends (moto imports its S3 backend then): on a loaded CI
#: machine that took more than 2 s, and a bucket creation that timed out failed every S3 test of a worker.
FIRST_REQUEST_TIMEOUT_S = 60.0


def http_status(url: str, *, method: str = "GET", data: bytes | None = None, timeout: float = 2.0) -> int:
    """Status code of one request to a loopback URL (no proxies); 0 when nothing answers."""
    request = urllib.request.Request(url, method=method, data=data)
    try:
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return 0


@dataclass
class ServerProcess:
    """A server subprocess listening on ``host:port``."""

    name: str
    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    host: str = HOST

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return f"http://{self.host}:{self.port}"

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server's output."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout: float = 10.0) -> None:
        """Terminate the process (SIGTERM, then SIGKILL) and remove its log."""
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=timeout)
        try:
            self.log_path.unlink()
        except OSError:
            pass

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start_server(
    name: str,
    argv_for_port: Callable[[int], list[str]],
    ready_path: str,
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = START_TIMEOUT_S,
) -> ServerProcess:
    """Start a server on a free loopback port and wait until ``ready_path`` answers with a status < 500.

    Retries with a new port (up to three times) if the process dies early, which is what losing the
    race for a "free" port looks like.

    Args:
        name: For messages and the log file name.
        argv_for_port: Builds the command line for a port.
        ready_path: Path (with leading ``/``) polled with GET.
        env: Extra environment for the child.
        timeout: Seconds to wait for readiness.

    Returns:
        The running server.
    """
    child_env = dict(os.environ)
    child_env.update(env or {})
    failure = ""
    for _ in range(3):
        port = free_port()
        fd, log_name = tempfile.mkstemp(prefix=f"taskbox-{name}-", suffix=".log")
        log_path = Path(log_name)
        with os.fdopen(fd, "wb") as log_file:
            proc = subprocess.Popen(
                argv_for_port(port),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=child_env,
            )
        server = ServerProcess(name, proc, port, log_path)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and proc.poll() is None:
            if 0 < http_status(server.endpoint + ready_path, timeout=1.0) < 500:
                return server
            time.sleep(0.1)
        died = proc.poll() is not None
        failure = f"exit code {proc.returncode}" if died else f"no answer after {timeout:.0f} s"
        failure = f"{failure}; log:\n{server.log_tail()}"
        server.stop()
        if not died:
            break
    raise RuntimeError(f"{name} did not start ({failure})")


def start_moto(*, venv: Path | None = None, env: Mapping[str, str] | None = None) -> ServerProcess:
    """Start ``moto_server -H 127.0.0.1 -p PORT`` from the servers venv.

    Args:
        venv: Overrides :func:`servers_venv`.
        env: Extra environment, e.g. ``{"INITIAL_NO_AUTH_ACTION_COUNT": "5"}`` to make moto enforce IAM
            authentication and policies after the first five requests.
    """
    venv = require_servers_venv(venv)
    # Readiness is polled on moto's dashboard API: an S3 request there would use up one of the
    # INITIAL_NO_AUTH_ACTION_COUNT unauthenticated requests.
    return start_server(
        "moto",
        lambda port: [str(venv / "bin" / "moto_server"), "-H", HOST, "-p", str(port)],
        "/moto-api/data.json",
        env=env,
    )


def start_moto_with_bucket(bucket: str, *, venv: Path | None = None, attempts: int = 3) -> S3Server:
    """:func:`start_moto` and create ``bucket``; start again if the server exited before the bucket was made.

    Seen once in CI: moto answered its readiness check, then had exited (code 0) when the bucket was created,
    and every S3 test of that worker failed. The cause was not found; a server that is gone is replaced.
    """
    failure = ""
    for _ in range(attempts):
        process = start_moto(venv=venv)
        server = S3Server(process, bucket)
        try:
            server.create_bucket(bucket)
        except RuntimeError as exc:
            exited = process.proc.poll() is not None
            failure = f"{exc} (server exited: {exited}); log:\n{process.log_tail()}"
            process.stop()
            if not exited:
                break
            continue
        return server
    raise RuntimeError(failure)


def start_gcs_emulator(bucket: str, *, venv: Path | None = None) -> ServerProcess:
    """Start the in-memory GCS emulator with ``bucket`` created, from the servers venv."""
    venv = require_servers_venv(venv)
    python = str(venv / "bin" / "python")
    return start_server(
        "gcs-emulator",
        lambda port: [
            python,
            "-m",
            "gcp_storage_emulator",
            "start",
            "--host",
            HOST,
            "--port",
            str(port),
            "--in-memory",
            "--default-bucket",
            bucket,
        ],
        "/storage/v1/b",
    )


def start_azurite(location: Path, *, directory: Path | None = None) -> ServerProcess:
    """Start Azurite's blob service on 127.0.0.1 and a free port, keeping its data under ``location``.

    Only the blob service (``azurite-blob``); telemetry off; any API version accepted (the SDK may be newer
    than the emulator); no access log (``--silent``). Readiness: any answer to a listing (403 unsigned).

    Args:
        location: Azurite's workspace (created): its metadata database and blob extents.
        directory: Where Azurite is installed (:func:`azurite_dir` by default).

    Raises:
        pytest.fail: Azurite is not installed (with how to install it).
    """
    binary = require_azurite(directory)
    location.mkdir(parents=True, exist_ok=True)
    return start_server(
        "azurite",
        lambda port: [
            str(binary),
            "--blobHost",
            HOST,
            "--blobPort",
            str(port),
            "--location",
            str(location),
            "--skipApiVersionCheck",
            "--disableTelemetry",
            "--silent",
        ],
        f"/{AZURITE_ACCOUNT}?comp=list",
    )


#: Debian's CNCF distribution registry (package ``docker-registry``), installed by scripts/docker-engine.sh.
REGISTRY_BINARY = "docker-registry"
REGISTRY_NOT_INSTALLED = (
    "the container registry for the push/pull tests is not installed: run `make docker-engine` as root "
    "(scripts/docker-engine.sh installs Debian's docker-registry package), or `apt-get install docker-registry`"
)


def registry_binary() -> str | None:
    """The path of ``docker-registry``, or ``None`` when the package is not installed."""
    return shutil.which(REGISTRY_BINARY)


def start_registry(root: Path, *, auth: Mapping[str, Any] | None = None) -> ServerProcess:
    """Start the distribution registry on 127.0.0.1 and a free port, storing blobs under ``root``.

    The engine treats 127.0.0.0/8 registries as insecure, so it pushes and pulls over plain HTTP. Two
    registries started on the same ``root`` serve the same images (one may ask for tokens: ``auth``).

    Args:
        root: The filesystem storage's root directory (created).
        auth: The config's ``auth`` section (``{"token": {...}}``); none by default.

    Raises:
        pytest.fail: The registry is not installed (with how to install it).
    """
    binary = registry_binary()
    if binary is None:
        pytest.fail(REGISTRY_NOT_INSTALLED, pytrace=False)
    root.mkdir(parents=True, exist_ok=True)

    def argv(port: int) -> list[str]:
        config = {
            "version": 0.1,
            "log": {"level": "warn", "accesslog": {"disabled": True}},
            "storage": {"filesystem": {"rootdirectory": str(root)}, "delete": {"enabled": True}},
            "http": {"addr": f"{HOST}:{port}"},
            **({"auth": dict(auth)} if auth else {}),
        }
        path = root.with_name(f"{root.name}-registry-{port}.yml")
        path.write_text(json.dumps(config))  # JSON is YAML
        return [binary, "serve", str(path)]

    return start_server("registry", argv, "/v2/")


# --------------------------------------------------------------------------------------------------
# What the fixtures hand out
# --------------------------------------------------------------------------------------------------


@dataclass
class S3Server:
    """A running moto S3 server with a bucket, as handed out by the ``s3_server`` fixture.

    Attributes:
        process: The server process.
        bucket: The session bucket (exists).
        region: The region the env points at.
    """

    process: ServerProcess
    bucket: str
    region: str = "us-east-1"
    access_key: str = "testing"
    secret_key: str = "testing"

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self.process.endpoint

    @property
    def env(self) -> dict[str, str]:
        """Environment that points botocore/s3fs (in this process or a child) at this server."""
        return {
            "AWS_ENDPOINT_URL": self.endpoint,
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_DEFAULT_REGION": self.region,
            "AWS_EC2_METADATA_DISABLED": "true",
        }

    def uri(self, key: str = "") -> str:
        """``s3://BUCKET/KEY``."""
        return f"s3://{self.bucket}/{key.lstrip('/')}"

    def create_bucket(self, name: str) -> None:
        """Create a bucket (moto accepts an unsigned path-style PUT)."""
        status = http_status(f"{self.endpoint}/{name}", method="PUT", data=b"", timeout=FIRST_REQUEST_TIMEOUT_S)
        if status != 200:
            raise RuntimeError(f"creating bucket {name} on moto answered {status}")

    def client(self, service: str = "s3", **credentials: str) -> Any:
        """A botocore client for this server (default credentials: the session's)."""
        import botocore.session  # lazy: only tests that inspect the server need it

        return botocore.session.get_session().create_client(
            service,
            endpoint_url=self.endpoint,
            region_name=self.region,
            aws_access_key_id=credentials.get("key", self.access_key),
            aws_secret_access_key=credentials.get("secret", self.secret_key),
        )


@dataclass
class GCSServer:
    """A running GCS emulator with a bucket, as handed out by the ``gcs_server`` fixture."""

    process: ServerProcess
    bucket: str

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self.process.endpoint

    @property
    def env(self) -> dict[str, str]:
        """Environment that points gcsfs (in this process or a child) at the emulator."""
        return {"STORAGE_EMULATOR_HOST": self.endpoint, "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}

    def uri(self, key: str = "") -> str:
        """``gs://BUCKET/KEY``."""
        return f"gs://{self.bucket}/{key.lstrip('/')}"

    def create_bucket(self, name: str) -> None:
        """Create another bucket through the JSON API."""
        status = http_status(
            f"{self.endpoint}/storage/v1/b?project=test",
            method="POST",
            data=json.dumps({"name": name}).encode(),
            timeout=FIRST_REQUEST_TIMEOUT_S,
        )
        if status != 200:
            raise RuntimeError(f"creating bucket {name} on the GCS emulator answered {status}")


@dataclass
class AzureServer:
    """A running Azurite with a container, as handed out by the ``azure_server`` fixture.

    Attributes:
        process: The server process.
        container: The session container (exists).
        account: The storage account (Azurite's development account).
        key: The account's key.
    """

    process: ServerProcess
    container: str
    account: str = AZURITE_ACCOUNT
    key: str = AZURITE_KEY

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT``."""
        return self.process.endpoint

    @property
    def blob_endpoint(self) -> str:
        """The account's blob service URL, path-style: ``http://127.0.0.1:PORT/devstoreaccount1``."""
        return f"{self.endpoint}/{self.account}"

    def connection_string(self, *, endpoint: str | None = None, key: str | None = None) -> str:
        """A connection string for this account (another ``endpoint``, e.g. a proxy's, or a wrong ``key``)."""
        return (
            f"DefaultEndpointsProtocol=http;AccountName={self.account};AccountKey={key or self.key};"
            f"BlobEndpoint={(endpoint or self.endpoint).rstrip('/')}/{self.account};"
        )

    @property
    def env(self) -> dict[str, str]:
        """Environment that points adlfs/taskbox (in this process or a child) at Azurite."""
        return {"AZURE_STORAGE_CONNECTION_STRING": self.connection_string()}

    def uri(self, key: str = "") -> str:
        """``abfs://CONTAINER/KEY``."""
        return f"abfs://{self.container}/{key.lstrip('/')}"

    def client(self) -> Any:
        """A synchronous ``azure.storage.blob.BlobServiceClient`` for this account."""
        from azure.storage.blob import BlobServiceClient  # lazy: only tests that inspect the server need it

        return BlobServiceClient.from_connection_string(self.connection_string())

    def create_container(self, name: str) -> None:
        """Create a container (an existing one is fine)."""
        from azure.core.exceptions import ResourceExistsError

        try:
            self.client().create_container(name)
        except ResourceExistsError:
            pass
