"""A fault-injecting HTTP reverse proxy on 127.0.0.1, for storage tests (asyncio, on a daemon thread).

Why: retry and commit logic is only proven by faults a real client meets on a real connection: 503
SlowDown and 500 InternalError answers, connections reset mid-request, response bodies cut short,
request bodies that reach the server only in part, and stalls. :class:`FaultProxy` sits between a
client (s3fs/aiobotocore, gcsfs, adlfs, urllib) and a loopback server (moto, the GCS emulator, Azurite) and applies
whatever its *rule* returns for each request: an action (:class:`Respond`, :class:`Reset`,
:class:`CutUpstream`, :class:`Truncate`, :class:`Stall`, :class:`Delay`) or ``None`` to forward it.
Rules: :class:`FailFirst` (the first N matching requests, deterministic) and :class:`RandomFaults` (a
seeded fraction of requests, each hit by a fault drawn from a mix, counted per kind).

The proxy speaks HTTP/1.1 to its clients: keep-alive connections, bodies framed by ``Content-Length`` or
``Transfer-Encoding: chunked``, and ``Expect: 100-continue`` (answered at once). Bodies are buffered,
then each request goes upstream on a fresh connection (``Connection: close``), so one client request
is exactly one upstream request and an upstream that closes after each answer (werkzeug) is fine.

Invariants:
    * The proxy binds 127.0.0.1 on a free port and forwards only to a loopback upstream.
    * :attr:`FaultProxy.requests` records ``(method, path)`` of every request the proxy received, in
      order, whatever the rule did with it.
    * A rule is called exactly once per request, on the proxy's event-loop thread; it may be replaced
      at any time (``proxy.rule = ...``).
    * ``stop()`` (or leaving the ``with`` block) closes the listener and every open connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import urlsplit

HOST = "127.0.0.1"
_READ_LIMIT = 1 << 20  # longest header block accepted
_LINGER_RST = struct.pack("ii", 1, 0)  # SO_LINGER on, 0 s: close() sends a TCP RST
_STALL_MAX_S = 60.0
_UPSTREAM_TIMEOUT_S = 60.0
_HOP_BY_HOP = frozenset(
    {
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
)


# --------------------------------------------------------------------------------------------------
# Requests and actions
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProxyRequest:
    """One request seen by the proxy (``number`` counts from 1 over the proxy's life)."""

    number: int
    method: str
    path: str
    headers: Mapping[str, str]

    def header(self, name: str, default: str = "") -> str:
        """A header's value, looked up case-insensitively."""
        lowered = name.lower()
        return next((v for k, v in self.headers.items() if k.lower() == lowered), default)

    @property
    def has_body(self) -> bool:
        """True when the request carries a body (a non-zero ``Content-Length`` or a chunked one)."""
        return "chunked" in self.header("Transfer-Encoding").lower() or int(self.header("Content-Length") or 0) > 0


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
    """Forward, then return the response cut short and close.

    The client gets the full headers (with the full ``Content-Length``) and the first half of the body;
    a response without a body (HEAD, an empty PUT answer) is cut inside its headers instead.
    """


@dataclass(frozen=True)
class Delay:
    """Hold the request for ``seconds``, then forward it (a slow server, not a failure)."""

    seconds: float


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


Action = Respond | Reset | CutUpstream | Truncate | Delay | Stall
Rule = Callable[[ProxyRequest], "Action | None"]


def s3_error(status: int = 503, code: str = "SlowDown", message: str = "Please reduce your request rate.") -> Respond:
    """An S3-style XML error response."""
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code><Message>{message}</Message>'
        f"<RequestId>proxy</RequestId></Error>"
    ).encode()
    return Respond(status, body, {"Content-Type": "application/xml"})


def azure_error(status: int = 503, code: str = "ServerBusy", message: str = "The server is busy.") -> Respond:
    """An Azure Storage error response: the XML body and the ``x-ms-error-code`` header (HEAD answers have no body)."""
    body = (
        f'<?xml version="1.0" encoding="utf-8"?>\n<Error><Code>{code}</Code><Message>{message}\n'
        f"RequestId:proxy</Message></Error>"
    ).encode()
    return Respond(status, body, {"Content-Type": "application/xml", "x-ms-error-code": code})


# --------------------------------------------------------------------------------------------------
# Rules
# --------------------------------------------------------------------------------------------------


class _Matcher:
    def __init__(self, method: str | None, path_contains: str | None) -> None:
        self.method = method
        self.path_contains = path_contains
        self._lock = threading.Lock()

    def matches(self, request: ProxyRequest) -> bool:
        if self.method and request.method != self.method:
            return False
        return not (self.path_contains and self.path_contains not in request.path)


