"""taskbox.flytekit tasks in flytekit workflows; imported inside ``.venv-flytekit`` only (by fk_tool.py, ``pyflyte``).

Module-level definitions, as a user's workflow module has them (``pyflyte run``/``package`` load this file), built
from the environment the test sets: ``TBX_DB`` (a SQLite file), ``TBX_HTTP`` (tests/http/httptesting.py's server),
``TBX_JOBS`` (tests/http/jobserver.py's). ``wf`` is the issue's workflow: a SQLite query and an HTTP call whose
results go into a Python ``@task``; ``more`` does the same with ``SQLTask`` and ``HTTPJobTask``.
"""

from __future__ import annotations

import json
import os

import pandas as pd
from flytekit import task, workflow
from flytekit.types.structured import StructuredDataset

from taskbox.flytekit import HTTPJobTask, HTTPTask, SQLiteTask, SQLTask

top_tracks = SQLiteTask(
    "top_tracks",
    "SELECT TrackId, Name FROM tracks ORDER BY TrackId LIMIT {{ .inputs.n }}",
    uri=os.environ["TBX_DB"],
    inputs={"n": int},
)

get_item = HTTPTask(
    "get_item",
    os.environ["TBX_HTTP"] + "/echo/{{ .inputs.item }}",
    inputs={"item": str},
    outputs={"path": str, "status": int},
    output_pointers={"path": "/path"},
    status_output="status",
    headers={"X-Item": "{{ .inputs.item }}"},
    secret_headers={"Authorization": {"group": "api", "key": "token", "prefix": "Bearer "}},
    timeout=300,  # a flytekit option (TaskMetadata.timeout), beside the executor's fields
)

tracks_sql = SQLTask(
    "tracks_sql",
    "SELECT TrackId, Name FROM tracks WHERE TrackId <= {{ .inputs.n }} ORDER BY TrackId",
    uri="sqlite:///" + os.environ["TBX_DB"],
    inputs={"n": int},
)

train = HTTPJobTask(
    "train",
    submit_url=os.environ["TBX_JOBS"] + "/jobs",
    json_body={"polls": 2, "outcome": "succeeded", "result": {"model": "m-{{ .inputs.dataset }}"}},
    job_fields={"id": "/job/id"},
    status_url=os.environ["TBX_JOBS"] + "/jobs/{{ .job.id }}",
    cancel_url=os.environ["TBX_JOBS"] + "/jobs/{{ .job.id }}",
    inputs={"dataset": str},
    outputs={"model": str},
    output_pointers={"model": "/result/model"},
    poll_interval_seconds=0.05,
    max_poll_interval_seconds=0.2,
)

broken = SQLiteTask(  # validates (it is a query), but names an input the interface does not declare
    "broken", "SELECT * FROM tracks LIMIT {{ .inputs.limit }}", uri=os.environ["TBX_DB"], inputs={"n": int}
)

#: name -> task, for fk_tool.py
TASKS = {t.name: t for t in (top_tracks, get_item, tracks_sql, train, broken)}


@task
def combine(tracks: StructuredDataset, path: str, status: int) -> str:
    names = list(tracks.open(pd.DataFrame).all()["Name"])
    return json.dumps({"tracks": names, "http": f"{status} {path}"})


@workflow
def wf(n: int = 3, item: str = "a/b c") -> str:
    path, status = get_item(item=item)
    return combine(tracks=top_tracks(n=n), path=path, status=status)


@task
def label(tracks: StructuredDataset, model: str) -> str:
    return json.dumps({"rows": len(tracks.open(pd.DataFrame).all()), "model": model})


@workflow
def more(n: int = 2, dataset: str = "ds1") -> str:
    return label(tracks=tracks_sql(n=n), model=train(dataset=dataset))
