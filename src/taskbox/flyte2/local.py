"""A prebuilt task's ``execute``: flyte's values in, taskbox's pipeline in this process, flyte's values out.

Why: ``flyte.run`` in local mode (and flyte's own ``a0``, when an image has both the SDK and taskbox) calls
``TaskTemplate.execute`` with native values and expects native values back. This module converts the
inputs with flyte's ``TypeEngine`` (the literals the SDK would send to the image), runs the executor with
:func:`taskbox.flyte2.runner.run_template` (the image's ``a0`` pipeline, in a worker thread), and converts
the committed ``outputs.pb`` back with flyte's ``TypeEngine`` and the task's interface (a SQL ``results``
table comes back as a ``flyte.io.DataFrame``).

Error mapping (the error document ``a0`` commits -> the exception ``execute`` raises):

=====================================  =========================================================
taskbox (code, origin, recoverable)    flyte exception (``.code`` is taskbox's code, no prefix)
=====================================  =========================================================
USER, non-recoverable                  ``flyte.errors.NonRecoverableError`` (no local retries)
USER, recoverable                      ``flyte.errors.RuntimeUserError`` (retried up to ``retries``)
SYSTEM (any)                           ``flyte.errors.RuntimeSystemError`` (retried)
=====================================  =========================================================

A caller of the task (a parent task, or ``flyte.run``) receives them as flyte reports any task failure:
``RuntimeUserError`` / ``RuntimeSystemError`` with the same ``code`` and message, in local runs as in a
cluster, where the parent reads the same error document.

Invariants:
    * Files: ``inputs.pb`` in a private scratch directory (removed); ``outputs.pb``/``error.pb`` and data
      under ``<raw data path>/taskbox-<random>`` (kept: outputs point into it). Without a flyte task
      context (a direct call) everything goes to a new temporary directory, kept.
    * Checkpoints: in a flyte cluster, the action's own; in local mode each task call keeps its checkpoint
      in its action's output directory and hands the previous attempt's over on a retry (an ``HTTPJobTask``
      resumes its job, as in a cluster).
    * Cancelling the awaiting coroutine cancels the run (the executor context's ``cancelled`` is set, an
      async executor cancels its job), and waits for its commit.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
from typing import TYPE_CHECKING, Any

from taskbox.flyte2.runner import CancelToken, ErrorInfo, Result, RunPaths, run_template

if TYPE_CHECKING:
    from taskbox.flyte2.tasks import PrebuiltTask

__all__ = ["execute", "flyte_error", "run_paths"]


async def execute(task: PrebuiltTask, kwargs: dict[str, Any]) -> Any:
    """Run ``task`` with native inputs and return its native outputs (one value, a tuple, or ``None``).

    Raises:
        flyte.errors.NonRecoverableError, flyte.errors.RuntimeUserError, flyte.errors.RuntimeSystemError:
            The run committed an error document (see the module's table).
    """
    import flyte
    from flyte.types import TypeEngine

    interface = task.native_interface
    literals = await TypeEngine.dict_to_literal_map(kwargs, interface.get_input_types())
    paths = run_paths(flyte.ctx(), task.name)
    try:
        result = await _run_in_thread(
            task.encoded_template(), task.plugin_config.executor, literals.SerializeToString(), paths
        )
    finally:
        shutil.rmtree(paths.scratch, ignore_errors=True)
    if result.error is not None:
        raise flyte_error(result.error)
    assert result.outputs is not None
    return await _outputs_to_native(result.outputs, interface.outputs)


async def _run_in_thread(encoded: str, executor: str, inputs: bytes, paths: RunPaths) -> Result:
    """Run in a worker thread (executors block; some run an event loop of their own); cancel on cancellation."""
    cancel = CancelToken()
    future = asyncio.get_running_loop().run_in_executor(None, run_template, encoded, executor, inputs, paths, cancel)
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        cancel.cancel()
        try:
            await future  # the executor stops (an async job is cancelled) and commits
        except BaseException:  # noqa: BLE001 - we are being cancelled: that is what propagates
            pass
        raise


async def _outputs_to_native(outputs: bytes, output_types: dict[str, type]) -> Any:
    from flyte.types import TypeEngine
    from flyteidl2.core import literals_pb2

    literal_map = literals_pb2.LiteralMap.FromString(outputs)  # v1 LiteralMap == v2 LiteralMap on the wire
    values = await TypeEngine.literal_map_to_kwargs(literal_map, output_types)
    if not output_types:
        return None
    if len(output_types) == 1:
        return next(iter(values.values()))
    return tuple(values[name] for name in output_types)


def flyte_error(error: ErrorInfo) -> Exception:
    """The flyte exception for an ``a0`` error document (see the module's table)."""
    import flyte.errors

    if error.origin == "USER":
        if error.recoverable:
            return flyte.errors.RuntimeUserError(error.code, error.message)
        return flyte.errors.NonRecoverableError(error.message, code=error.code)
    return flyte.errors.RuntimeSystemError(error.code, error.message)


def run_paths(tctx: Any, name: str) -> RunPaths:
    """Where a run keeps its files, from flyte's task context (falsy outside a task).

    Args:
        tctx: ``flyte.ctx()``.
        name: The task's name (names the temporary directories).
    """
    from taskbox import storage
    from taskbox.entrypoint.cmdline import normalize

    scratch = tempfile.mkdtemp(prefix="taskbox-flyte2-")
    run = os.urandom(8).hex()
    raw = normalize(tctx.raw_data_path.path) if tctx and tctx.raw_data_path else None
    if not tctx or raw is None:  # a direct call: everything in a kept temporary directory
        base = tempfile.mkdtemp(prefix=f"taskbox-{_slug(name)}-")
        return RunPaths(scratch, os.path.join(base, "out"), os.path.join(base, "raw"), os.path.join(base, "checkpoint"))
    prefix = storage.join(raw, f"taskbox-{run}")
    checkpoint, prev = _checkpoints(tctx)
    return RunPaths(scratch, prefix, raw, checkpoint, prev)


def _checkpoints(tctx: Any) -> tuple[str | None, str | None]:
    """``(checkpoint, previous checkpoint)`` for the action."""
    from taskbox import storage
    from taskbox.entrypoint.cmdline import normalize

    output_path = normalize(tctx.output_path)
    if tctx.mode == "local" and output_path and storage.is_local(output_path):
        # flyte's local checkpoint paths are one pair per run; an action's output directory is its own and
        # stays the same across its attempts: keep the checkpoint there, the last attempt's as "previous".
        from taskbox.storage import local

        base = local.to_path(output_path)
        current, previous = os.path.join(base, "taskbox-checkpoint"), os.path.join(base, "taskbox-prev-checkpoint")
        if os.path.isdir(current) and os.listdir(current):
            shutil.rmtree(previous, ignore_errors=True)
            os.replace(current, previous)
            return current, previous
        return current, None
    paths = tctx.checkpoint_paths
    if paths is None:
        return None, None
    return normalize(paths.checkpoint_path), normalize(paths.prev_checkpoint_path)


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:40] or "task"
