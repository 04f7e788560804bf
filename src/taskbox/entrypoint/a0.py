"""``taskbox a0``: Flyte 2's container contract, in the same images as Flyte v1's.

Two kinds of task arrive under ``a0`` (flags: :mod:`taskbox.entrypoint.cmdline_v2`):

* **A prebuilt executor's task** (``--resolver taskbox.flyte2.PrebuiltTaskResolver template <encoded>``):
  taskbox's run pipeline, as ``taskbox execute`` runs it, with Flyte 2's documents. The template travels in
  the resolver args, because the v2 backend renders ``{{.taskTemplatePath}}`` as ``inline://taskTemplate``.
  No flyte SDK is needed.
* **A flyte-sdk user task** (any other resolver, or ``--pkl``): handed to the installed SDK's own runtime
  (``flyte._bin.runtime``), so nested task calls, contexts and type transformers keep flyte's semantics.
  taskbox adds its validated ``--tgz`` extraction, the stale-commit cleanup and a commit when the SDK's
  runtime ends without one (SIGTERM, a crash).

Wire: v2's ``Inputs`` (repeated ``NamedLiteral`` + ``context``) and ``Outputs`` share v1 ``LiteralMap``'s
field numbers and wire shape, so the v1 readers and writers apply (the ``context`` entries are not inputs and
are skipped). ``error.pb`` is v2's ``ErrorDocument``: ``ContainerError`` code, message, kind, origin; no
timestamp or worker (v2 has neither field).

Invariants:
    * Exactly one of ``outputs.pb``/``error.pb`` is committed; a rerun removes the other one first.
    * Error policy of v2: a taskbox error keeps its origin and recoverability, with the code after the
      ``USER:``/``SYSTEM:`` prefix (v2 carries the origin separately); any other exception is USER and
      recoverable, its type name the code (flyte's rule for an exception raised by a task). Messages are
      redacted.
    * ``inputs.pb`` is the platform's under both kinds of task: missing, refused or damaged, it is a SYSTEM,
      recoverable ``Inputs...`` error (:mod:`taskbox.entrypoint.blame`), also when flyte's runtime was the one
      reading it (it would exit 1 without ``error.pb``; the pod failure is retried).
    * Exit 0 after any commit (the backend reads ``error.pb``); 143 after SIGTERM; 2 on a malformed command
      line (``error.pb`` is still written when ``--outputs-path`` was readable).
    * ``--tgz`` bundles go through taskbox's validated extraction into ``DEST/.taskbox-bundles/<key>/``,
      which becomes the working directory (v2 unpacks into ``DEST`` itself); imports and relative paths of
      the bundle's files resolve as under v2.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
from collections.abc import Mapping
from typing import Any

from taskbox import redaction, storage
from taskbox.entrypoint import commit
from taskbox.entrypoint.cmdline import UsageError
from taskbox.entrypoint.cmdline_v2 import PREBUILT_RESOLVER, A0Options, decode_template, parse_a0
from taskbox.entrypoint.execute import commit_failure, commit_outputs, read_platform_inputs
from taskbox.entrypoint.pipeline import Steps, run_committed, run_steps
from taskbox.entrypoint.resolvers import LoadedTask
from taskbox.entrypoint.signals import EXIT_TERMINATED, TerminationGuard
from taskbox.errors import ConfigError, PlatformError, TaskboxError, TemplateError, UserError

__all__ = ["FlyteSDKMissing", "PrebuiltSteps", "decode_inline_template", "error_document_v2", "main", "prebuilt_args"]

log = logging.getLogger("taskbox")

EXIT_OK = 0
EXIT_USAGE = 2
#: The resolver args' keys of :data:`PREBUILT_RESOLVER`.
_PREBUILT_KEYS = ("template", "executor")


class FlyteSDKMissing(UserError):
    """A flyte-sdk user task reached an image without the ``flyte`` SDK."""

    code = "USER:FlyteSDKMissing"


class RuntimeEndedWithoutCommit(PlatformError):
    """flyte's runtime returned without writing ``outputs.pb`` or ``error.pb``."""

    code = "SYSTEM:NoCommitFile"


