"""Real storage servers for tests, on 127.0.0.1 only: moto's S3 server, the GCS emulator, a fault proxy.

Why: storage code is only trustworthy against servers that speak the real protocols (signing, XML and
JSON error bodies, multipart uploads, connection handling), not mocks of the client library. moto and
gcp-storage-emulator run as subprocesses from their own virtual environment, because moto[server]
needs a botocore newer than the one s3fs's aiobotocore pins (shared/docs/test-environment.md, 4).
:class:`FaultProxy` sits between a client and a server to inject 503 SlowDown, resets, truncated
responses, requests cut off upstream and stalled uploads (``Respond``, ``Reset``, ``Truncate``,
``CutUpstream``, ``Stall``, applied by a rule such as :class:`FailFirst`).

Invariants:
    * Every socket binds 127.0.0.1, never 0.0.0.0; every port is a free one picked at start.
    * A missing server venv is a test *failure* with the install hint, never a skip.
    * Servers are stopped by whoever started them (``stop()`` / context manager); their output goes to
      a log file whose tail is shown when a server fails to start.

Usage (the session fixtures in tests/conftest.py do this once per run)::

    with start_moto() as proc:
        s3 = S3Server(proc, bucket="b"); s3.create_bucket("b"); os.environ.update(s3.env)
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTALL_SCRIPT = REPO / "scripts" / "install-test-servers.sh"
NOT_INSTALLED = "test servers are not installed: run `make test-servers` (scripts/install-test-servers.sh)"
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


# --------------------------------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return sock.getsockname()[1]


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
        status = http_status(f"{self.endpoint}/{name}", method="PUT", data=b"")
        if status != 200:
            raise RuntimeError(f"creating bucket {name} on moto answered {status}")

    def client(self, service: str = "s3", **credentials: str) -> Any:
        """A botocore client for this server (default credentials: the session's)."""
        import botocore.session  # noqa: PLC0415 - only tests that inspect the server need it

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
            f"{self.endpoint}/storage/v1/b?project=test", method="POST", data=json.dumps({"name": name}).encode()
        )
        if status != 200:
            raise RuntimeError(f"creating bucket {name} on the GCS emulator answered {status}")


# --------------------------------------------------------------------------------------------------
# Fault proxy
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProxyRequest:
    """One request seen by the proxy (``number`` counts from 1 over the proxy's life)."""

    number: int
    method: str
    path: str
    headers: Mapping[str, str]


@dataclass(frozen=True)
class Respond:
    """Answer with this status and body instead of forwarding."""

    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Reset:
    """Reset the client's connection (TCP RST) without answering or forwarding."""


@dataclass(frozen=True)
class CutUpstream:
    """Forward the headers and the first ``after_bytes`` of the body upstream, then drop both sides."""

    after_bytes: int


@dataclass(frozen=True)
class Truncate:
    """Forward, then return the response headers and only the first half of the body, then close."""


@dataclass(frozen=True)
class Stall:
    """Read ``after_bytes`` of the body, set ``stalled``, and wait for ``release`` before reading the rest.

    Models a slow upload that the client abandons. If the client closed the connection meanwhile (the
    body comes up short), nothing is forwarded; otherwise the request goes upstream as usual.
    ``outcome`` then holds ``"client gave up"`` or ``"forwarded"`` and ``finished`` is set.
    """

    after_bytes: int
    stalled: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)
    release: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)
    finished: threading.Event = field(default_factory=threading.Event, compare=False, repr=False)
    outcome: list[str] = field(default_factory=list, compare=False, repr=False)


Action = Respond | Reset | CutUpstream | Truncate | Stall
Rule = Callable[[ProxyRequest], "Action | None"]


def s3_error(status: int = 503, code: str = "SlowDown", message: str = "Please reduce your request rate.") -> Respond:
    """An S3-style XML error response."""
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
        f"<RequestId>proxy</RequestId></Error>"
    ).encode()
    return Respond(status, body, {"Content-Type": "application/xml"})


class FailFirst:
    """A rule: apply ``action`` to the first ``count`` matching requests, then pass everything through.

    Args:
        count: How many matching requests to fail (``None``: all of them).
        action: What to do to them.
        method: Only requests with this method match (``None``: any).
        path_contains: Only requests whose path contains this text match.
    """

    def __init__(
        self, count: int | None, action: Action, *, method: str | None = None, path_contains: str | None = None
    ) -> None:
        self.count = count
        self.action = action
        self.method = method
        self.path_contains = path_contains
        self.hits = 0
        self._lock = threading.Lock()

    def __call__(self, request: ProxyRequest) -> Action | None:
        if self.method and request.method != self.method:
            return None
        if self.path_contains and self.path_contains not in request.path:
            return None
        with self._lock:
            if self.count is not None and self.hits >= self.count:
                return None
            self.hits += 1
        return self.action


