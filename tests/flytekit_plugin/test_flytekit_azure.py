"""A flytekit-made template in Azure Blob Storage (Azurite), run by ``taskbox execute``, read by flytekit.

Why: a Flyte deployment on Azure hands a taskbox image ``abfs://`` URIs (issue 21): the template propeller
uploaded, the ``inputs.pb`` flytekit's storage layer wrote through adlfs, and an output prefix whose
``outputs.pb`` and data flytekit reads back the same way. Both sides run on a real Azurite on 127.0.0.1:
flytekit in ``.venv-flytekit`` (fk_tool.py: ``get_serializable`` for the template, ``TypeEngine`` for the
inputs, both written by its own ``FileAccessProvider``; the outputs read back with its ``LiteralMap`` and
``TypeEngine``, the table opened through its own adlfs), and ``.venv/bin/taskbox`` (no flytekit, as in the
executor images) with propeller's placeholders filled in with ``abfs://`` URIs.

flytekit reaches Azurite through ``AZURE_STORAGE_CONNECTION_STRING`` alone (the session's, exported by the
``azure_server`` fixture): its ``FLYTE_AZURE_*`` settings name an account and a key but no endpoint, and adlfs
reads the connection string itself when flytekit names no account. taskbox reads the same variable.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from fk import FLYTEKIT_VENV, fill, placeholders, require_module, tool

from helpers import TASKBOX, commit_files, put, read_literal_map, subprocess_env
from taskbox import storage

pytestmark = [pytest.mark.servers, pytest.mark.timeout(300)]

TRACKS = [(i, f"Track {i}" if i % 4 else f"Bonus {i}") for i in range(1, 13)]
NAME = "azure_tracks"


def test_a_flytekit_template_in_azurite_runs_under_taskbox_and_flytekit_reads_the_outputs(
    azure_server, azure_base: str, tmp_path: Path
) -> None:
    require_module("adlfs", f"install taskbox's azure extra there: {FLYTEKIT_VENV}/bin/pip install -e '.[azure]'")
    db = tmp_path / "tracks.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE tracks (TrackId INTEGER PRIMARY KEY, Name TEXT)")
        conn.executemany("INSERT INTO tracks VALUES (?, ?)", TRACKS)
    conn.close()
    env = {"TBX_AZ_DB": put(storage.join(azure_base, "db", "tracks.db"), db.read_bytes())}
    values = placeholders(tmp_path, NAME, prefix=azure_base)  # every placeholder an abfs:// URI

    # flytekit's side: the template and inputs.pb, written to Azurite by its FileAccessProvider
    template = tool(env, "template", "fk_azure", NAME, values["{{.taskTemplatePath}}"])
    inputs = tool(env, "inputs", "fk_azure", NAME, azure_base, json.dumps({"n": 10, "pattern": "Track %"}))
    assert inputs["written"] == values["{{.input}}"] and storage.exists(values["{{.input}}"])
    assert template["args"][0] == "pyflyte-execute" and "{{.taskTemplatePath}}" in template["args"]

    # the image's side: taskbox alone, on the abfs:// URIs propeller would fill in
    proc = subprocess.run(
        [TASKBOX, *fill(template["args"], values)], capture_output=True, text=True, timeout=120, env=subprocess_env()
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = values["{{.outputPrefix}}"]
    assert commit_files(out) == {"outputs.pb"}, proc.stderr[-4000:]
    table = read_literal_map(storage.join(out, "outputs.pb")).literals["results"].scalar.structured_dataset
    assert table.uri.startswith(values["{{.rawOutputDataPrefix}}"] + "/")  # the Parquet file is in Azurite too

    # flytekit's side again: outputs.pb and the table read back through its own adlfs
    read_back = tool(env, "outputs", "fk_azure", NAME, storage.join(out, "outputs.pb"))
    expected = [{"TrackId": i, "Name": name} for i, name in TRACKS if i <= 10 and name.startswith("Track ")]
    assert read_back == {"result": {"results": expected}}
