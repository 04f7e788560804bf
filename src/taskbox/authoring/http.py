"""``HTTPTask``: an HTTP call (task type ``http``) defined in Python.

Why: the config is validated by the executor's own model when the task is defined, the secrets it
uses are requested in the template's security context (so Flyte mounts them), and ``run`` goes through
the same entrypoint as the container.

Example::

    get_user = HTTPTask(
        "get_user",
        "https://api.example.com/users/{{ .inputs.user_id }}",
        inputs={"user_id": str},
        outputs={"email": str, "status": int},
        output_pointers={"email": "/email"},
        status_output="status",
        secret_headers={"X-Api-Key": {"group": "example", "key": "api_key"}},
    )
    get_user.run(user_id="a/b")   # the id is sent as a%2Fb

Invariants:
    * No secret value is ever in the template, only secret references.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskbox.authoring.base import TemplateTask, default_image

__all__ = ["HTTP_IMAGE", "HTTPTask"]

#: Default image of HTTP tasks (the image catalog's, for the installed version, when this module was imported;
#: tasks look it up when they are made: :func:`taskbox.authoring.base.default_image`).
HTTP_IMAGE = default_image("http")


class HTTPTask(TemplateTask):
    """One HTTP request whose response parts become the task's outputs.

    Args:
        name: Task name.
        url: URL template with ``{{ .inputs.x }}`` placeholders.
        method: HTTP method.
        inputs: Input name -> Python type.
        outputs: Output name -> Python type.
        output_pointers: Output name -> JSON pointer into the response (the config's ``outputs``).
        image: Container image (default: the catalog's ``http`` image, pinned by digest once pushed).
        retries: Flyte retries (recoverable failures: 5xx, timeouts).
        **options: Other fields of :class:`taskbox.http.config.HTTPConfig` (``headers``, ``json_body``,
            ``secret_headers``, ``auth``, ``pagination``, ``status_output``...).
    """

    task_type = "http"
    executor = "http"

    def __init__(
        self,
        name: str,
        url: str,
        *,
        method: str = "GET",
        inputs: Mapping[str, Any] | None = None,
        outputs: Mapping[str, Any] | None = None,
        output_pointers: Mapping[str, str] | None = None,
        image: str | None = None,
        retries: int = 0,
        **options: Any,
    ) -> None:
        from taskbox.http.config import HTTPConfig

        config = HTTPConfig(url=url, method=method, outputs=dict(output_pointers or {}), **options)
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
