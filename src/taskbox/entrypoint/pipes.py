"""Dagster Pipes for ``taskbox run`` and ``taskbox execute``: answer the Dagster step that started the container.

Why: Dagster's Pipes clients (``PipesDockerClient``, ``PipesK8sClient``, ``PipesSubprocessClient``...) hand the
process a context (``DAGSTER_PIPES_CONTEXT``: the asset keys in scope, the run, the user's ``extras``) and a
place for messages (``DAGSTER_PIPES_MESSAGES``: a file, or lines on stderr/stdout that they pick out of the
container's log). A process that never answers leaves the step with "[pipes] did not receive any messages"
and no metadata. This module answers through the ``dagster-pipes`` package's own parameter decoding,
context loader and message writers; it only decides what to say.

What is said, in order:
    1. ``opened``, when the run starts loading.
    2. ``log`` for each log record of INFO and up that taskbox's stderr handler shows, masked the same way
       (a :class:`taskbox.redaction.RedactingFilter` of its own), and the failure line ``taskbox run`` prints.
    3. On success, after the commit: ``report_asset_materialization`` for each asset key in scope with the
       outputs as metadata (:func:`metadata_value`), then ``report_custom_message`` with the plain outputs
       (the value ``outputs.json`` holds).
    4. ``closed``: empty on success; on failure ``{"exception": ...}`` in the ``PipesException`` shape, its
       ``name`` the taskbox code (``USER:InvalidInput``), its message the error's with origin, recoverability
       and (``taskbox run``) the exit code (:func:`exception_payload`).

Asset keys: an op (no asset in scope) gets no materialization; one key gets every output; with several (a
``multi_asset``) a key whose last part names an output gets that output alone, any other key every output.
The custom message is always sent. Outputs are reported as the task produced them (as ``outputs.json``).

Invariants:
    * Imported only when ``DAGSTER_PIPES_CONTEXT`` is set and not empty: the callers check the variable.
    * Exit codes and commit files are untouched. A context or destination that cannot be used is a
      :class:`taskbox.errors.PipesError`, committed like any failure; if the destination works, Dagster still
      gets ``opened`` and ``closed`` with that error.
    * ``closed`` is the last message and is sent once; :meth:`PipesSession.close` never raises.
    * On a stdio destination each message is one line under :data:`STDIO_LINE_LIMIT` characters: Docker's log
      pipeline splits longer lines (measured: a 40 KB line comes back from the Engine API as 16384-byte
      pieces), and ``PipesDockerClient`` loses a split message. Metadata values that do not fit are cut to
      text; a custom message that does not fit is not sent (a WARNING log says where the outputs are).
"""

from __future__ import annotations

import json
import logging
import threading
import traceback
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from typing import Any, TextIO

from taskbox import redaction
from taskbox.errors import PipesError

__all__ = ["STDIO_LINE_LIMIT", "PipesSession", "exception_payload", "metadata_value", "open_session"]

CONTEXT_VAR = "DAGSTER_PIPES_CONTEXT"
MESSAGES_VAR = "DAGSTER_PIPES_MESSAGES"
#: Longest message line on stdout/stderr (Docker splits log lines at 16 KiB).
STDIO_LINE_LIMIT = 16_000
_LOG_TEXT = 8_000
_EXCEPTION_TEXT = 4_000
_STACK_FRAMES = 30
_CAUSES = 3

_LEVELS = ((logging.CRITICAL, "CRITICAL"), (logging.ERROR, "ERROR"), (logging.WARNING, "WARNING"))


def _cut(text: str, limit: int) -> str:
    """``text``, cut so that its JSON form (non-ASCII escaped, as in the messages) stays within ``limit``."""
    if len(json.dumps(text)) <= limit:
        return text
    low, high = 0, min(len(text), limit)
    while low < high:  # the longest head whose JSON form fits, with room for the note
        middle = (low + high + 1) // 2
        low, high = (middle, high) if len(json.dumps(text[:middle])) <= limit - 40 else (low, middle - 1)
    return f"{text[:low]}... [{len(text) - low} characters cut]"


def _params(dp: Any, environ: Mapping[str, str], name: str) -> dict[str, Any]:
    """Decode one bootstrap variable as ``dagster-pipes`` does (base64 of zlib-compressed JSON)."""
    import zlib

    raw = environ.get(name)
    if not raw:
        raise PipesError(f"{name} is not set, but {CONTEXT_VAR} is: Dagster's Pipes clients set both")
    try:
        value = dp.decode_param(raw)
    except (ValueError, TypeError, zlib.error) as exc:
        raise PipesError(
            f"{name} is not a Dagster Pipes parameter (base64 of zlib-compressed JSON): {type(exc).__name__}: {exc}"
        ) from None
    if not isinstance(value, dict):
        raise PipesError(f"{name} must decode to a JSON object, not {type(value).__name__}")
    return value


