"""``taskbox execute``: the run pipeline behind Flyte's container contract.

Flow: load the task through its resolver -> read ``inputs.pb`` (a ``LiteralMap``, possibly 0 bytes) ->
convert inputs by the declared interface -> run -> convert outputs by the declared interface (data
blobs are uploaded here) -> commit ``outputs.pb``; on any failure commit ``error.pb`` instead.

Invariants:
    * outputs.pb is the commit point: it is written last, once, and only when every output converted
      and every data blob was written (see :mod:`taskbox.entrypoint.commit`).
    * Every failure ends in ``error.pb`` with its USER/SYSTEM origin and recoverability, and exit code 0
      (Flyte's contract; propeller ignores ``error.pb`` after a non-zero exit). ``--fail-on-error`` or
      ``FLYTE_FAIL_ON_ERROR`` turn that into exit 1; SIGTERM always exits 143.
    * If even ``error.pb`` cannot be written, the reason goes to stderr and the exit code is 1, so the
      pod fails visibly.
    * Memory: inputs stay serialized per input until converted (and are dropped as they are), outputs
      are serialized without a protobuf message per element (:mod:`taskbox.literals.wire`), so a run
      peaks at <= 10x the size of ``inputs.pb`` + 150 MiB; :data:`DEFAULT_MAX_INPUTS_BYTES` keeps that
      inside a 2 GiB pod.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

from taskbox import redaction, storage
from taskbox.entrypoint import commit
from taskbox.entrypoint.protofiles import read_message
from taskbox.entrypoint.resolvers import load_task
from taskbox.entrypoint.signals import EXIT_TERMINATED, TerminationGuard
from taskbox.errors import InputError

log = logging.getLogger("taskbox")

#: Converting inputs.pb peaks at <= 10x its size + 150 MiB (tests/reliability/test_resource_bounds.py; the
#: worst shape, dict[str, int], measured ~8x + 45 MiB at 128 MiB). 160 MiB puts that bound at 1.75 GiB, so a
#: file this cap accepts converts inside a 2 GiB pod with ~300 MiB left for the executor's own work.
DEFAULT_MAX_INPUTS_BYTES = 160 * 1024 * 1024
EXIT_OK = 0
EXIT_FAILED = 1


class ExecuteOptions:
    """The flags of ``taskbox execute`` (``pyflyte-execute``'s, after placeholder normalisation)."""

    __slots__ = (
        "checkpoint_path",
        "fail_on_error",
        "inputs",
        "output_prefix",
        "prev_checkpoint",
        "raw_output_prefix",
        "resolver",
        "resolver_args",
    )

    def __init__(
        self,
        inputs: str,
        output_prefix: str,
        resolver: str,
        resolver_args: Sequence[str] = (),
        raw_output_prefix: str | None = None,
        checkpoint_path: str | None = None,
        prev_checkpoint: str | None = None,
        fail_on_error: bool = False,
    ) -> None:
        self.inputs = inputs
        self.output_prefix = output_prefix
        self.resolver = resolver
        self.resolver_args = list(resolver_args)
        self.raw_output_prefix = raw_output_prefix
        self.checkpoint_path = checkpoint_path
        self.prev_checkpoint = prev_checkpoint
        self.fail_on_error = fail_on_error


def read_inputs(uri: str) -> Any:
    """Read ``inputs.pb`` as a ``LiteralMap`` (0 bytes is an empty map, as propeller may write)."""
    from flyteidl.core import literals_pb2  # noqa: PLC0415

    return _read_inputs_as(uri, literals_pb2.LiteralMap())


def _read_inputs_as(uri: str, message: Any) -> Any:
    """Read ``inputs.pb`` into ``message`` under the inputs cap (``TASKBOX_MAX_INPUTS_BYTES``)."""
    return read_message(
        uri,
        message,
        limit_env="TASKBOX_MAX_INPUTS_BYTES",
        default_limit=DEFAULT_MAX_INPUTS_BYTES,
        error=InputError,
        what="LiteralMap",
    )


def read_encoded_inputs(uri: str) -> dict[str, bytes]:
    """Read ``inputs.pb`` as name -> serialized ``Literal`` (each input is parsed when it is converted).

    Protobuf parses only the map's frame here, so the file costs about twice its size until the inputs
    are converted (see :mod:`taskbox.literals.wire`), not protobuf's ~13x for a ``LiteralMap`` of small
    literals.
    """
    from taskbox.literals import wire  # noqa: PLC0415

    message = _read_inputs_as(uri, wire.split_map())
    encoded = dict(message.literals)
    message.Clear()
    return encoded


def _run(
    opts: ExecuteOptions, working_dir: str, cancelled: threading.Event, prepare: Callable[[], object] | None
) -> Any:
    from taskbox.context import ExecutionContext  # noqa: PLC0415
    from taskbox.literals import ConversionContext, offload_limits_from_env  # noqa: PLC0415
    from taskbox.literals.maps import encoded_map_to_python, python_to_encoded_map  # noqa: PLC0415
    from taskbox.literals.offload import offload_encoded  # noqa: PLC0415

    if prepare is not None:
        prepare()
    task = load_task(opts.resolver, opts.resolver_args, working_dir)
    raw_prefix = opts.raw_output_prefix or storage.join(opts.output_prefix, "data")
    conversion = ConversionContext(raw_output_prefix=raw_prefix, working_dir=working_dir)
    # The input bytes are dropped input by input as they are converted (item 16: memory ~ file size).
    inputs = encoded_map_to_python(
        read_encoded_inputs(opts.inputs), task.input_types, conversion, optional=task.optional_inputs
    )
    context = ExecutionContext.from_env(
        output_prefix=opts.output_prefix,
        raw_output_prefix=raw_prefix,
        working_dir=working_dir,
        checkpoint_path=opts.checkpoint_path,
        prev_checkpoint=opts.prev_checkpoint,
        output_types=task.output_types,
        template=task.template,
        cancelled=cancelled,
    )
    log.info("running %s", task.name)
    values = task.body(context, inputs)
    del inputs
    outputs = python_to_encoded_map(values, task.output_types, conversion)
    del values
    offload = offload_limits_from_env()
    if offload is not None:
        outputs = offload_encoded(outputs, opts.output_prefix, *offload, variables=task.output_types)
    return outputs


def make_working_dir() -> str:
    """Create a private scratch directory under ``$TMPDIR`` (``tempfile`` costs ~6 ms to import)."""
    base = os.environ.get("TMPDIR") or "/tmp"
    while True:
        path = os.path.join(base, f"taskbox-{os.urandom(6).hex()}")
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue


def remove_working_dir(path: str) -> None:
    """Remove the scratch directory; cheap when the run left it empty."""
    try:
        os.rmdir(path)
    except OSError:
        import shutil  # noqa: PLC0415

        shutil.rmtree(path, ignore_errors=True)


def execute(opts: ExecuteOptions, guard: TerminationGuard, prepare: Callable[[], object] | None = None) -> int:
    """Run one task and commit its result.

    Args:
        opts: Parsed flags.
        guard: The process's SIGTERM guard (installed by the CLI before anything heavy loads).
        prepare: Runs first, under the guard, before the task loads (``fast-execute`` installs the code
            bundle here); whatever it raises ends in ``error.pb`` like any other failure.

    Returns:
        The process exit code.

    """
    working_dir = make_working_dir()
    cancelled = threading.Event()
    try:
        try:
            outcome: Any = guard.run(lambda: _run(opts, working_dir, cancelled, prepare), cancelled)
            failure: BaseException | None = None
        except BaseException as exc:  # noqa: BLE001 - every failure must end in error.pb
            outcome, failure = None, exc
        code = _commit(opts.output_prefix, outcome, failure)
    finally:
        remove_working_dir(working_dir)
    if guard.received:
        return EXIT_TERMINATED
    if code == EXIT_OK and failure is not None and opts.fail_on_error:
        return EXIT_FAILED
    return code


def _commit(output_prefix: str, outputs: Any, failure: BaseException | None) -> int:
    if failure is None:
        try:
            uri = commit.commit_outputs(output_prefix, outputs)
            log.info("committed %s", uri)
            return EXIT_OK
        except BaseException as exc:  # noqa: BLE001 - a failed commit is reported like any failure
            failure = exc
    code, origin, recoverable, message = commit.describe(failure)
    first_line = message.splitlines()[0] if message else ""
    print(
        f"taskbox: task failed ({code}, {origin}, {'recoverable' if recoverable else 'non-recoverable'}): {first_line}",
        file=sys.stderr,
    )
    try:
        uri = commit.commit_error(output_prefix, failure)
    except BaseException as exc:  # noqa: BLE001
        print(
            f"taskbox: could not write the error document under {output_prefix}: {redaction.redact(str(exc))}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    log.info("committed %s", uri)
    return EXIT_OK