class FailFirst(_Matcher):
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
        super().__init__(method, path_contains)
        self.count = count
        self.action = action
        self.hits = 0

    def __call__(self, request: ProxyRequest) -> Action | None:
        if not self.matches(request):
            return None
        with self._lock:
            if self.count is not None and self.hits >= self.count:
                return None
            self.hits += 1
        return self.action


def _truncated(request: ProxyRequest, rng: random.Random) -> Action:
    # A request with a body loses its second half on the way up, or arrives whole and loses its answer
    # (the write happened, the client cannot know); any other request loses half its answer.
    if request.has_body and rng.random() < 0.5:
        return CutUpstream(after_bytes=int(request.header("Content-Length") or 0) // 2)
    return Truncate()


FaultKind = Callable[[ProxyRequest, random.Random], Action]
# What fails on the way whatever the server: a reset, a body cut short, a stall.
_TRANSPORT_FAULTS: dict[str, FaultKind] = {
    "reset": lambda request, rng: Reset(),
    "truncated body": _truncated,
    "stall": lambda request, rng: Delay(rng.uniform(0.5, 1.0)),
}
# Fault kinds of RandomFaults: name -> how to build the action for a request. S3's service errors (the default).
FAULTS: dict[str, FaultKind] = {
    "503 SlowDown": lambda request, rng: s3_error(503, "SlowDown"),
    "500 InternalError": lambda request, rng: s3_error(500, "InternalError", "We encountered an internal error."),
    **_TRANSPORT_FAULTS,
}
# Azure Storage's: throttling, an internal error, an operation that timed out on the server.
AZURE_FAULTS: dict[str, FaultKind] = {
    "503 ServerBusy": lambda request, rng: azure_error(503, "ServerBusy"),
    "500 InternalError": lambda request, rng: azure_error(
        500, "InternalError", "The server encountered an internal error. Please retry the request."
    ),
    "500 OperationTimedOut": lambda request, rng: azure_error(
        500, "OperationTimedOut", "Operation could not be completed within the specified time."
    ),
    **_TRANSPORT_FAULTS,
}


class RandomFaults(_Matcher):
    """A rule: hit a seeded fraction of the matching requests with a fault drawn from a mix.

    The draws come from one ``random.Random(seed)`` in request order, so a client that sends its
    requests one at a time meets the same faults on every run with the same seed.

    Args:
        rate: Probability that a matching request is hit (0 to 1).
        seed: Seed of the draws.
        actions: Names of the fault kinds to draw from (keys of ``faults``; default: all of them). In
            :data:`FAULTS`: ``"503 SlowDown"``, ``"500 InternalError"``, ``"reset"``, ``"truncated body"``
            (the response cut short, or, for half of the requests with a body, the body cut on the way up)
            and ``"stall"`` (0.5-1 s, then forwarded); :data:`AZURE_FAULTS` has Azure's errors instead of
            S3's (``"503 ServerBusy"``, ``"500 InternalError"``, ``"500 OperationTimedOut"``).
        faults: The fault kinds by name (:data:`FAULTS`, S3's errors; :data:`AZURE_FAULTS`).
        method: Only requests with this method match (``None``: any).
        path_contains: Only requests whose path contains this text match.

    Attributes:
        injected: How many faults of each kind were injected so far.
    """

    def __init__(
        self,
        rate: float,
        seed: int,
        actions: Sequence[str] | None = None,
        *,
        faults: Mapping[str, FaultKind] = FAULTS,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        super().__init__(method, path_contains)
        actions = tuple(faults) if actions is None else tuple(actions)
        unknown = sorted(set(actions) - set(faults))
        if unknown or not actions:
            raise ValueError(f"unknown fault kinds {unknown}; choose from {sorted(faults)}")
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, not {rate}")
        self.rate = rate
        self.seed = seed
        self.actions = actions
        self.faults = faults
        self.injected: Counter[str] = Counter()
        self._random = random.Random(seed)

    @property
    def total(self) -> int:
        """Faults injected so far, all kinds together."""
        with self._lock:
            return sum(self.injected.values())

    def __call__(self, request: ProxyRequest) -> Action | None:
        if not self.matches(request):
            return None
        with self._lock:
            if self._random.random() >= self.rate:
                return None
            kind = self._random.choice(self.actions)
            self.injected[kind] += 1
            return self.faults[kind](request, self._random)


# --------------------------------------------------------------------------------------------------
# HTTP/1.1 framing
# --------------------------------------------------------------------------------------------------


class _Malformed(Exception):
    """The peer sent something that is not HTTP/1.x."""


@dataclass
class _Message:
    """A parsed request (``start`` = method, target, version) or response (version, status, reason) head."""

    start: tuple[str, str, str]
    headers: list[tuple[str, str]]

    def header(self, name: str) -> str:
        lowered = name.lower()
        return next((v for k, v in self.headers if k.lower() == lowered), "")

    @property
    def chunked(self) -> bool:
        return "chunked" in self.header("Transfer-Encoding").lower()


async def _read_head(reader: asyncio.StreamReader) -> _Message | None:
    """Read one message head; None on a clean end of the connection before it."""
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if not exc.partial.strip():
            return None
        raise _Malformed("connection closed inside a message head") from exc
    except asyncio.LimitOverrunError as exc:
        raise _Malformed("message head too long") from exc
    lines = raw.decode("latin-1").lstrip("\r\n").split("\r\n")
    parts = lines[0].split(" ", 2)
    if len(parts) < 2:
        raise _Malformed(f"bad start line {lines[0]!r}")
    headers = []
    for line in lines[1:]:
        if line:
            name, sep, value = line.partition(":")
            if not sep:
                raise _Malformed(f"bad header line {line!r}")
            headers.append((name.strip(), value.strip()))
    return _Message((parts[0], parts[1], parts[2] if len(parts) > 2 else ""), headers)


async def _read_body(reader: asyncio.StreamReader, message: _Message, *, until_eof: bool = False) -> bytes:
    """Read a body framed by chunked encoding or ``Content-Length`` (or, for responses, by the close)."""
    if message.chunked:
        chunks = []
        while True:
            size = int((await reader.readline()).split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while await reader.readline() not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                return b"".join(chunks)
            chunks.append(await reader.readexactly(size))
            await reader.readline()
    length = message.header("Content-Length")
    if length:
        return await reader.readexactly(int(length))
    return await reader.read() if until_eof else b""


async def _read_up_to(reader: asyncio.StreamReader, count: int) -> bytes:
    """Up to ``count`` bytes: fewer when the peer closes or resets first."""
    try:
        return await reader.readexactly(count)
    except asyncio.IncompleteReadError as exc:
        return exc.partial
    except OSError:
        return b""


def _head_bytes(status: int, headers: Sequence[tuple[str, str]], length: int, *, close: bool) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {status} {reason}"]
    lines += [f"{name}: {value}" for name, value in headers if name.lower() not in _HOP_BY_HOP]
    lines.append(f"Content-Length: {length}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with a TCP RST instead of a FIN."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_RST)
    writer.transport.abort()


# --------------------------------------------------------------------------------------------------
# The proxy
# --------------------------------------------------------------------------------------------------


@dataclass
class _Upstream:
    status: int
    headers: list[tuple[str, str]]
    body: bytes


class FaultProxy:
    """An HTTP reverse proxy on 127.0.0.1 that injects faults chosen by a rule (asyncio on a daemon thread).

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
        self._connections: set[asyncio.Task[None]] = set()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        self._server = asyncio.run_coroutine_threadsafe(self._listen(), self._loop).result(timeout=10)
        self._port = self._server.sockets[0].getsockname()[1]

    @property
    def endpoint(self) -> str:
        """``http://127.0.0.1:PORT`` of the proxy."""
        return f"http://{HOST}:{self._port}"

    def stop(self) -> None:
        """Stop serving, close every connection and the event loop."""
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- event-loop side -------------------------------------------------------------------------

    async def _listen(self) -> asyncio.Server:
        return await asyncio.start_server(self._serve, HOST, 0, limit=_READ_LIMIT)

    async def _shutdown(self) -> None:
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()

    def _record(self, message: _Message) -> ProxyRequest:
        method, path, _ = message.start
        with self._lock:
            self.requests.append((method, path))
            return ProxyRequest(len(self.requests), method, path, dict(message.headers))

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client connection: requests one after another while both sides keep it alive."""
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                message = await _read_head(reader)
                if message is None or not await self._handle(message, reader, writer):
                    break
        except (OSError, asyncio.IncompleteReadError, _Malformed, ValueError):
            pass  # the client went away or spoke garbage: drop the connection
        except asyncio.CancelledError:
            pass  # stop(): end quietly (Python 3.11's start_server logs a handler task that ends cancelled)
        finally:
            self._connections.discard(task)
            if not writer.transport.is_closing():
                writer.close()

    async def _handle(self, message: _Message, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; True when the connection stays open for the next one."""
        request = self._record(message)
        rule = self.rule
        action = rule(request) if rule else None
        version, connection = message.start[2], message.header("Connection").lower()
        keep_alive = "keep-alive" in connection if version == "HTTP/1.0" else "close" not in connection
        head_only = request.method == "HEAD"
        if message.header("Expect").lower() == "100-continue":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if isinstance(action, Reset):
            _reset(writer)
            return False
        if isinstance(action, CutUpstream):
            await self._cut_upstream(message, reader, writer, action.after_bytes)
            return False
        if isinstance(action, Stall):
            return await self._stall(message, reader, writer, action, keep_alive)
        body = await _read_body(reader, message)
        if isinstance(action, Respond):
            writer.write(
                _head_bytes(action.status, list(action.headers.items()), len(action.body), close=not keep_alive)
            )
            if not head_only:
                writer.write(action.body)
            await writer.drain()
            return keep_alive
        if isinstance(action, Delay):
            await asyncio.sleep(action.seconds)
        answer = await self._forward(message, body)
        if isinstance(action, Truncate):
            head = _head_bytes(answer.status, answer.headers, len(answer.body), close=True)
            writer.write(head + answer.body[: len(answer.body) // 2] if answer.body else head[: len(head) // 2])
            await writer.drain()
            return False
        await self._send(writer, answer, head_only=head_only, close=not keep_alive)
        return keep_alive

    async def _send(self, writer: asyncio.StreamWriter, answer: _Upstream, *, head_only: bool, close: bool) -> None:
        length = len(answer.body)
        if head_only:  # the upstream's Content-Length describes the body a GET would get
            length = int(next((v for k, v in answer.headers if k.lower() == "content-length"), "0") or 0)
        writer.write(_head_bytes(answer.status, answer.headers, length, close=close))
        if not head_only:
            writer.write(answer.body)
        await writer.drain()

    async def _forward(self, message: _Message, body: bytes) -> _Upstream:
        """Send the request upstream on a new connection and read the whole answer."""
        method, target, _ = message.start
        reader, writer = await asyncio.open_connection(self.upstream_host, self.upstream_port, limit=_READ_LIMIT)
        try:
            lines = [f"{method} {target} HTTP/1.1"]
            lines += [f"{k}: {v}" for k, v in message.headers if k.lower() not in _HOP_BY_HOP]
            lines += [f"Content-Length: {len(body)}", "Connection: close"]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
            async with asyncio.timeout(_UPSTREAM_TIMEOUT_S):
                while True:
                    head = await _read_head(reader)
                    if head is None:
                        raise ConnectionResetError("the upstream closed without answering")
                    status = int(head.start[1])
                    if status >= 200:
                        break  # skip interim 1xx answers
                no_body = method == "HEAD" or status in (204, 304)
                payload = b"" if no_body else await _read_body(reader, head, until_eof=True)
            return _Upstream(status, head.headers, payload)
        finally:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def _cut_upstream(
        self, message: _Message, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, after_bytes: int
    ) -> None:
        method, target, _ = message.start
        if message.chunked:
            partial = (await _read_body(reader, message))[:after_bytes]
        else:
            partial = await _read_up_to(reader, min(int(message.header("Content-Length") or 0), after_bytes))
        _, up = await asyncio.open_connection(self.upstream_host, self.upstream_port)
        lines = [f"{method} {target} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in message.headers if k.lower() not in ("expect", "transfer-encoding")]
        up.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + partial)
        with contextlib.suppress(OSError):
            await up.drain()
        await asyncio.sleep(0.05)
        _reset(up)
        _reset(writer)

    async def _stall(
        self,
        message: _Message,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        action: Stall,
        keep_alive: bool,
    ) -> bool:
        try:
            length = int(message.header("Content-Length") or 0)
            body = await _read_up_to(reader, min(length, action.after_bytes))
            action.stalled.set()
            deadline = asyncio.get_running_loop().time() + _STALL_MAX_S
            while not action.release.is_set() and asyncio.get_running_loop().time() < deadline:
                await asyncio.sleep(0.02)
            if len(body) < length:
                body += await _read_up_to(reader, length - len(body))
            if len(body) < length:
                action.outcome.append("client gave up")
                return False
            answer = await self._forward(message, body)
            action.outcome.append("forwarded")
            await self._send(writer, answer, head_only=message.start[0] == "HEAD", close=not keep_alive)
            return keep_alive
        finally:
            action.finished.set()