def error_document_v2(exc: BaseException) -> Any:
    """Flyte 2's ``ErrorDocument`` for ``exc`` (v1's message type: the fields v2 has share their numbers).

    Returns:
        A ``flyteidl.core.errors_pb2.ErrorDocument`` without ``timestamp``/``worker``.
    """
    from flyteidl.core import errors_pb2, execution_pb2

    code, origin, recoverable, message = commit.describe(exc)
    if isinstance(exc, TaskboxError) or (isinstance(exc, OSError) and exc.errno == errno.ENOSPC):
        code = code.split(":", 1)[-1]
    else:  # v2: an exception a task raised is the user's, and worth a retry
        code, origin, recoverable = type(exc).__name__, "USER", True
    kind = errors_pb2.ContainerError.RECOVERABLE if recoverable else errors_pb2.ContainerError.NON_RECOVERABLE
    origin_enum = execution_pb2.ExecutionError.USER if origin == "USER" else execution_pb2.ExecutionError.SYSTEM
    return errors_pb2.ErrorDocument(
        error=errors_pb2.ContainerError(code=code, message=message, kind=kind, origin=origin_enum)
    )


def main(argv: list[str], environ: Mapping[str, str] | None = None) -> int:
    """``taskbox a0``.

    Returns:
        The exit code.
    """
    if argv[:1] in (["-h"], ["--help"]):
        from taskbox.entrypoint.cmdline_v2 import USAGE

        print(USAGE)
        return EXIT_OK
    guard = TerminationGuard()
    guard.install()
    try:
        opts = parse_a0(argv, environ)
        if opts.resolver is None and not opts.pkl:
            raise UsageError("a0: --resolver CLASS [ARGS...] (or a --pkl bundle) is required")
    except UsageError as exc:
        print(f"taskbox {exc}", file=sys.stderr)
        _commit_usage_error(argv, exc)
        return EXIT_USAGE
    from taskbox import logs

    logs.configure()
    if opts.resolver is not None and opts.resolver.startswith("taskbox.") and not opts.pkl:
        return _run_prebuilt(opts, guard)
    return _hand_off(opts, guard)


# ------------------------------------------------------------------ prebuilt executors


class PrebuiltSteps(Steps):
    """A prebuilt executor's hooks under ``a0``: the template from the resolver args.

    Used by ``taskbox a0`` and, in-process, by :mod:`taskbox.flyte2` (a flyte-sdk task's local run goes
    through exactly what the image runs). The resolver and its args are checked in :meth:`load`, so a
    malformed line is committed as an error like any other failure.

    Args:
        resolver: ``--resolver`` (must be :data:`PREBUILT_RESOLVER`).
        resolver_args: ``template <encoded> [executor <name>]``.
        inputs_uri: ``inputs.pb`` (v2 ``Inputs`` or v1 ``LiteralMap``: the same wire).
        output_prefix: Where the commit (and offloaded literals) go.
        raw_output_prefix: Where data blobs go.
        checkpoint_path: ``--checkpoint-path``.
        prev_checkpoint: ``--prev-checkpoint``.
        bundle: ``--tgz``: a code bundle holding a plugin executor, installed before the executor loads.
        dest: ``--dest`` for the bundle.

    ``inputs.pb`` is the platform's (a missing, refused or damaged file is ``SYSTEM:Inputs...``, recoverable);
    the template in the resolver args is the user's registration (a bad one stays ``USER:InvalidTemplate``).
    """

    platform_inputs = True

    def __init__(
        self,
        resolver: str,
        resolver_args: list[str],
        inputs_uri: str,
        output_prefix: str,
        raw_output_prefix: str,
        *,
        checkpoint_path: str | None = None,
        prev_checkpoint: str | None = None,
        bundle: str | None = None,
        dest: str | None = None,
    ) -> None:
        super().__init__(output_prefix, checkpoint_path=checkpoint_path, prev_checkpoint=prev_checkpoint, log=log)
        self.resolver = resolver
        self.resolver_args = resolver_args
        self.inputs_uri = inputs_uri
        self.raw = raw_output_prefix
        self.bundle = bundle
        self.dest = dest

    def load(self, working_dir: str) -> LoadedTask:
        """Check the resolver args, install the bundle if any, decode the template, load its executor."""
        from taskbox.entrypoint.template import check_readable, task_from_template

        fields = prebuilt_args(self.resolver, self.resolver_args)
        if self.bundle:  # a plugin executor shipped in a code bundle
            from taskbox.entrypoint.fast_execute import install_bundle

            install_bundle(self.bundle, self.dest or ".")
        template = decode_inline_template(fields["template"])
        check_readable(template, "the task template", reparse=False)
        return task_from_template(template, fields.get("executor"))

    def raw_output_prefix(self) -> str:
        """``--raw-data-path``."""
        return self.raw

    def read_inputs(self, task: LoadedTask, conversion: Any) -> dict[str, bytes]:
        """``inputs.pb`` as name -> serialized literal."""
        return read_platform_inputs(self.inputs_uri)


