"""The commit protocol: exactly one of ``outputs.pb`` or ``error.pb`` under the output prefix.

Why: Flyte's propeller judges an attempt that exited 0 by what it finds under the output prefix. It
reads ``error.pb`` first: if present, the attempt failed (retryable iff ``kind`` is RECOVERABLE) and
``outputs.pb`` is ignored; otherwise ``outputs.pb`` must exist when outputs are declared. So the commit
file is the single point at which a run's result becomes visible, and it must be whole and alone.

Invariants:
    * Data blobs (files, tables, offloaded literals) are written before the commit file, by the
      literal engine; the commit file is written last, atomically (``taskbox.storage.write_bytes``).
    * Before writing its commit file, a run removes the other kind left by an earlier run into the same
      prefix (a restarted pod): a stale ``error.pb`` beside a new ``outputs.pb`` would fail the attempt.
      Between the removal and the write the prefix holds neither, which propeller treats as "no
      outputs" (recoverable): never a wrong answer.
    * Companion files (``taskbox run``'s ``outputs.json``/``error.json`` and per-output files) are
      written after the other kind's files are removed and before the commit file, which stays last.
    * Under Flyte's distributed error strategy (``_F_DES``) a worker named by ``_F_WN`` (or
      ``FLYTE_INTERNAL_WORKER_NAME``) writes ``error-<32 hex>.pb`` whose name is derived from its worker
      name, so a rerun of that worker replaces its own document, and a successful rerun removes it
      before committing ``outputs.pb``; other workers' documents are left alone (propeller reads every
      ``error*.pb`` and reports the earliest). Without a worker name the name is random, as flytekit's.
    * Error messages are redacted and bounded (:data:`MAX_MESSAGE_BYTES`, far below propeller's 2 MB
      read limit), keeping the head and the tail of the traceback.
"""

from __future__ import annotations

import errno
import logging
import os
import time
import traceback
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from taskbox import redaction, storage
from taskbox.errors import TaskboxError

if TYPE_CHECKING:
    from flyteidl.core import errors_pb2, literals_pb2

_log = logging.getLogger("taskbox")

OUTPUTS_FILE = "outputs.pb"
ERROR_FILE = "error.pb"
MAX_MESSAGE_BYTES = 64 * 1024

_DIST_ERROR_VARS = ("FLYTE_INTERNAL_DIST_ERROR_STRATEGY", "_F_DES")
_WORKER_VARS = ("FLYTE_INTERNAL_WORKER_NAME", "_F_WN")  # flytekit's order


def _worker_name() -> str:
    """The worker's name under the distributed error strategy, else ``""`` (flytekit's rule)."""
    if not any(os.environ.get(v) for v in _DIST_ERROR_VARS):
        return ""
    return next((os.environ[v] for v in _WORKER_VARS if os.environ.get(v)), "")


def _worker_error_file(worker: str) -> str:
    import hashlib  # lazy: only distributed workers pay for it

    return f"error-{hashlib.sha256(worker.encode('utf-8', 'surrogatepass')).hexdigest()[:32]}.pb"


def error_file_name() -> str:
    """``error.pb``, or ``error-<32 hex>.pb`` under Flyte's distributed error strategy (``_F_DES``).

    The hex is derived from the worker's name when there is one (a rerun of the worker replaces its own
    document), random otherwise (flytekit's ``uuid4().hex``).
    """
    if not any(os.environ.get(v) for v in _DIST_ERROR_VARS):
        return ERROR_FILE
    worker = _worker_name()
    return _worker_error_file(worker) if worker else f"error-{os.urandom(16).hex()}.pb"


def _bounded(text: str, limit: int = MAX_MESSAGE_BYTES) -> str:
    data = text.encode("utf-8", errors="replace")
    if len(data) <= limit:
        return text
    keep = limit // 2 - 64
    head = data[:keep].decode("utf-8", errors="ignore")
    tail = data[-keep:].decode("utf-8", errors="ignore")
    return f"{head}\n... [{len(data) - 2 * keep} bytes cut] ...\n{tail}"