class _Channel:
    """Where messages go; thread-safe. A stdio line is written whole and flushed (log lines share the stream)."""

    def __init__(self, writer: Any, stream: TextIO | None, limit: int | None) -> None:
        self.writer, self.stream, self.limit = writer, stream, limit
        self.lock = threading.Lock()

    def send(self, message: Mapping[str, Any]) -> None:
        line = json.dumps(message)
        if self.limit is not None and len(line) >= self.limit:
            raise PipesError(f"a {message.get('method')} message of {len(line)} characters is over the line limit")
        try:
            with self.lock:
                if self.stream is not None:
                    self.stream.write(line + "\n")
                    self.stream.flush()
                else:
                    self.writer.write_message(message)
        except (OSError, ValueError) as exc:
            raise PipesError(f"cannot write Dagster Pipes messages: {type(exc).__name__}: {exc}") from None


def _open_channel(dp: Any, stack: ExitStack, params: dict[str, Any]) -> _Channel:
    import sys

    stdio = params.get("stdio")
    if "path" not in params and stdio in ("stderr", "stdout"):
        return _Channel(None, sys.stderr if stdio == "stderr" else sys.stdout, STDIO_LINE_LIMIT)
    limit = STDIO_LINE_LIMIT if "path" not in params and "buffered_stdio" in params else None
    try:
        writer = stack.enter_context(dp.PipesDefaultMessageWriter().open(params))
    except (dp.DagsterPipesError, OSError, TypeError, ValueError) as exc:
        raise PipesError(f"{MESSAGES_VAR} names no destination taskbox can write to: {exc}") from None
    return _Channel(writer, None, limit)


def open_session(environ: Mapping[str, str], exit_code: Callable[[BaseException], int] | None = None) -> PipesSession:
    """Open the Pipes session the environment describes and send ``opened``.

    Args:
        environ: The process's environment.
        exit_code: The caller's exit code for a failure (``taskbox run``'s), said in ``closed``'s exception.

    Raises:
        PipesError: ``dagster-pipes`` is missing, a variable is malformed, the context cannot be read or the
            destination cannot be written (``closed`` with this error is sent first when it can be).
    """
    try:
        import dagster_pipes as dp
    except ImportError:
        raise PipesError(
            f"{CONTEXT_VAR} is set (Dagster Pipes), but the dagster-pipes package is not installed: "
            "pip install 'taskbox[run]'"
        ) from None
    stack = ExitStack()
    session = None
    try:
        session = PipesSession(dp, _open_channel(dp, stack, _params(dp, environ, MESSAGES_VAR)), stack)
        session.send("opened", {"extras": {}})
        context = _params(dp, environ, CONTEXT_VAR)
        try:
            data = stack.enter_context(dp.PipesDefaultContextLoader().load_context(context))
        except (dp.DagsterPipesError, OSError, TypeError, ValueError) as exc:
            raise PipesError(f"cannot load the Dagster Pipes context ({CONTEXT_VAR}): {exc}") from None
        session.load(data)
    except Exception as exc:  # whatever the package raised, the run fails as a PipesError
        error = exc if isinstance(exc, PipesError) else PipesError(f"cannot open Dagster Pipes: {type(exc).__name__}")
        if session is not None:
            session.close(error, exit_code(error) if exit_code else None)
        stack.close()
        if error is exc:
            raise
        raise error from exc
    return session


