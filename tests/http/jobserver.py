"""A job service on 127.0.0.1 for the ``http-job`` tests (standard library only): submit, poll, cancel.

Routes:
    POST   /jobs              submit; body JSON ``{"polls": N, "outcome": "succeeded"|"failed", "message": ...,
                              "result": ...}``; ``polls`` GETs later the job takes ``outcome`` (no ``polls``:
                              it runs until the test calls :meth:`JobServer.finish`) -> 201 ``{"job": {"id": ...}}``;
                              ``"id"`` in the body names the job (a hostile server's id), ``"fields"`` adds
                              fields to the answer's ``job``. An ``Idempotency-Key`` already seen answers
                              the job it created (200), creating nothing. While ``hold`` is set the
                              answer waits (the job exists; the client has not heard back).
    GET    /jobs/<id>         ``{"id", "state", "message", "result", "console"}``; 404 for an unknown job
    GET    /jobs/<id>/result  ``{"result": ...}``
    DELETE /jobs/<id>         the job becomes ``cancelled`` (a finished job stays as it is) -> 200; 404 if unknown

Everything is recorded: ``submissions`` (bodies, headers, idempotency key), ``cancels`` (ids), ``polls``
(per id), ``seen`` (method, raw request path and headers of every request).
States go ``queued`` -> ``running`` (first poll) -> ``succeeded``/``failed``/``cancelled``.
"""

from __future__ import annotations

import contextlib
import http.server
import itertools
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args: object) -> None:
        pass

    def _reply(self, status: int, doc: Any) -> None:
        body = json.dumps(doc).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> Any:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        return json.loads(raw) if raw else None

    def _record(self) -> None:
        server: JobServer = self.server  # type: ignore[assignment]
        with server.lock:
            server.seen.append((self.command, self.path, dict(self.headers)))

    def do_POST(self) -> None:
        server: JobServer = self.server  # type: ignore[assignment]
        self._record()
        body = self._body() or {}
        if self.path.rstrip("/") != "/jobs":
            self._reply(404, {"error": "no such route"})
            return
        key = self.headers.get(server.key_header)
        with server.lock:
            known = server.keys.get(key) if key else None
            job_id = known or str(body.get("id") or f"job-{next(server.ids)}")
            server.submissions.append({"id": job_id, "body": body, "headers": dict(self.headers), "key": key})
            if known is None:
                server.jobs[job_id] = {"id": job_id, "state": "queued", "message": "", "result": None, "spec": body}
                if key:
                    server.keys[key] = job_id
        if server.hold.is_set():
            server.release.wait(60)
        self._reply(200 if known else 201, {"job": {"id": job_id, **(body.get("fields") or {})}})

    def do_GET(self) -> None:
        server: JobServer = self.server  # type: ignore[assignment]
        self._record()
        parts = self.path.strip("/").split("/")
        with server.lock:
            job = server.jobs.get(parts[1]) if len(parts) >= 2 and parts[0] == "jobs" else None
            if job is None:
                self._reply(404, {"error": "no such job"})
                return
            if len(parts) == 3 and parts[2] == "result":
                self._reply(200, {"result": job["result"]})
                return
            server.polls[job["id"]] += 1
            server.advance(job)
            doc = {k: job[k] for k in ("id", "state", "message", "result")}
            doc["console"] = f"{server.base}/console/{job['id']}"
        self._reply(200, doc)

    def do_DELETE(self) -> None:
        server: JobServer = self.server  # type: ignore[assignment]
        self._record()
        parts = self.path.strip("/").split("/")
        with server.lock:
            job = server.jobs.get(parts[1]) if len(parts) == 2 else None
            if job is None:
                self._reply(404, {"error": "no such job"})
                return
            server.cancels.append(job["id"])
            if job["state"] in ("queued", "running"):
                job["state"] = "cancelled"
            self._reply(200, {"id": job["id"], "state": job["state"]})


class JobServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.ids = itertools.count(1)
        self.jobs: dict[str, dict[str, Any]] = {}
        self.submissions: list[dict[str, Any]] = []
        self.cancels: list[str] = []
        self.polls: Counter[str] = Counter()
        self.seen: list[tuple[str, str, dict[str, str]]] = []
        self.key_header = "Idempotency-Key"
        self.keys: dict[str, str] = {}  # idempotency key -> the job it created
        self.hold = threading.Event()  # set: submit answers wait for ``release``
        self.release = threading.Event()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def advance(self, job: dict[str, Any]) -> None:
        """Move a job along on a poll (called with the lock held)."""
        if job["state"] == "queued":
            job["state"] = "running"
        spec = job["spec"]
        if job["state"] == "running" and spec.get("polls") is not None and self.polls[job["id"]] > spec["polls"]:
            self._end(job, spec.get("outcome", "succeeded"), spec.get("message", ""), spec.get("result"))

    @staticmethod
    def _end(job: dict[str, Any], state: str, message: str, result: Any) -> None:
        job.update(state=state, message=message, result=result)

    def finish(self, job_id: str, state: str = "succeeded", message: str = "", result: Any = None) -> None:
        """End a held job."""
        with self.lock:
            job = self.jobs[job_id]
            self._end(job, state, message, result if result is not None else job["spec"].get("result"))

    def forget(self, job_id: str) -> None:
        """Make the job unknown (the service purged it)."""
        with self.lock:
            del self.jobs[job_id]

    def state(self, job_id: str) -> str:
        with self.lock:
            return self.jobs[job_id]["state"]

    def wait_for(self, condition: Callable[[], bool], timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > end:
                raise AssertionError(f"condition not met within {timeout} s (jobs: {self.jobs})")
            time.sleep(0.02)


@contextlib.contextmanager
def running() -> Iterator[JobServer]:
    server = JobServer()
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