def describe(exc: BaseException) -> tuple[str, str, bool, str]:
    """Classify an exception for the error document.

    Args:
        exc: What ended the run.

    Returns:
        ``(code, origin, recoverable, message)``. taskbox errors carry their own mapping; anything
        else escaped translation and is reported as a recoverable SYSTEM error (flytekit's rule).

    """
    if isinstance(exc, TaskboxError):
        code, origin, recoverable = exc.code, exc.origin, exc.recoverable
    elif isinstance(exc, OSError) and exc.errno == errno.ENOSPC:  # e.g. pyarrow writing Parquet to a full disk
        code, origin, recoverable = "SYSTEM:DiskFull", "SYSTEM", True
    else:
        code, origin, recoverable = f"SYSTEM:{type(exc).__name__}", "SYSTEM", True
    summary = f"{type(exc).__name__}: {exc}"
    trace = "".join(traceback.format_exception(exc))
    message = redaction.redact(f"{summary}\n\nTrace:\n{trace}")
    return code, origin, recoverable, _bounded(message)


def error_document(exc: BaseException) -> errors_pb2.ErrorDocument:
    """Build Flyte's ``ErrorDocument`` for an exception."""
    from flyteidl.core import errors_pb2

    code, origin, recoverable, message = describe(exc)
    error = errors_pb2.ContainerError(
        code=code,
        message=message,
        kind=errors_pb2.ContainerError.RECOVERABLE if recoverable else errors_pb2.ContainerError.NON_RECOVERABLE,
        origin=_origin_enum(origin),
    )
    error.timestamp.FromNanoseconds(time.time_ns())
    worker = _worker_name()
    if worker:
        error.worker = worker
    return errors_pb2.ErrorDocument(error=error)


def _origin_enum(origin: str) -> int:
    from flyteidl.core import execution_pb2

    return execution_pb2.ExecutionError.USER if origin == "USER" else execution_pb2.ExecutionError.SYSTEM


def _prepare(output_prefix: str, other: str, stale: Iterable[str], companions: Mapping[str, bytes] | None) -> None:
    """Remove the other kind's commit file and stale companions, then write this kind's companions."""
    storage.remove(storage.join(output_prefix, other))
    worker = _worker_name() if other == ERROR_FILE else ""
    if worker:  # this worker's own error document from an earlier run into the same prefix
        storage.remove(storage.join(output_prefix, _worker_error_file(worker)))
    for name in stale:
        storage.remove(storage.join(output_prefix, name))
    for name, data in (companions or {}).items():
        storage.write_bytes(storage.join(output_prefix, name), data)


def commit_outputs(
    output_prefix: str,
    outputs: literals_pb2.LiteralMap,
    *,
    companions: Mapping[str, bytes] | None = None,
    stale: Iterable[str] = (),
) -> str:
    """Write ``outputs.pb`` as the run's commit, removing a stale ``error.pb`` (and this worker's) first.

    Args:
        output_prefix: Where the commit goes.
        outputs: The outputs.
        companions: File name -> bytes written under the prefix before ``outputs.pb`` (``taskbox run``'s
            ``outputs.json`` and one file per output), so the commit file still comes last.
        stale: File names an earlier run of the other kind may have left (``error.json``); removed first.

    Returns:
        The URI written.

    """
    _prepare(output_prefix, ERROR_FILE, stale, companions)
    uri = storage.join(output_prefix, OUTPUTS_FILE)
    storage.write_bytes(uri, outputs.SerializeToString())
    return uri


def commit_error(
    output_prefix: str,
    exc: BaseException,
    *,
    companions: Mapping[str, bytes] | None = None,
    stale: Iterable[str] = (),
    document: Any = None,
) -> str:
    """Write ``error.pb`` for ``exc`` as the run's commit, removing a stale ``outputs.pb`` first.

    Args:
        output_prefix: Where the commit goes.
        exc: What ended the run.
        companions: File name -> bytes written before ``error.pb`` (``taskbox run``'s ``error.json``).
        stale: Output files an earlier successful run may have left (``outputs.json``, one per output);
            removed after ``outputs.pb``, so no partial outputs remain beside an error.
        document: The error document to write instead of :func:`error_document` (``a0`` writes Flyte 2's,
            always as ``error.pb``).

    Returns:
        The URI written.

    """
    file_name = ERROR_FILE if document is not None else error_file_name()
    if document is None:
        document = error_document(exc)
    try:
        _prepare(output_prefix, OUTPUTS_FILE, stale, companions)
    except TaskboxError as prepare_exc:
        # Still commit the error: propeller reads error.pb before outputs.pb, so an outputs.pb that could
        # not be removed is ignored, and the attempt fails (and is retried) instead of ending with no
        # commit file at all.
        _log.warning("could not clear the prefix before writing the error document: %s", prepare_exc)
    uri = storage.join(output_prefix, file_name)
    storage.write_bytes(uri, document.SerializeToString())
    return uri