class PipesSession:
    """An open Pipes session (:func:`open_session`): what Dagster put in scope, and the messages back.

    Attributes:
        extras: The ``extras`` the Dagster asset passed (``taskbox run`` reads inputs from them).
        asset_keys: The asset keys in scope (escaped, ``a/b``), or ``None`` for an op.
    """

    def __init__(self, dp: Any, channel: _Channel, stack: ExitStack) -> None:
        self._dp, self._channel, self._stack = dp, channel, stack
        self.extras: dict[str, Any] = {}
        self.asset_keys: list[str] | None = None
        self._handler: logging.Handler | None = None
        self._closed = False

    def load(self, data: Any) -> None:
        """Take the context's data; start forwarding log records.

        Raises:
            PipesError: The data is not a Pipes context.
        """
        extras = data.get("extras") if isinstance(data, dict) else None
        keys = data.get("asset_keys") if isinstance(data, dict) else None
        if not isinstance(data, dict) or not isinstance(extras or {}, dict):
            raise PipesError(f"the Dagster Pipes context ({CONTEXT_VAR}) is not an object with an extras object")
        if keys is not None and not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
            raise PipesError(f"the Dagster Pipes context's asset_keys is not a list of strings: {keys!r}")
        self.extras, self.asset_keys = dict(extras or {}), keys
        self._handler = _Forwarder(self)
        logging.getLogger().addHandler(self._handler)

    def send(self, method: str, params: Mapping[str, Any] | None) -> None:
        """Send one message (``dagster-pipes``' envelope).

        Raises:
            PipesError: The destination cannot be written, or the session is closed.
        """
        if self._closed:
            raise PipesError(f"the Dagster Pipes session is closed: cannot send {method}")
        version = {self._dp.PIPES_PROTOCOL_VERSION_FIELD: self._dp.PIPES_PROTOCOL_VERSION}
        self._channel.send({**version, "method": method, "params": params})

    def log(self, level: str, text: str) -> None:
        """Send a ``log`` message (redacted, cut to fit); never raises."""
        try:
            self.send("log", {"message": _cut(redaction.redact(text), _LOG_TEXT), "level": level})
        except PipesError:
            pass

    def report_success(self, outputs: Any, document: str | None = None, where: str = "") -> None:
        """Report the committed outputs: materializations of the assets in scope, then the custom message.

        Args:
            outputs: The committed outputs (``EncodedLiteralMap``: name -> serialized ``Literal``).
            document: ``outputs.json``'s text (``taskbox run``); made from ``outputs`` when ``None``.
            where: Where the outputs are, for the note when the custom message is too large to send.

        Raises:
            PipesError: A message cannot be sent.
        """
        from taskbox.literals.wire import parse_literal

        literals = {name: parse_literal(data) for name, data in outputs.literals.items()}
        if document is None:
            from taskbox.entrypoint.plainio import literal_to_plain

            plain = {name: literal_to_plain(literal) for name, literal in literals.items()}
            document = json.dumps(plain, ensure_ascii=False, default=str)
        metadata = {name: metadata_value(literal) for name, literal in literals.items()}
        for key in self.asset_keys or ():
            parts = self._dp.to_asset_key_path(key)
            chosen = {parts[-1]: metadata[parts[-1]]} if parts and parts[-1] in metadata else metadata
            params: dict[str, Any] = {"asset_key": key, "data_version": None, "metadata": None}
            params["metadata"] = self._fit(chosen, params) if chosen else None
            self.send("report_asset_materialization", params)
        payload = json.loads(document)
        size = len(json.dumps({"params": {"payload": payload}}))
        if self._channel.limit is not None and size >= self._channel.limit - 200:
            note = f"read outputs.json under {where or '--outputs'}"
            self.log("WARNING", f"the outputs ({size} characters of JSON) are too large for one message line on "
                     f"stdout/stderr: no custom message sent; {note}")  # fmt: skip
        else:
            self.send("report_custom_message", {"payload": payload})

    def _fit(self, metadata: dict[str, Any], params: dict[str, Any]) -> dict[str, Any]:
        """``metadata`` with its largest values cut to text until the message fits a stdio line."""
        limit = self._channel.limit
        fitted = dict(metadata)
        if limit is None:
            return fitted
        room = limit - 400
        for name in sorted(fitted, key=lambda n: len(json.dumps(fitted[n])), reverse=True):
            if len(json.dumps({**params, "metadata": fitted})) < room:
                break
            text = json.dumps(fitted[name]["raw_value"], ensure_ascii=False, default=str)
            fitted[name] = {"raw_value": _cut(text, 1000) + " (cut to fit a log line)", "type": "text"}
        if len(json.dumps({**params, "metadata": fitted})) >= room:
            fitted = {"taskbox": {"raw_value": "too many outputs to fit a log line: see outputs.json", "type": "text"}}
        return fitted

    def close(self, failure: BaseException | None = None, exit_code: int | None = None) -> None:
        """Send ``closed`` (with the failure, if any) and stop forwarding logs. Idempotent; never raises."""
        if self._closed:
            return
        if self._handler is not None:
            logging.getLogger().removeHandler(self._handler)
            self._handler = None
        params: dict[str, Any] = {}
        if failure is not None:
            params["exception"] = exception_payload(failure, exit_code)
        try:
            self.send("closed", params)
        except PipesError as exc:
            if failure is not None:  # the short form, if the whole did not fit
                params["exception"] = exception_payload(failure, exit_code, stack=False)
            try:
                self.send("closed", params)
            except PipesError:
                import sys

                print(f"taskbox: could not send Dagster Pipes' closed message: {exc}", file=sys.stderr)
        self._closed = True
        try:
            self._stack.close()
        except Exception as exc:  # noqa: BLE001 - the package's writer cleanup; the run's outcome stands
            import sys

            print(f"taskbox: closing the Dagster Pipes writer failed: {redaction.redact(str(exc))}", file=sys.stderr)


