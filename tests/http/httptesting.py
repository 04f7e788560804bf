"""A programmable HTTP/1.1 server on 127.0.0.1 for the HTTP executor's tests (standard library only).

Routes (all record the request in ``server.requests``):
    /echo...            200, JSON {method, path, query, headers, body}
    /status/<code>      that status; the body echoes the request headers (as a careless server would)
    /escaped/<code>     that status; the request headers as JSON with every non-alphanumeric character
                        escaped (``\\u002b``, ``\\/``), as some JSON encoders do
    /flaky/<n>/<key>    503 with ``Retry-After: 0`` for the first n requests of <key>, then /echo
    /redirect?to=&code= a redirect to ``to``
    /pages/link?page=   3 pages of items with ``Link: rel="next"``
    /pages/cursor?cursor= 3 pages with a ``next`` cursor in the body
    /big?n=             n bytes of ``x``
    /gzip?n=            n zero bytes, gzip-encoded (a small "bomb")
    /json               a fixed JSON document
    /slow?s=            /echo after s seconds
"""

from __future__ import annotations

import contextlib
import gzip
import http.server
import json
import sys
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit

DOC = {"id": 42, "name": "widget", "tags": ["a", "b"], "nested": {"price": 9.5, "ok": True}, "a/b": "slash"}
PAGE_ITEMS = {1: [{"n": 1}, {"n": 2}], 2: [{"n": 3}], 3: [{"n": 4}, {"n": 5}]}


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body are separate writes; avoid the 40 ms delayed-ACK stall

    def log_message(self, *args: object) -> None:  # quiet
        pass

    def _reply(
        self, status: int, body: bytes, headers: dict[str, str] | None = None, ctype: str = "application/json"
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        parts = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        server = self.server
        server.requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body})
        segs = parts.path.strip("/").split("/")
        echo = json.dumps(
            {
                "method": self.command,
                "path": parts.path,
                "raw_path": self.path,
                "query": query,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("utf-8", "replace"),
            }
        ).encode()
        if segs[0] == "status":
            self._reply(int(segs[1]), json.dumps(dict(self.headers)).encode())
        elif segs[0] == "escaped":
            text = json.dumps(dict(self.headers))
            escaped = "".join(
                c if c.isalnum() or c in '{}":, ' else ("\\/" if c == "/" else f"\\u{ord(c):04X}") for c in text
            )
            self._reply(int(segs[1]), escaped.encode())
        elif segs[0] == "flaky":
            n, key = int(segs[1]), segs[2]
            server.counters[key] += 1
            if server.counters[key] <= n:
                self._reply(503, b'{"error":"busy"}', {"Retry-After": query.get("after", "0")})
            else:
                self._reply(200, echo)
        elif segs[0] == "redirect":
            self._reply(int(query.get("code", "302")), b"", {"Location": query["to"]})
        elif segs[0] == "pages" and segs[1] == "link":
            page = int(query.get("page", "1"))
            headers = {"Link": f'<{parts.path}?page={page + 1}>; rel="next"'} if page < 3 else {}
            self._reply(200, json.dumps({"items": PAGE_ITEMS[page]}).encode(), headers)
        elif segs[0] == "pages" and segs[1] == "cursor":
            page = int(query.get("cursor") or "1")
            self._reply(
                200,
                json.dumps({"data": {"items": PAGE_ITEMS[page]}, "next": str(page + 1) if page < 3 else None}).encode(),
            )
        elif segs[0] == "big":
            self._reply(200, b"x" * int(query["n"]), ctype="application/octet-stream")
        elif segs[0] == "gzip":
            self._reply(
                200, gzip.compress(b"\0" * int(query["n"])), {"Content-Encoding": "gzip"}, "application/octet-stream"
            )
        elif segs[0] == "slow":
            time.sleep(float(query.get("s", "1")))
            self._reply(200, echo)
        elif segs[0] == "json":
            self._reply(200, json.dumps(DOC).encode())
        else:
            self._reply(200, echo)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _handle


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[dict] = []
        self.counters: defaultdict[str, int] = defaultdict(int)
        self.connections = 0

    def get_request(self):  # count TCP connections (connection reuse check)
        conn = super().get_request()
        self.connections += 1
        return conn

    def handle_error(self, request, client_address):  # a client that timed out and left is expected
        if not isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            super().handle_error(request, client_address)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def start() -> Server:
    server = Server()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


@contextlib.contextmanager
def running() -> Iterator[Server]:
    """A test server for the duration of a ``with`` block (started, then shut down and closed)."""
    srv = start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()
