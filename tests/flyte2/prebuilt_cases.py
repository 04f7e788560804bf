"""taskbox.flyte2 tasks and the flyte-sdk workflows that call them; imported inside ``.venv-flyte2`` only.

Each case builds, from the environment the test sets (``TBX_DB``: a SQLite file, ``TBX_DB_ZIP``: the same
zipped, ``TBX_HTTP``: tests/http/httptesting.py's server, ``TBX_JOBS``: tests/http/jobserver.py's), a
:class:`Case`: the prebuilt task, a workflow ``@env.task`` that awaits it, and the inputs of both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import flyte
from flyte.io import DataFrame

from taskbox.flyte2 import HTTPJobTask, HTTPTask, SQLiteTask, SQLTask

TOP_TRACKS = "SELECT TrackId, Name, Composer FROM tracks ORDER BY TrackId LIMIT {{ .inputs.n }}"


@dataclass
class Case:
    task: Any
    wf: Any
    inputs: dict[str, Any]


def sqlite() -> Case:
    top_tracks = SQLiteTask("top_tracks", TOP_TRACKS, uri=os.environ["TBX_DB"], inputs={"n": int})
    env = flyte.TaskEnvironment("tracks-wf")

    @env.task
    async def wf(n: int) -> DataFrame:
        return await top_tracks(n=n)

    return Case(top_tracks, wf, {"n": 5})


def sqlite_zip() -> Case:
    count = SQLiteTask(
        "count_by_composer",
        "SELECT count(*) AS n, max(TrackId) AS last FROM tracks WHERE Composer = {{ .inputs.composer }}",
        uri=os.environ["TBX_DB_ZIP"],
        compressed=True,
        inputs={"composer": str},
        outputs={"n": int, "last": int},
    )
    env = flyte.TaskEnvironment("count-wf")

    @env.task
    async def wf(composer: str) -> int:
        n, last = await count(composer=composer)
        return n * 1000 + last

    return Case(count, wf, {"composer": "AC/DC"})


def sql() -> Case:
    tracks = SQLTask(
        "tracks_sql",
        "SELECT TrackId, Name FROM tracks WHERE TrackId <= {{ .inputs.n }} ORDER BY TrackId",
        uri="sqlite:///" + os.environ["TBX_DB"],
        inputs={"n": int},
    )
    env = flyte.TaskEnvironment("sql-wf")

    @env.task
    async def wf(n: int) -> DataFrame:
        return await tracks(n=n)

    return Case(tracks, wf, {"n": 3})


def http() -> Case:
    get_item = HTTPTask(
        "get_item",
        os.environ["TBX_HTTP"] + "/echo/{{ .inputs.item }}",
        inputs={"item": str},
        outputs={"path": str, "status": int},
        output_pointers={"path": "/path"},
        status_output="status",
        headers={"X-Item": "{{ .inputs.item }}"},
        secret_headers={"Authorization": {"group": "api", "key": "token", "prefix": "Bearer "}},
    )
    env = flyte.TaskEnvironment("http-wf")

    @env.task
    async def wf(item: str) -> str:
        path, status = await get_item(item=item)
        return f"{status} {path}"

    return Case(get_item, wf, {"item": "a/b c"})


def http_job() -> Case:
    base = os.environ["TBX_JOBS"]
    train = HTTPJobTask(
        "train",
        submit_url=base + "/jobs",
        json_body={"polls": 2, "outcome": "succeeded", "result": {"model": "m-{{ .inputs.dataset }}"}},
        job_fields={"id": "/job/id"},
        status_url=base + "/jobs/{{ .job.id }}",
        cancel_url=base + "/jobs/{{ .job.id }}",
        inputs={"dataset": str},
        outputs={"model": str},
        output_pointers={"model": "/result/model"},
        poll_interval_seconds=0.05,
        max_poll_interval_seconds=0.2,
    )
    env = flyte.TaskEnvironment("job-wf")

    @env.task
    async def wf(dataset: str) -> str:
        return await train(dataset=dataset)

    return Case(train, wf, {"dataset": "ds1"})


def http_job_held() -> Case:
    """A job that runs until the test ends it (for cancellation)."""
    base = os.environ["TBX_JOBS"]
    wait = HTTPJobTask(
        "wait",
        submit_url=base + "/jobs",
        json_body={"tag": "{{ .inputs.tag }}"},
        job_fields={"id": "/job/id"},
        status_url=base + "/jobs/{{ .job.id }}",
        cancel_url=base + "/jobs/{{ .job.id }}",
        inputs={"tag": str},
        outputs={"state": str},
        output_pointers={"state": "/state"},
        poll_interval_seconds=0.05,
        max_poll_interval_seconds=0.1,
    )
    return Case(wait, None, {"tag": "held"})


def bad_query() -> Case:
    """A configuration that validates but does not fit the interface: the query names an undeclared input."""
    broken = SQLiteTask(
        "broken", "SELECT * FROM tracks LIMIT {{ .inputs.limit }}", uri=os.environ["TBX_DB"], inputs={"n": int}
    )
    env = flyte.TaskEnvironment("broken-wf")

    @env.task
    async def wf(n: int) -> str:
        try:
            await broken(n=n)
        except flyte.errors.RuntimeUserError as exc:  # what a workflow author catches
            return f"caught {type(exc).__name__} {exc.code}"
        return "no error"

    return Case(broken, wf, {"n": 2})


CASES = {
    "sqlite": sqlite,
    "sqlite-zip": sqlite_zip,
    "sql": sql,
    "http": http,
    "http-job": http_job,
    "http-job-held": http_job_held,
    "bad-query": bad_query,
}
