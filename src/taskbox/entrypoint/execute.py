"""``taskbox execute``: the run pipeline behind Flyte's container contract.

Flow (the shared pipeline, :mod:`taskbox.entrypoint.pipeline`): load the task through its resolver ->
read ``inputs.pb`` (a ``LiteralMap``, possibly 0 bytes) -> convert inputs by the declared interface ->
run -> convert outputs by the declared interface (data blobs are uploaded here) -> commit ``outputs.pb``;
on any failure commit ``error.pb`` instead. This module holds ``execute``'s hooks and its commit.

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
    * Under Dagster Pipes (``DAGSTER_PIPES_CONTEXT`` set; :mod:`taskbox.entrypoint.pipes`) the committed
      outputs are reported too; inputs still come from ``inputs.pb`` (extras are not read) and the exit
      code stays Flyte's: a failure exits 0 unless ``--fail-on-error``, and Dagster's clients judge by it.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from typing import Any

from taskbox import redaction, storage
from taskbox.entrypoint import commit
from taskbox.entrypoint.cmdline import ExecuteOptions
from taskbox.entrypoint.pipeline import Steps, make_working_dir, remove_working_dir, run_committed, run_steps
from taskbox.entrypoint.protofiles import read_message
from taskbox.entrypoint.resolvers import TEMPLATE_RESOLVERS, LoadedTask, load_task
from taskbox.entrypoint.signals import EXIT_TERMINATED, TerminationGuard
from taskbox.errors import InputError

__all__ = [
    "DEFAULT_MAX_INPUTS_BYTES",
    "ExecuteOptions",
    "commit_failure",
    "commit_outputs",
    "execute",
    "make_working_dir",
    "read_encoded_inputs",
    "read_inputs",
    "read_platform_inputs",
    "remove_working_dir",
]

log = logging.getLogger("taskbox")

#: Converting inputs.pb peaks at <= 10x its size + 150 MiB (tests/reliability/test_resource_bounds.py; the
#: worst shape, dict[str, int], measured ~8x + 45 MiB at 128 MiB). 160 MiB puts that bound at 1.75 GiB, so a
#: file this cap accepts converts inside a 2 GiB pod with ~300 MiB left for the executor's own work.
DEFAULT_MAX_INPUTS_BYTES = 160 * 1024 * 1024
EXIT_OK = 0
EXIT_FAILED = 1


def read_inputs(uri: str) -> Any:
    """Read ``inputs.pb`` as a ``LiteralMap`` (0 bytes is an empty map, as propeller may write).

    Raises:
        InputDecodeError: The bytes do not parse.
        InputError: They parse only past protobuf's nesting limit.
        InputTooLarge: The file is over ``TASKBOX_MAX_INPUTS_BYTES``.
        StorageError: The file cannot be read.
    """
    from flyteidl.core import literals_pb2

    return _read_inputs_as(uri, literals_pb2.LiteralMap())


def _read_inputs_as(uri: str, message: Any) -> Any:
    """Read ``inputs.pb`` into ``message`` under the inputs cap (``TASKBOX_MAX_INPUTS_BYTES``)."""
    from taskbox.literals.wire import InputDecodeError

    return read_message(
        uri,
        message,
        limit_env="TASKBOX_MAX_INPUTS_BYTES",
        default_limit=DEFAULT_MAX_INPUTS_BYTES,
        error=InputDecodeError,
        nested_error=InputError,
        what="LiteralMap",
    )


def read_encoded_inputs(uri: str) -> dict[str, bytes]:
    """Read ``inputs.pb`` as name -> serialized ``Literal`` (each input is parsed when it is converted).

    Protobuf parses only the map's frame here, so the file costs about twice its size until the inputs
    are converted (see :mod:`taskbox.literals.wire`), not protobuf's ~13x for a ``LiteralMap`` of small
    literals. Errors as :func:`read_inputs`; who is to blame for them is the caller's decision
    (:func:`read_platform_inputs` for the file propeller wrote).
    """
    from taskbox.literals import wire

    message = _read_inputs_as(uri, wire.split_map())
    encoded = dict(message.literals)
    message.Clear()
    return encoded


def read_platform_inputs(uri: str) -> dict[str, bytes]:
    """:func:`read_encoded_inputs` for the ``inputs.pb`` the platform wrote (``execute``, ``fast-execute``, ``a0``).

    Raises:
        PlatformFileError: The file is missing, refused or its frame is damaged (SYSTEM, recoverable).
    """
    from taskbox.entrypoint.blame import read_platform_file

    return read_platform_file(lambda: read_encoded_inputs(uri), "Inputs")


class _ExecuteSteps(Steps):
    """``taskbox execute``'s hooks: the resolver and ``inputs.pb`` named on the command line.

    Both files are the platform's: ``inputs.pb`` and, for the template resolvers, the template at
    ``{{.taskTemplatePath}}`` (:mod:`taskbox.entrypoint.blame`).
    """

    platform_inputs = True

    def __init__(self, opts: ExecuteOptions, prepare: Callable[[], object] | None) -> None:
        super().__init__(
            opts.output_prefix, checkpoint_path=opts.checkpoint_path, prev_checkpoint=opts.prev_checkpoint, log=log
        )
        self.opts = opts
        self.prepare = prepare
        self.pipes: Any = None  # a Dagster Pipes session when DAGSTER_PIPES_CONTEXT is set

    def load(self, working_dir: str) -> LoadedTask:
        from taskbox import settings

        if settings.string("DAGSTER_PIPES_CONTEXT"):  # Dagster started us: report to it
            from taskbox.entrypoint import pipes

            self.pipes = pipes.open_session(os.environ)
            if self.pipes.extras:
                log.info("taskbox execute reads its inputs from inputs.pb: Dagster Pipes extras left alone")
        if self.prepare is not None:
            self.prepare()
        resolver, args = self.opts.resolver, self.opts.resolver_args
        if resolver in TEMPLATE_RESOLVERS and 1 <= len(args) <= 2:  # the template file is read here, blamed apart
            from taskbox.entrypoint.blame import read_platform_file
            from taskbox.entrypoint.template import read_template

            template = read_platform_file(lambda: read_template(args[0]), "Template")
            return load_task(resolver, args, working_dir, template=template)
        return load_task(resolver, args, working_dir)

    def raw_output_prefix(self) -> str:
        return self.opts.raw_output_prefix or storage.join(self.opts.output_prefix, "data")

    def read_inputs(self, task: LoadedTask, conversion: Any) -> dict[str, bytes]:
        return read_platform_inputs(self.opts.inputs)

    def commit_success(self, outputs: Any) -> int:
        code = commit_outputs(self.opts.output_prefix, outputs)
        if self.pipes is not None:  # after the commit: Dagster hears only of committed outputs
            self.pipes.report_success(outputs, where=self.opts.output_prefix)
            self.pipes.close()
        return code

    def commit_failure(self, failure: BaseException) -> int:
        code = commit_failure(self.opts.output_prefix, failure)
        if self.pipes is not None:  # last: closed with the error, after the error document
            self.pipes.close(failure)
        return code


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
    steps = _ExecuteSteps(opts, prepare)
    outcome = run_committed(
        guard,
        lambda working_dir, cancelled: run_steps(steps, working_dir, cancelled),
        on_success=steps.commit_success,
        on_failure=steps.commit_failure,
    )
    code: int = outcome.result
    if guard.received:
        return EXIT_TERMINATED
    if code == EXIT_OK and outcome.run_failure is not None and opts.fail_on_error:
        return EXIT_FAILED
    return code


def commit_outputs(output_prefix: str, outputs: Any) -> int:
    """Commit ``outputs.pb`` (v1's ``LiteralMap`` bytes are also v2's ``Outputs``) and return exit code 0."""
    uri = commit.commit_outputs(output_prefix, outputs)
    log.info("committed %s", uri)
    return EXIT_OK


def commit_failure(output_prefix: str, failure: BaseException, *, document: Any = None) -> int:
    """Say the failure on stderr, commit ``error.pb`` and return the exit code (1 if not even that works).

    Args:
        output_prefix: Where the commit goes.
        failure: What ended the run.
        document: The error document to write (``a0`` passes Flyte 2's); v1's for ``failure`` if ``None``.
    """
    if document is None:
        code, origin, recoverable, message = commit.describe(failure)
    else:
        from flyteidl.core import execution_pb2

        error = document.error
        code, message = error.code, error.message
        origin = "USER" if error.origin == execution_pb2.ExecutionError.USER else "SYSTEM"
        recoverable = error.kind == error.RECOVERABLE
    first_line = message.splitlines()[0] if message else ""
    print(
        f"taskbox: task failed ({code}, {origin}, {'recoverable' if recoverable else 'non-recoverable'}): {first_line}",
        file=sys.stderr,
    )
    try:
        uri = commit.commit_error(output_prefix, failure, document=document)
    except BaseException as exc:  # noqa: BLE001
        print(
            f"taskbox: could not write the error document under {output_prefix}: {redaction.redact(str(exc))}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    log.info("committed %s", uri)
    return EXIT_OK
