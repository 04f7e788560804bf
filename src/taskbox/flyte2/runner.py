"""Run a prebuilt executor's template in this process, as ``taskbox a0`` runs it in the executor image.

Why: a flyte-sdk task's local run (``flyte.run`` in local mode calls the task's ``execute``) must prove what
the image will do. This module goes through the same pieces as ``a0``'s prebuilt path: the template
decoded from its ``encode_template`` text, :func:`taskbox.entrypoint.template.task_from_template`, the run
pipeline (:func:`taskbox.entrypoint.pipeline.run_committed` / ``run_steps``), and a commit with Flyte 2's
error document (:func:`taskbox.entrypoint.a0.error_document_v2`), so codes, origins and recoverability are
the ones a cluster run reports. It needs no flyte SDK: :mod:`taskbox.flyte2.local` converts values.

Example::

    result = run_template(encoded, "sqlite", inputs_pb, RunPaths(scratch, prefix, raw))
    result.outputs    # outputs.pb bytes (v1 LiteralMap == v2 Outputs on the wire), or None
    result.error      # (code, origin, recoverable, message) of the v2 error document, or None

Invariants:
    * Exactly one of ``outputs``/``error`` is set: ``outputs`` read back from the committed ``outputs.pb``,
      ``error`` the document committed as ``error.pb`` (still returned if that write fails).
    * Nothing here installs a signal handler, configures logging or changes the working directory: it runs
      inside the caller's process (any thread). :class:`CancelToken` stands in for SIGTERM: setting it
      sets the executor context's ``cancelled`` event (async executors cancel their job).
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from typing import Any, NamedTuple

from taskbox.entrypoint.pipeline import run_committed, run_steps

__all__ = ["CancelToken", "ErrorInfo", "Result", "RunPaths", "run_template"]

log = logging.getLogger("taskbox")


class ErrorInfo(NamedTuple):
    """Flyte 2's error document, as ``a0`` commits it (the code has no ``USER:``/``SYSTEM:`` prefix)."""

    code: str
    origin: str
    recoverable: bool
    message: str


@dataclass(frozen=True)
class Result:
    """What a run committed: ``outputs.pb`` bytes or the error document."""

    outputs: bytes | None
    error: ErrorInfo | None


@dataclass(frozen=True)
class RunPaths:
    """Where one in-process run keeps its files.

    Attributes:
        scratch: A local directory for ``inputs.pb`` (the caller removes it).
        output_prefix: Where ``outputs.pb``/``error.pb`` and offloaded output literals go (any storage URI;
            kept, since offloaded outputs are referenced from ``outputs.pb``).
        raw_output_prefix: Where data blobs (tables, files) go (any storage URI).
        checkpoint_path: ``--checkpoint-path`` (async executors record their job there).
        prev_checkpoint: ``--prev-checkpoint`` (the previous attempt's, to resume its job).
    """

    scratch: str
    output_prefix: str
    raw_output_prefix: str
    checkpoint_path: str | None = None
    prev_checkpoint: str | None = None


class CancelToken:
    """Cancels a run from another thread (the in-process stand-in for SIGTERM)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cancelled = False
        self._events: list[threading.Event] = []

    def cancel(self) -> None:
        """Ask the run to stop: the executor context's ``cancelled`` event is set (now, or when it starts)."""
        with self._lock:
            self._cancelled = True
            for event in self._events:
                event.set()

    def attach(self, event: threading.Event) -> None:
        """Tie ``event`` (a run's ``cancelled``) to this token."""
        with self._lock:
            self._events.append(event)
            if self._cancelled:
                event.set()


def run_template(
    encoded: str, executor: str | None, inputs: bytes, paths: RunPaths, cancel: CancelToken | None = None
) -> Result:
    """Run an encoded template with ``inputs.pb`` bytes and return what was committed.

    Args:
        encoded: The template, as the container args carry it (``encode_template``'s text).
        executor: The executor's registry name (the args' ``executor <name>``); the template's type if ``None``.
        inputs: The serialized inputs (a v1 ``LiteralMap`` or v2 ``Inputs``: the same wire).
        paths: Where the run's files go.
        cancel: Cancels the run from another thread.

    Returns:
        The committed outputs or error document.
    """
    from taskbox import storage
    from taskbox.entrypoint import commit
    from taskbox.entrypoint.a0 import PrebuiltSteps, error_document_v2
    from taskbox.entrypoint.cmdline_v2 import PREBUILT_RESOLVER
    from taskbox.entrypoint.signals import TerminationGuard

    inputs_uri = os.path.join(paths.scratch, "inputs.pb")
    with open(inputs_uri, "wb") as fh:
        fh.write(inputs)
    resolver_args = ["template", encoded, *(["executor", executor] if executor else [])]
    steps = PrebuiltSteps(
        PREBUILT_RESOLVER,
        resolver_args,
        inputs_uri,
        paths.output_prefix,
        paths.raw_output_prefix,
        checkpoint_path=paths.checkpoint_path,
        prev_checkpoint=paths.prev_checkpoint,
    )
    errors: list[ErrorInfo] = []

    def body(working_dir: str, cancelled: threading.Event) -> Any:
        if cancel is not None:
            cancel.attach(cancelled)
        return run_steps(steps, working_dir, cancelled)

    def on_failure(failure: BaseException) -> None:
        from flyteidl.core import execution_pb2

        document = error_document_v2(failure)
        error = document.error
        origin = "USER" if error.origin == execution_pb2.ExecutionError.USER else "SYSTEM"
        errors.append(ErrorInfo(error.code, origin, error.kind == error.RECOVERABLE, error.message))
        try:
            commit.commit_error(paths.output_prefix, failure, document=document)
        except Exception as exc:  # noqa: BLE001 - the caller gets the document anyway; say why it is not on disk
            log.warning("could not write the error document under %s: %s", paths.output_prefix, exc)

    # A guard that is never installed: no signal handler in the caller's process; ``cancel`` replaces SIGTERM.
    run_committed(
        TerminationGuard(),
        body,
        on_success=lambda outputs: commit.commit_outputs(paths.output_prefix, outputs),
        on_failure=on_failure,
    )
    if errors:
        return Result(None, errors[0])
    return Result(storage.read_bytes(storage.join(paths.output_prefix, commit.OUTPUTS_FILE)), None)
