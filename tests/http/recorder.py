"""A loopback HTTP server that records the exact bytes of each request it receives (standard library only).

Used on both sides of the webhook golden tests: tests/golden/make_webhook_fixtures.py records what
flytekit's ``WebhookConnector`` sends (run by flytekit's interpreter, so this module imports nothing
from taskbox), and tests/http/test_webhook_golden.py records what taskbox sends for the same template.

Each request is kept as its request line, its header lines (raw, in order) and its body bytes; the
server answers every request with the reply set on :attr:`Recorder.reply` and closes the connection.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

__all__ = ["Recorder", "Reply", "Request"]


class Reply:
    """What the server answers: status, extra headers, body."""

    def __init__(self, status: int = 200, body: bytes = b"ok", headers: list[tuple[str, str]] | None = None) -> None:
        self.status = status
        self.body = body
        self.headers = headers if headers is not None else [("Content-Type", "text/plain; charset=utf-8")]

    def to_json(self) -> dict[str, Any]:
        return {"status": self.status, "headers": [list(h) for h in self.headers], "body": self.body.decode("latin-1")}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Reply:
        return cls(doc["status"], doc["body"].encode("latin-1"), [(k, v) for k, v in doc["headers"]])

    def encode(self) -> bytes:
        lines = [f"HTTP/1.1 {self.status} Status"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        lines += [f"Content-Length: {len(self.body)}", "Connection: close", "", ""]
        return "\r\n".join(lines).encode("latin-1") + self.body


class Request:
    """One recorded request.

    Attributes:
        line: The request line (``GET /p?q=1 HTTP/1.1``), decoded as latin-1.
        headers: ``(name, value)`` pairs exactly as sent, in order (latin-1).
        body: The body bytes.
    """

    def __init__(self, line: str, headers: list[tuple[str, str]], body: bytes) -> None:
        self.line = line
        self.headers = headers
        self.body = body

    @property
    def method(self) -> str:
        return self.line.split(" ", 1)[0]

    @property
    def target(self) -> str:
        return self.line.split(" ")[1]

    def to_json(self) -> dict[str, Any]:
        return {"line": self.line, "headers": [f"{k}: {v}" for k, v in self.headers], "body": self.body.decode("utf-8")}


class Recorder:
    """A threaded TCP server on 127.0.0.1 (ephemeral port) recording every request."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.port = self.sock.getsockname()[1]
        self.requests: list[Request] = []
        self.reply = Reply()
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    @property
    def netloc(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _serve(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(30)
            data = b""
            while b"\r\n\r\n" not in data:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            line, *header_lines = head.decode("latin-1").split("\r\n")
            headers = [(n, v.strip(" \t")) for n, _, v in (h.partition(":") for h in header_lines)]
            length = next((int(v) for n, v in headers if n.lower() == "content-length"), 0)
            while len(body) < length:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                body += chunk
            self.requests.append(Request(line, headers, body))
            conn.sendall(self.reply.encode())

    def close(self) -> None:
        self._stop = True
        self.sock.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