class _Forwarder(logging.Handler):
    """Sends each record of INFO and up as a ``log`` message, masked as the stderr handler masks it."""

    def __init__(self, session: PipesSession) -> None:
        super().__init__(logging.INFO)
        self.session = session
        self.addFilter(redaction.RedactingFilter())

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            text = f"{text}\n{record.exc_text}"
        level = next((name for number, name in _LEVELS if record.levelno >= number), "INFO")
        self.session.log(level, text)


def exception_payload(failure: BaseException, exit_code: int | None = None, *, stack: bool = True) -> dict[str, Any]:
    """The ``PipesException`` for a failed run: ``name`` the taskbox code, the message redacted.

    Args:
        failure: What ended the run.
        exit_code: ``taskbox run``'s exit code, said in the message (``None`` for ``execute``).
        stack: Include the traceback's frames (redacted) and the chain of causes.
    """
    from taskbox.entrypoint.commit import describe
    from taskbox.errors import TaskboxError

    code, origin, recoverable, _ = describe(failure)
    text = redaction.redact(str(failure)) or type(failure).__name__
    if not isinstance(failure, TaskboxError):
        text = f"{type(failure).__name__}: {text}"
    detail = f"{origin}, {'recoverable' if recoverable else 'not recoverable'}"
    if exit_code is not None:
        detail += f", exit code {exit_code}"
    payload = _exception(failure, stack, _CAUSES if stack else 0)
    payload.update(name=code, message=f"{code}: {_cut(text, _EXCEPTION_TEXT)} ({detail})\n")
    return payload


def _exception(exc: BaseException, stack: bool, depth: int) -> dict[str, Any]:
    frames = traceback.format_tb(exc.__traceback__)[-_STACK_FRAMES:] if stack else []

    def chained(other: BaseException | None) -> dict[str, Any] | None:
        return _exception(other, stack, depth - 1) if other is not None and depth > 0 else None

    context = None if exc.__suppress_context__ or exc.__context__ is exc.__cause__ else exc.__context__
    return {
        "name": type(exc).__name__,
        "message": _cut(redaction.redact(f"{type(exc).__name__}: {exc}"), _EXCEPTION_TEXT) + "\n",
        "stack": [redaction.redact(frame) for frame in frames],
        "cause": chained(exc.__cause__),
        "context": chained(context),
    }


def metadata_value(literal: Any) -> dict[str, Any]:
    """The Pipes metadata value (``{"raw_value", "type"}``) of one output ``Literal``.

    Integers, floats, booleans and strings by their type; datetimes as ``timestamp`` (seconds), durations as
    ``float`` seconds; files, directories and tables as ``url`` (http/https) or ``path``; collections, maps
    and structs as ``json``; none as ``null``. Only types Dagster takes without a warning.
    """
    kind = literal.WhichOneof("value")
    if kind == "offloaded_metadata":
        from taskbox.literals.offload import load_offloaded

        return metadata_value(load_offloaded(literal))
    if kind == "scalar":
        scalar = literal.scalar
        which = scalar.WhichOneof("value")
        if which == "primitive":
            primitive = scalar.primitive
            field = primitive.WhichOneof("value")
            if field in ("datetime", "duration"):
                value = getattr(primitive, field)
                seconds = value.seconds + value.nanos / 1e9
                return {"raw_value": seconds, "type": "timestamp" if field == "datetime" else "float"}
        elif which == "union":
            return metadata_value(scalar.union.value)
        elif which in ("blob", "structured_dataset", "schema"):
            uri = getattr(scalar, which).uri
            return {"raw_value": uri, "type": "url" if uri.startswith(("http://", "https://")) else "path"}
    from taskbox.entrypoint.plainio import literal_to_plain

    return _plain_value(literal_to_plain(literal))


def _plain_value(plain: Any) -> dict[str, Any]:
    if plain is None:
        return {"raw_value": None, "type": "null"}
    for python_type, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "text")):
        if isinstance(plain, python_type):
            return {"raw_value": plain, "type": name}
    if isinstance(plain, (dict, list)):
        return {"raw_value": plain, "type": "json"}
    return {"raw_value": str(plain), "type": "text"}
