"""An ``AsyncConnector`` for a batch-job service (``tests/http/jobserver.py``), as flyte-sdk's docs write one.

The service: ``POST /jobs`` (the task config's ``job`` spec plus the inputs) -> ``{"job": {"id"}}``;
``GET /jobs/<id>`` -> ``{"state", "message", "result", "console"}``; ``DELETE /jobs/<id>``. The service's URL
is in the task config (``server``) and travels in the metadata, so ``get``/``delete`` need nothing else.
The ``api_token`` connection secret, when given, is sent as a bearer token.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

import flyte.storage as storage
import httpx
from flyte import logger
from flyte.connectors import AsyncConnector, ConnectorRegistry, Resource, ResourceMeta
from flyte.connectors.utils import convert_to_flyte_phase
from flyte.io import File
from flyte.types import TypeEngine
from flyteidl2.core.execution_pb2 import TaskExecution, TaskLog
from flyteidl2.task import common_pb2
from google.protobuf import json_format


@dataclass
class BatchJobMetadata(ResourceMeta):
    job_id: str
    server: str
    output_prefix: str = ""  # set when the job's outputs are written there (as outputs.pb), not returned


def _headers(kwargs: dict[str, Any]) -> dict[str, str]:
    token = kwargs.get("api_token")
    return {"Authorization": f"Bearer {token}"} if token else {}


def _ints(value: Any) -> Any:
    """A task config's numbers arrive as floats (a protobuf Struct): whole ones become ints again."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, dict):
        return {k: _ints(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_ints(v) for v in value]
    return value


def _describe(value: Any) -> dict[str, Any]:
    """An input as the connector received it: its Python type and a JSON-able value."""
    if isinstance(value, File):
        shown: Any = value.path
    elif isinstance(value, (datetime.datetime, datetime.timedelta)):
        shown = str(value)
    else:
        shown = value
    return {"type": f"{type(value).__module__}.{type(value).__qualname__}", "value": shown}


async def _write_outputs(outputs: dict[str, Any], prefix: str) -> None:
    named = []
    for name, value in outputs.items():
        literal = await TypeEngine.to_literal(value, type(value), TypeEngine.to_literal_type(type(value)))
        named.append(common_pb2.NamedLiteral(name=name, value=literal))
    data = common_pb2.Outputs(literals=named).SerializeToString()
    await storage.put_stream(data, to_path=f"{prefix}/outputs.pb")


class BatchJobConnector(AsyncConnector):
    """Submits, polls and cancels jobs of the batch-job service."""

    name = "Batch Job Connector"
    task_type_name = "batch_job"
    metadata_type = BatchJobMetadata

    async def create(
        self,
        task_template,
        output_prefix: str,
        inputs: dict[str, Any] | None = None,
        task_execution_metadata=None,
        **kwargs,
    ) -> BatchJobMetadata:
        custom = json_format.MessageToDict(task_template.custom)
        server = custom["server"]
        body = {
            **_ints(custom.get("job", {})),
            "inputs": {name: _describe(value) for name, value in (inputs or {}).items()},
            "task_type": task_template.type,
            "output_prefix": output_prefix,
            "attempt": task_execution_metadata.task_execution_id.retry_attempt if task_execution_metadata else None,
            "container_args": list(task_template.container.args),
        }
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            response = await client.post(f"{server}/jobs", json=body, headers=_headers(kwargs))
            response.raise_for_status()
        job_id = response.json()["job"]["id"]
        logger.info(f"Submitted batch job {job_id}")
        prefix = output_prefix if custom.get("write_outputs") else ""
        return BatchJobMetadata(job_id=job_id, server=server, output_prefix=prefix)

    async def get(self, resource_meta: BatchJobMetadata, **kwargs) -> Resource:
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            response = await client.get(f"{resource_meta.server}/jobs/{resource_meta.job_id}", headers=_headers(kwargs))
            response.raise_for_status()
        job = response.json()
        state = job["state"]
        phase = TaskExecution.QUEUED if state == "queued" else convert_to_flyte_phase(state)
        outputs = None
        if phase == TaskExecution.SUCCEEDED:
            result = job["result"] or {}
            outputs = {k: File(path=v) if k.endswith("_file") else v for k, v in result.items()}
            if resource_meta.output_prefix:  # Flyte's backend then reads <output_prefix>/outputs.pb
                await _write_outputs(outputs, resource_meta.output_prefix)
                outputs = None
        return Resource(
            phase=phase,
            message=job["message"] or state,
            log_links=[TaskLog(name="console", uri=job["console"])],
            outputs=outputs,
        )

    async def delete(self, resource_meta: BatchJobMetadata, **kwargs):
        async with httpx.AsyncClient(trust_env=False, timeout=10) as client:
            url = f"{resource_meta.server}/jobs/{resource_meta.job_id}"
            response = await client.delete(url, headers=_headers(kwargs))
        if response.status_code not in (200, 404):  # an unknown job is deleted already
            response.raise_for_status()
        logger.info(f"Cancelled job {resource_meta.job_id}")


ConnectorRegistry.register(BatchJobConnector())
