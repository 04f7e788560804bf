"""A loopback HTTP server that lies about sizes, redirects and validators, for the cap and cache tests.

Routes (``/<name>``), each a :class:`Route`: the HEAD answer's headers, the GET body (generated lazily
so a huge body costs nothing unless read), how its length is announced (``content-length`` with a
given value, ``chunked``, or ``close``: no length, the body ends when the connection closes),
an optional redirect, and ETag/Last-Modified headers. The server counts requests and bytes sent per
route, and whether each GET body was sent whole.
"""

from __future__ import annotations

import http.server
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

CHUNK = 64 * 1024


@dataclass
class Route:
    """One URL's behaviour."""

    body: Callable[[], Iterator[bytes]] = lambda: iter([b""])
    head_length: int | None = None  # Content-Length in the HEAD answer (None: none)
    framing: str = "content-length"  # "content-length" | "chunked" | "close"
    get_length: int | None = None  # Content-Length announced on GET (framing content-length)
    redirect: str | None = None
    etag: str | None = None
    last_modified: str | None = None
    fail_first: int = 0  # answer this many GETs with 503 first
    close: bool = False  # close the connection after the body (a body shorter than announced is truncated)


@dataclass
class Stats:
    requests: list[tuple[str, str]] = field(default_factory=list)
    sent: dict[str, int] = field(default_factory=dict)
    completed: dict[str, bool] = field(default_factory=dict)


def repeated(total: int, byte: bytes = b"x") -> Callable[[], Iterator[bytes]]:
    """A body of ``total`` bytes, generated in chunks."""

    def gen() -> Iterator[bytes]:
        left = total
        while left > 0:
            n = min(CHUNK, left)
            left -= n
            yield byte * n

    return gen


def fixed(data: bytes) -> Callable[[], Iterator[bytes]]:
    return lambda: iter([data])


class LyingServer:
    """``with LyingServer(routes) as srv: srv.url("name")``."""

    def __init__(self, routes: dict[str, Route]) -> None:
        self.routes = routes
        self.stats = Stats()
        stats, table = self.stats, routes

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _route(self) -> Route | None:
                name = self.path.lstrip("/").split("?")[0]
                stats.requests.append((self.command, name))
                route = table.get(name)
                if route is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                if route.redirect is not None:
                    self.send_response(302)
                    self.send_header("Location", route.redirect)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                return route

            def _headers(self, route: Route, length: int | None, chunked: bool) -> None:
                self.send_response(200)
                if route.etag:
                    self.send_header("ETag", route.etag)
                if route.last_modified:
                    self.send_header("Last-Modified", route.last_modified)
                if chunked:
                    self.send_header("Transfer-Encoding", "chunked")
                elif length is not None:
                    self.send_header("Content-Length", str(length))
                else:
                    self.send_header("Connection", "close")
                self.end_headers()

            def do_HEAD(self) -> None:
                route = self._route()
                if route is not None:
                    self._headers(route, route.head_length, False)
                    if route.head_length is None:
                        self.close_connection = True

            def do_GET(self) -> None:
                route = self._route()
                if route is None:
                    return
                name = self.path.lstrip("/").split("?")[0]
                if route.fail_first > 0:
                    route.fail_first -= 1
                    self.send_response(503)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                chunked = route.framing == "chunked"
                length = route.get_length if route.framing == "content-length" else None
                self._headers(route, length, chunked)
                stats.sent[name] = 0
                stats.completed[name] = False
                try:
                    for part in route.body():
                        if chunked:
                            self.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
                        else:
                            self.wfile.write(part)
                        stats.sent[name] += len(part)
                    if chunked:
                        self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                    stats.completed[name] = True
                except (BrokenPipeError, ConnectionResetError):
                    pass
                if route.framing == "close" or route.close:
                    self.close_connection = True

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def url(self, name: str) -> str:
        return f"{self.base}/{name}"

    def __enter__(self) -> LyingServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def lying_server(routes: dict[str, Route]) -> Iterator[LyingServer]:
    with LyingServer(routes) as server:
        yield server
