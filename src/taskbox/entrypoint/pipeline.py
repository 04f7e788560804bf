"""The run pipeline, one for every caller: load the task -> read inputs -> run -> convert -> commit.

Callers differ only in their hooks (:class:`Steps`) and in what they do with the outcome:

* ``taskbox execute`` / ``fast-execute`` (:mod:`taskbox.entrypoint.execute`): resolver and ``inputs.pb``
  from the command line; commits ``outputs.pb`` or ``error.pb`` and exits 0 (Flyte's contract).
* ``taskbox run`` (:mod:`taskbox.entrypoint.run`): the template is resolved from plain files; inputs
  come from JSON/YAML/flags; the commit adds plain-IO companions and the exit code tells the outcome.
* In-process runs (:mod:`taskbox.authoring.base` / :mod:`taskbox.authoring.local`) go through
  ``taskbox execute`` and read the committed files back as Python values.

Example::

    outcome = run_committed(guard, lambda wd, cancelled: run_steps(MySteps(...), wd, cancelled),
                            on_success=commit_outputs, on_failure=commit_error)

Invariants:
    * Inputs stay serialized per input (name -> bytes, :func:`taskbox.literals.wire.split_map`) until
      each is converted, and outputs are serialized without a protobuf message per element, so a run
      peaks at about 10x the size of its inputs (see :mod:`taskbox.entrypoint.execute`).
    * Everything up to the commit runs under the SIGTERM guard; the commit runs after it, so a commit
      is never cut in half by the guard. A failed success-commit is handled as any failure.
    * The scratch directory is private (0700) and removed after the commit, whatever happened.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskbox.entrypoint.resolvers import LoadedTask
    from taskbox.entrypoint.signals import TerminationGuard

__all__ = [
    "Outcome",
    "Steps",
    "default_outputs_dir",
    "make_working_dir",
    "remove_working_dir",
    "run_committed",
    "run_steps",
    "scratch_dir",
]


class Steps:
    """The hooks of one run: what differs between callers. Subclasses override :meth:`load` and :meth:`read_inputs`.

    Attributes:
        platform_inputs: The platform wrote the inputs file (``execute``, ``fast-execute``, ``a0``): an input
            whose bytes do not parse is the platform's failure, not the user's (:mod:`taskbox.entrypoint.blame`).
            ``False`` (``taskbox run``): the user gave the file.

    Args:
        output_prefix: Where the outputs (and offloaded literals) go.
        checkpoint_path: ``--checkpoint-path``.
        prev_checkpoint: ``--prev-checkpoint``.
        log: The logger that says which task runs.
    """

    platform_inputs = False

    def __init__(
        self,
        output_prefix: str,
        *,
        checkpoint_path: str | None = None,
        prev_checkpoint: str | None = None,
        log: logging.Logger | None = None,
    ) -> None:
        self.output_prefix = output_prefix
        self.checkpoint_path = checkpoint_path
        self.prev_checkpoint = prev_checkpoint
        self.log = log or logging.getLogger("taskbox")

    def load(self, working_dir: str) -> LoadedTask:
        """Load the task (and install whatever it needs first)."""
        raise NotImplementedError

    def raw_output_prefix(self) -> str:
        """Where data blobs go (asked once the task is loaded)."""
        raise NotImplementedError

    def read_inputs(self, task: LoadedTask, conversion: Any) -> dict[str, bytes]:
        """Return the inputs as name -> serialized ``Literal`` (converted, and dropped, one by one)."""
        raise NotImplementedError

    def step(self, message: str) -> None:
        """A step of the run finished (``taskbox run`` reports progress); nothing by default."""


def run_steps(steps: Steps, working_dir: str, cancelled: threading.Event) -> Any:
    """Run one task through ``steps`` and return its outputs, converted and ready to commit.

    Returns:
        A :class:`taskbox.literals.wire.EncodedLiteralMap`.

    Raises:
        Whatever a step raises (typed taskbox errors; anything else is classified at the commit). With
        ``steps.platform_inputs``, an input whose bytes do not parse is a ``PlatformFileError``.
    """
    from taskbox.context import ExecutionContext
    from taskbox.errors import StorageDenied, StorageNotFound
    from taskbox.literals import ConversionContext, offload_limits_from_env
    from taskbox.literals.maps import encoded_map_to_python, python_to_encoded_map
    from taskbox.literals.offload import OffloadedDecodeError, offload_encoded
    from taskbox.literals.origins import Origins
    from taskbox.literals.wire import InputDecodeError

    task = steps.load(working_dir)
    raw_prefix = steps.raw_output_prefix()
    # Origins: a value passed through unchanged keeps its union variant, hash and metadata.
    conversion = ConversionContext(raw_output_prefix=raw_prefix, working_dir=working_dir, origins=Origins())
    # The input bytes are dropped input by input as they are converted (memory ~ file size).
    try:
        inputs = encoded_map_to_python(
            steps.read_inputs(task, conversion), task.input_types, conversion, optional=task.optional_inputs
        )
    except (InputDecodeError, OffloadedDecodeError, StorageNotFound, StorageDenied) as exc:
        # An input's bytes are damaged or missing (inputs.pb, or an offloaded literal it points to, which an
        # upstream task wrote): whose file was it?
        if not steps.platform_inputs:
            raise
        from taskbox.entrypoint.blame import platform_file_error

        subject = None if isinstance(exc, InputDecodeError) else "an offloaded input literal"
        raise platform_file_error(exc, "Inputs", subject) from exc
    steps.step(f"read {len(inputs)} input(s)")
    context = ExecutionContext.from_env(
        output_prefix=steps.output_prefix,
        raw_output_prefix=raw_prefix,
        working_dir=working_dir,
        checkpoint_path=steps.checkpoint_path,
        prev_checkpoint=steps.prev_checkpoint,
        output_types=task.output_types,
        template=task.template,
        cancelled=cancelled,
    )
    steps.log.info("running %s", task.name)
    values = task.body(context, inputs)
    del inputs
    steps.step("task finished")
    outputs = python_to_encoded_map(values, task.output_types, conversion)
    del values
    offload = offload_limits_from_env()
    if offload is not None:
        outputs = offload_encoded(outputs, steps.output_prefix, *offload, variables=task.output_types)
    return outputs


class Outcome:
    """How a run ended.

    Attributes:
        failure: What failed: the run, or the commit of its outputs; ``None`` on success.
        run_failure: What the run itself raised (``None`` if it returned, even if its commit failed).
        result: What the success or failure hook returned.
    """

    __slots__ = ("failure", "result", "run_failure")

    def __init__(self, failure: BaseException | None, run_failure: BaseException | None, result: Any) -> None:
        self.failure = failure
        self.run_failure = run_failure
        self.result = result


def run_committed(
    guard: TerminationGuard,
    body: Callable[[str, threading.Event], Any],
    *,
    on_success: Callable[[Any], Any],
    on_failure: Callable[[BaseException], Any],
) -> Outcome:
    """Run ``body(working_dir, cancelled)`` under ``guard`` in a private scratch directory, then commit.

    Args:
        guard: The process's SIGTERM guard.
        body: The run (usually :func:`run_steps`); returns the outputs.
        on_success: Commits the outputs; what it returns becomes :attr:`Outcome.result`. If it raises,
            the exception is handled as a failure.
        on_failure: Commits the failure (it must not raise); what it returns becomes :attr:`Outcome.result`.

    """
    working_dir = make_working_dir()
    cancelled = threading.Event()
    try:
        try:
            outputs: Any = guard.run(lambda: body(working_dir, cancelled), cancelled)
            run_failure: BaseException | None = None
        except BaseException as exc:  # noqa: BLE001 - every failure must end in an error document
            outputs, run_failure = None, exc
        failure = run_failure
        result: Any = None
        if failure is None:
            try:
                result = on_success(outputs)
            except BaseException as exc:  # noqa: BLE001 - a failed commit is reported like any failure
                failure = exc
        if failure is not None:
            result = on_failure(failure)
    finally:
        remove_working_dir(working_dir)
    return Outcome(failure, run_failure, result)


def scratch_dir(prefix: str) -> str:
    """Create a private (0700) directory ``$TMPDIR/<prefix><random>`` (``tempfile`` costs ~6 ms to import)."""
    base = os.environ.get("TMPDIR") or "/tmp"
    while True:
        path = os.path.join(base, f"{prefix}{os.urandom(6).hex()}")
        try:
            os.mkdir(path, 0o700)
            return path
        except FileExistsError:
            continue


def default_outputs_dir() -> str:
    """Create a directory under ``$TMPDIR`` for ``taskbox run`` without ``--outputs`` (kept: outputs point there)."""
    return scratch_dir("taskbox-run-")


def make_working_dir() -> str:
    """Create a run's private scratch directory under ``$TMPDIR``."""
    return scratch_dir("taskbox-")


def remove_working_dir(path: str) -> None:
    """Remove the scratch directory; cheap when the run left it empty."""
    try:
        os.rmdir(path)
    except OSError:
        import shutil

        shutil.rmtree(path, ignore_errors=True)
