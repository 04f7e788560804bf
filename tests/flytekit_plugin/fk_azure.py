"""A taskbox.flytekit task whose database is in Azure Blob Storage; imported in ``.venv-flytekit`` only (fk_tool.py).

``TBX_AZ_DB`` is the ``abfs://`` URI of the SQLite file (tests/flytekit_plugin/test_flytekit_azure.py puts it in
Azurite); ``AZURE_STORAGE_CONNECTION_STRING`` is how flytekit's adlfs and taskbox reach Azurite.
"""

from __future__ import annotations

import os

from taskbox.flytekit import SQLiteTask

azure_tracks = SQLiteTask(
    "azure_tracks",
    "SELECT TrackId, Name FROM tracks WHERE TrackId <= {{ .inputs.n }} AND Name LIKE {{ .inputs.pattern }} "
    "ORDER BY TrackId",
    uri=os.environ["TBX_AZ_DB"],
    inputs={"n": int, "pattern": str},
)

#: name -> task, for fk_tool.py
TASKS = {t.name: t for t in (azure_tracks,)}