def prebuilt_args(resolver: str, args: list[str]) -> dict[str, str]:
    """Check :data:`PREBUILT_RESOLVER`'s ``template <encoded> [executor <ref>]`` and return it as a dict.

    Raises:
        TemplateError: Another taskbox resolver, or args of another shape.
    """
    if resolver != PREBUILT_RESOLVER:
        raise TemplateError(f"unknown taskbox resolver {resolver!r} under a0; expected {PREBUILT_RESOLVER}")
    if args[:1] == ["--"]:
        args = args[1:]
    if len(args) % 2 or not args:
        raise TemplateError(f"{PREBUILT_RESOLVER} takes 'template <encoded> [executor <name>]', got {len(args)} args")
    keys = args[::2]
    fields = dict(zip(keys, args[1::2], strict=True))
    if len(fields) != len(keys) or set(fields) - set(_PREBUILT_KEYS) or "template" not in fields:
        raise TemplateError(f"{PREBUILT_RESOLVER} takes 'template <encoded> [executor <name>]', got keys {keys}")
    return fields


def decode_inline_template(encoded: str) -> Any:
    """Decode the resolver args' template (:func:`~taskbox.entrypoint.cmdline_v2.encode_template`'s text).

    Raises:
        TemplateError: Not an encoded template, over ``TASKBOX_MAX_TEMPLATE_BYTES``, or not a ``TaskTemplate``.
    """
    from flyteidl.core import tasks_pb2

    from taskbox import settings

    limit = settings.integer("TASKBOX_MAX_TEMPLATE_BYTES")
    try:
        data = decode_template(encoded, limit)
        return tasks_pb2.TaskTemplate.FromString(data)
    except Exception as exc:  # noqa: BLE001 - ValueError or protobuf's DecodeError: a malformed template
        raise TemplateError(f"the task template in the resolver args cannot be read: {exc}") from None


def _run_prebuilt(opts: A0Options, guard: TerminationGuard) -> int:
    steps = PrebuiltSteps(
        opts.resolver or "",
        opts.resolver_args,
        opts.inputs,
        opts.outputs_path,
        opts.raw_data_path or storage.join(opts.outputs_path, "data"),
        checkpoint_path=opts.checkpoint_path,
        prev_checkpoint=opts.prev_checkpoint,
        bundle=opts.tgz,
        dest=opts.dest,
    )
    outcome = run_committed(
        guard,
        lambda working_dir, cancelled: run_steps(steps, working_dir, cancelled),
        on_success=lambda outputs: commit_outputs(opts.outputs_path, outputs),
        on_failure=lambda failure: _commit_failure(opts.outputs_path, failure),
    )
    return EXIT_TERMINATED if guard.received else int(outcome.result)


def _commit_failure(outputs_path: str, failure: BaseException) -> int:
    return commit_failure(outputs_path, failure, document=error_document_v2(failure))


def _commit_usage_error(argv: list[str], exc: UsageError) -> None:
    """Write ``error.pb`` for a malformed command line when ``--outputs-path`` can still be read."""
    outputs_path = None
    for i, arg in enumerate(argv[:-1]):
        if arg in ("--outputs-path", "-o"):
            outputs_path = argv[i + 1]
    for arg in argv:
        if arg.startswith("--outputs-path="):
            outputs_path = arg.split("=", 1)[1]
    from taskbox.entrypoint.cmdline import normalize

    if normalize(outputs_path) is None:
        return
    assert outputs_path is not None
    _commit_failure(outputs_path, ConfigError(f"malformed a0 command line: {exc}"))


