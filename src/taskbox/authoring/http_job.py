"""``HTTPJobTask``: a long-running job behind a submit / poll / cancel HTTP API (task type ``http-job``).

Why: as with :class:`taskbox.authoring.http.HTTPTask`, the config is validated by the executor's own
model when the task is defined and the secrets it uses are requested in the template's security
context. Unlike the other template tasks, the container args carry Flyte's checkpoint placeholders
(``--checkpoint-path {{.checkpointOutputPrefix}} --prev-checkpoint {{.prevCheckpointPrefix}}``): the
job's handle is recorded there, which is what lets a restarted pod or the next attempt resume the job
instead of submitting a second one.

Example::

    train = HTTPJobTask(
        "train",
        submit_url="https://ml.example.com/v1/jobs",
        json_body={"dataset": "{{ .inputs.dataset }}", "epochs": "{{ .inputs.epochs }}"},
        job_fields={"id": "/job/id"},
        status_url="https://ml.example.com/v1/jobs/{{ .job.id }}",
        cancel_url="https://ml.example.com/v1/jobs/{{ .job.id }}",
        states={"done": "SUCCEEDED", "error": "FAILED"},
        message_pointer="/status/message",
        inputs={"dataset": str, "epochs": int},
        outputs={"model_uri": str},
        output_pointers={"model_uri": "/result/model"},
        secret_headers={"Authorization": {"group": "ml", "key": "token", "prefix": "Bearer "}},
        timeout_seconds=6 * 3600,
    )
    train.run(dataset="s3://bucket/ds", epochs=3, workdir="/tmp/train")  # rerun with the same workdir resumes

Invariants:
    * No secret value is ever in the template, only secret references.
    * ``run`` records the job in ``<workdir>/checkpoint`` unless told otherwise, so the local run follows
      the same resume rules as the container.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskbox.authoring.base import TemplateTask
from taskbox.entrypoint.cmdline import CHECKPOINT_ARGS

__all__ = ["CHECKPOINT_ARGS", "HTTPJobTask"]


class HTTPJobTask(TemplateTask):
    """A job submitted over HTTP, polled to completion, cancelled if the run stops early.

    Args:
        name: Task name.
        submit_url: URL template of the submit request (``{{ .inputs.x }}`` placeholders).
        status_url: URL template polled for the state (``{{ .job.<field> }}``, ``{{ .inputs.x }}``).
        submit_method: Method of the submit request.
        json_body: JSON body template of the submit request.
        form_body: Form body template of the submit request.
        submit_headers: Headers of the submit request only (may hold placeholders).
        inputs: Input name -> Python type.
        outputs: Output name -> Python type.
        output_pointers: Output name -> JSON pointer into the final status (or ``result_url``) response.
        image: Container image (default: the ``http`` image).
        retries: Flyte retries (recoverable failures: SIGTERM, timeouts, 5xx, retryable job failures).
        **options: Other fields of :class:`taskbox.http.jobconfig.HTTPJobConfig` (``job_fields``,
            ``cancel_url``, ``result_url``, ``states``, ``message_pointer``, ``log_links``,
            ``secret_headers``, ``auth``, ``timeout_seconds``, ``poll_interval_seconds``...).

    """

    task_type = "http-job"
    executor = "http-job"
    checkpoints = True  # the job's handle: a second run(workdir=...) resumes the recorded job
    image_variant = "http"

    def __init__(
        self,
        name: str,
        *,
        submit_url: str,
        status_url: str,
        submit_method: str = "POST",
        json_body: Any = None,
        form_body: Mapping[str, Any] | None = None,
        submit_headers: Mapping[str, str] | None = None,
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        output_pointers: Mapping[str, str] | None = None,
        image: str | None = None,
        retries: int = 0,
        **options: Any,
    ) -> None:
        from taskbox.http.jobconfig import HTTPJobConfig, SubmitRequest

        submit = SubmitRequest(
            method=submit_method,
            url=submit_url,
            json_body=json_body,
            form_body=dict(form_body) if form_body is not None else None,
            headers=dict(submit_headers or {}),
        )
        config = HTTPJobConfig(submit=submit, status_url=status_url, outputs=dict(output_pointers or {}), **options)
        secrets = [(r.group, r.key, r.group_version) for r in config.secret_refs()]
        super().__init__(
            name,
            config=config,
            inputs=inputs,
            outputs=outputs,
            image=image,
            retries=retries,
            secrets=secrets,
        )