_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "expect",
    "content-length",
}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive like a real S3 endpoint; also answers Expect: 100-continue
    server: _ProxyServer

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        self._proxy()

    do_PUT = do_POST = do_DELETE = do_HEAD = do_PATCH = do_GET  # noqa: N815

    def _read_body(self, limit: int | None = None) -> bytes:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length if limit is None else min(length, limit))

    def _reset(self) -> None:
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            self.connection.close()
        except OSError:
            pass

    def _proxy(self) -> None:
        proxy = self.server.owner
        request = proxy._record(self.command, self.path, dict(self.headers.items()))
        action = proxy.rule(request) if proxy.rule else None
        if isinstance(action, Reset):
            self._reset()
            return
        if isinstance(action, CutUpstream):
            self._cut_upstream(action.after_bytes)
            return
        if isinstance(action, Stall):
            self._stall(action)
            return
        body = self._read_body()
        if isinstance(action, Respond):
            self._send(action.status, dict(action.headers), action.body, head=self.command == "HEAD")
            return
        status, headers, payload = proxy._forward(self.command, self.path, self.headers, body)
        if isinstance(action, Truncate):
            self.send_response(status)
            for name, value in headers:
                if name.lower() not in _HOP_BY_HOP:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload[: len(payload) // 2])
            self.wfile.flush()
            self.close_connection = True
            return
        self._send(status, headers, payload, head=self.command == "HEAD")

    def _send(self, status: int, headers: Any, body: bytes, *, head: bool = False) -> None:
        items = headers.items() if isinstance(headers, dict) else headers
        self.send_response(status)
        length = None
        for name, value in items:
            if name.lower() == "content-length":
                length = value
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(length if head and length is not None else len(body)))
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _stall(self, action: Stall) -> None:
        proxy = self.server.owner
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, action.after_bytes))
        action.stalled.set()
        action.release.wait(timeout=60)
        try:
            while len(body) < length:
                chunk = self.rfile.read(min(length - len(body), 1 << 20))
                if not chunk:
                    break
                body += chunk
        except OSError:
            pass
        try:
            if len(body) < length:
                action.outcome.append("client gave up")
                self.close_connection = True
                return
            status, headers, payload = proxy._forward(self.command, self.path, self.headers, body)
            action.outcome.append("forwarded")
            self._send(status, headers, payload)
        except OSError:
            self.close_connection = True
        finally:
            action.finished.set()

    def _cut_upstream(self, after_bytes: int) -> None:
        proxy = self.server.owner
        partial = self._read_body(limit=after_bytes)
        with socket.create_connection((proxy.upstream_host, proxy.upstream_port), timeout=10) as up:
            lines = [f"{self.command} {self.path} HTTP/1.1"]
            lines += [f"{k}: {v}" for k, v in self.headers.items() if k.lower() not in ("expect", "transfer-encoding")]
            up.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + partial)
            time.sleep(0.05)
            up.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        self._reset()

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    owner: FaultProxy


class FaultProxy:
    """A threaded HTTP reverse proxy on 127.0.0.1 that injects faults chosen by a rule.

    Point a client's endpoint at :attr:`endpoint`; requests go to ``upstream`` unless ``rule``
    returns an action for them. :attr:`requests` records ``(method, path)`` of every request.

    Args:
        upstream: ``http://127.0.0.1:PORT`` of the real server.
        rule: Called for each request; returns an :data:`Action` or ``None`` to forward it.
    """

    def __init__(self, upstream: str, rule: Rule | None = None) -> None:
        parts = urlsplit(upstream)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"the fault proxy only forwards to loopback, not {upstream}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.rule = rule
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = _ProxyServer((HOST, 0), _Handler)
        self._server.owner = self
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` of the proxy."""
        return f"http://{HOST}:{self._server.server_address[1]}"

    def _record(self, method: str, path: str, headers: dict[str, str]) -> ProxyRequest:
        with self._lock:
            self.requests.append((method, path))
            return ProxyRequest(len(self.requests), method, path, headers)

    def _forward(self, method: str, path: str, headers: Any, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        import http.client  # noqa: PLC0415

        conn = http.client.HTTPConnection(self.upstream_host, self.upstream_port, timeout=30)
        try:
            out = {k: v for k, v in headers.items() if k.lower() not in _HOP_BY_HOP}
            out["Content-Length"] = str(len(body))
            conn.request(method, path, body=body, headers=out)
            response = conn.getresponse()
            payload = response.read()
            return response.status, response.getheaders(), payload
        finally:
            conn.close()

    def stop(self) -> None:
        """Stop serving and close the listening socket."""
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