# ------------------------------------------------------------------ flyte-sdk user tasks


def _hand_off(opts: A0Options, guard: TerminationGuard) -> int:
    """Run a flyte-sdk task with the SDK's own runtime; commit for it when it could not."""
    outcome = run_committed(
        guard,
        lambda working_dir, cancelled: _run_flyte_runtime(opts),
        on_success=lambda _: _check_committed(opts.outputs_path),
        on_failure=lambda failure: _commit_unless_committed(opts.outputs_path, failure),
    )
    return EXIT_TERMINATED if guard.received else int(outcome.result)


def _run_flyte_runtime(opts: A0Options) -> None:
    try:
        from flyte._bin import runtime
    except ImportError as exc:
        raise FlyteSDKMissing(
            f"this task needs the flyte SDK ({exc}); run it in an image with taskbox[flyte2] "
            "(the `python` variant), or use taskbox's prebuilt executors (taskbox.flyte2)"
        ) from None
    for name in (commit.OUTPUTS_FILE, commit.ERROR_FILE):  # a new attempt: neither commit is valid any more
        storage.remove(storage.join(opts.outputs_path, name))
    from taskbox.storage import local

    if storage.is_local(opts.outputs_path):  # flyte's local writes do not create the directory
        os.makedirs(local.to_path(opts.outputs_path), exist_ok=True)
    if opts.tgz:
        _install_tgz(opts.tgz, opts.dest or ".")
    runtime._pass_through.main(args=["a0", *opts.argv], prog_name="a0", standalone_mode=False)


def _install_tgz(uri: str, dest: str) -> None:
    """Extract ``--tgz`` with taskbox's checks, make it the working directory, and tell flyte it is done.

    flyte's ``download_bundle`` skips a bundle whose ``DEST/.<archive name>.extracted`` marker exists; after
    the ``chdir``, a relative ``DEST`` resolves inside the extracted tree, where the marker is written.
    """
    from taskbox.entrypoint.fast_execute import install_bundle

    root = install_bundle(uri, dest)
    os.chdir(root)
    flyte_dest = dest if os.path.isabs(dest) else os.path.join(root, dest)
    os.makedirs(flyte_dest, exist_ok=True)
    name = os.path.basename(uri.rstrip("/"))
    with open(os.path.join(flyte_dest, f".{name}.extracted"), "a", encoding="utf-8"):
        pass


def _committed(outputs_path: str) -> str | None:
    for name in (commit.ERROR_FILE, commit.OUTPUTS_FILE):
        if storage.exists(storage.join(outputs_path, name)):
            return name
    return None


def _check_committed(outputs_path: str) -> int:
    name = _committed(outputs_path)
    if name is None:
        raise RuntimeEndedWithoutCommit(
            f"flyte's runtime returned without writing outputs.pb or error.pb under {outputs_path}"
        )
    if name == commit.ERROR_FILE:
        _redact_error(outputs_path)
    log.info("flyte's runtime committed %s", storage.join(outputs_path, name))
    return EXIT_OK


def _commit_unless_committed(outputs_path: str, failure: BaseException) -> int:
    if _committed(outputs_path) == commit.ERROR_FILE and not isinstance(failure, TaskboxError):
        _redact_error(outputs_path)
        return EXIT_OK
    from taskbox.entrypoint.blame import from_flyte_runtime

    return _commit_failure(outputs_path, from_flyte_runtime(failure))


def _redact_error(outputs_path: str) -> None:
    """Mask registered secrets in the SDK's ``error.pb`` message (taskbox's rule for every error document)."""
    from flyteidl.core import errors_pb2

    uri = storage.join(outputs_path, commit.ERROR_FILE)
    document = errors_pb2.ErrorDocument.FromString(storage.read_bytes(uri))
    redacted = redaction.redact(document.error.message)
    if redacted != document.error.message:
        document.error.message = redacted
        storage.write_bytes(uri, document.SerializeToString())
