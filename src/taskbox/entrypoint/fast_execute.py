"""``taskbox fast-execute``: install a code bundle, then run ``taskbox execute`` in the same process.

Why: flytekit's ``pyflyte-fast-execute`` downloads the bundle, untars it with a ``tar`` subprocess and
then starts a *second* interpreter for ``pyflyte-execute`` (flytekit#3029: seconds at every task
start). taskbox validates and extracts the bundle with :mod:`taskbox.bundles.extract` (no links, no
``..``, caps, staging + rename, a lock and a completion marker), puts the tree first on ``sys.path``
and carries on as ``taskbox execute`` without a new process.

Arguments (flytekit's shape)::

    taskbox fast-execute --additional-distribution URI --dest-dir DIR -- taskbox execute ARGS...
    taskbox fast-execute --additional-distribution URI --dest-dir DIR -- pyflyte-execute ARGS...

``--dynamic-addl-distro``/``--dynamic-dest-dir`` are accepted as aliases; ``{{...}}`` placeholders,
empty values and ``""`` mean "absent", as in ``execute``. Without a distribution the command simply
runs ``execute``; without ``--dest-dir`` the destination is the working directory (flytekit's default).

Invariants:
    * taskbox never deletes or overwrites what it did not create: the bundle is installed as
      ``DEST/.taskbox-bundles/<key>/`` where ``<key>`` is the first 32 hex digits of the SHA-256 of the
      bundle URI. :func:`taskbox.bundles.extract.fetch_and_extract` owns only that directory and its
      ``.<key>.*`` lock/staging/download siblings inside ``.taskbox-bundles``; files of the user's in
      ``DEST`` (``--dest-dir .`` is common) are never touched.
    * A tree is used only when it carries the completion marker for this bundle's name. That is checked
      first without importing the extraction code (a warm start costs a file read); a completed tree is
      never removed by another process, so the unlocked check is safe.
    * Every failure of the fetch or the extraction (and SIGTERM during it) ends in ``error.pb`` under
      the inner command's ``--output-prefix``, through the same commit path as any task failure:
      ``BundleRejected`` is USER/non-recoverable, storage errors keep their SYSTEM classification.
    * The working directory is not changed (flytekit does not change it either). The bundle's root is
      put first on ``sys.path`` and on ``PYTHONPATH`` (for the task's own subprocesses).
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping

from taskbox.entrypoint.cli import normalize

__all__ = ["BUNDLES_DIR", "UsageError", "bundle_dir", "install_bundle", "limits_from_env", "main", "parse_args"]

log = logging.getLogger("taskbox")

#: Subdirectory of ``--dest-dir`` that holds taskbox's extracted bundles (and nothing else).
BUNDLES_DIR = ".taskbox-bundles"
#: :data:`taskbox.bundles.extract.MARKER`, repeated so a warm start need not import the extractor
#: (a test keeps the two equal).
MARKER = ".taskbox-bundle-complete"
_KEY_HEX_DIGITS = 32
_MIB = 1024 * 1024

#: Environment variable -> (:class:`taskbox.bundles.Limits` field, unit).
LIMIT_ENV: dict[str, tuple[str, int]] = {
    "TASKBOX_BUNDLE_MAX_MB": ("max_compressed", _MIB),
    "TASKBOX_BUNDLE_MAX_EXTRACTED_MB": ("max_total", _MIB),
    "TASKBOX_BUNDLE_MAX_FILES": ("max_members", 1),
    "TASKBOX_BUNDLE_MAX_RATIO": ("max_ratio", 1),
}

USAGE = (
    "usage: taskbox fast-execute [--additional-distribution URI] [--dest-dir DIR] -- "
    "(taskbox execute | pyflyte-execute) ARGS..."
)

_VALUE_FLAGS = {
    "--additional-distribution": "distribution",
    "--dynamic-addl-distro": "distribution",
    "--dest-dir": "dest_dir",
    "--dynamic-dest-dir": "dest_dir",
}


class UsageError(ValueError):
    """The command line of ``fast-execute`` is malformed (exit code 2, like argparse)."""


class FastExecuteArgs:
    """Parsed ``fast-execute`` arguments.

    Attributes:
        distribution: The bundle URI, or ``None`` when absent.
        dest_dir: The destination directory, or ``None`` (the working directory).
        execute_argv: The inner command's arguments, as ``taskbox execute`` takes them.
    """

    __slots__ = ("dest_dir", "distribution", "execute_argv")

    def __init__(self, distribution: str | None, dest_dir: str | None, execute_argv: list[str]) -> None:
        self.distribution = distribution
        self.dest_dir = dest_dir
        self.execute_argv = execute_argv


def parse_args(argv: list[str]) -> FastExecuteArgs | None:
    """Parse ``fast-execute``'s options and find the inner ``execute`` command.

    Args:
        argv: Everything after ``fast-execute``.

    Returns:
        The parsed arguments, or ``None`` when help was asked for.

    Raises:
        UsageError: Unknown option, missing value, or an inner command other than ``taskbox execute`` /
            ``pyflyte-execute``.
    """
    values: dict[str, str | None] = {"distribution": None, "dest_dir": None}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg in ("-h", "--help"):
            return None
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-"):
            break  # click may have eaten the "--" (flytekit's UNPROCESSED arguments)
        name, eq, inline = arg.partition("=")
        if name not in _VALUE_FLAGS:
            raise UsageError(f"unknown option {arg!r}")
        if eq:
            value, i = inline, i + 1
        elif i + 1 < len(argv):
            value, i = argv[i + 1], i + 2
        else:
            raise UsageError(f"{name} needs a value")
        values[_VALUE_FLAGS[name]] = normalize(value)
    return FastExecuteArgs(values["distribution"], values["dest_dir"], _execute_argv(argv[i:]))


def _execute_argv(command: list[str]) -> list[str]:
    """Strip the inner command's program name: ``taskbox execute`` or ``pyflyte-execute``."""
    if not command:
        raise UsageError("no command after the options (expected `taskbox execute ...` or `pyflyte-execute ...`)")
    program = os.path.basename(command[0])
    if program == "taskbox" and len(command) > 1 and command[1] == "execute":
        return command[2:]
    if program == "pyflyte-execute":
        return command[1:]
    raise UsageError(
        f"cannot run {' '.join(command[:2])!r} in-process: fast-execute continues as `taskbox execute` "
        "(or flytekit's `pyflyte-execute` arguments)"
    )


def limits_from_env(env: Mapping[str, str] | None = None) -> object:
    """The extraction caps, with overrides from ``TASKBOX_BUNDLE_MAX_*`` (see :data:`LIMIT_ENV`).

    Args:
        env: The environment (``os.environ`` by default).

    Returns:
        A :class:`taskbox.bundles.Limits`.

    Raises:
        taskbox.errors.ConfigError: A variable is not a positive integer.
    """
    from taskbox.bundles.extract import Limits  # noqa: PLC0415 - only when a bundle is extracted
    from taskbox.errors import ConfigError  # noqa: PLC0415

    env = os.environ if env is None else env
    overrides: dict[str, int] = {}
    for var, (field, unit) in LIMIT_ENV.items():
        raw = env.get(var, "").strip()
        if not raw:
            continue
        try:
            value = int(raw)
        except ValueError:
            value = 0
        if value <= 0:
            raise ConfigError(f"{var}={raw!r}: expected a positive integer")
        overrides[field] = value * unit
    return Limits(**overrides)


def bundle_dir(dest_dir: str, uri: str) -> str:
    """Where the bundle at ``uri`` is installed under ``dest_dir``: ``DEST/.taskbox-bundles/<key>``.

    Args:
        dest_dir: ``--dest-dir`` (``~`` is expanded; relative paths are resolved against the cwd).
        uri: The bundle URI; its SHA-256 names the directory, so no part of the URI becomes a path.

    Returns:
        The absolute, symlink-resolved directory path.
    """
    key = _sha256_hex(uri.encode("utf-8", "surrogateescape"))[:_KEY_HEX_DIGITS]
    return os.path.join(os.path.realpath(os.path.expanduser(dest_dir)), BUNDLES_DIR, key)


def _sha256_hex(data: bytes) -> str:
    """SHA-256 hex digest without ``hashlib`` where possible: importing it loads OpenSSL (5-10 ms per start)."""
    try:
        from _sha2 import sha256  # type: ignore[import-not-found]  # noqa: PLC0415 - CPython >= 3.12, built in
    except ImportError:
        try:
            from _sha256 import sha256  # type: ignore[import-not-found]  # noqa: PLC0415 - CPython 3.11
        except ImportError:
            from hashlib import sha256  # noqa: PLC0415
    return sha256(data).hexdigest()


def _complete(target: str, uri: str) -> bool:
    try:
        with open(os.path.join(target, MARKER), encoding="utf-8") as fh:
            return fh.read() == os.path.basename(uri.rstrip("/"))
    except OSError:
        return False


def install_bundle(uri: str, dest_dir: str) -> str:
    """Make the bundle at ``uri`` importable: extract it once under ``dest_dir``, put it on ``sys.path``.

    Args:
        uri: The bundle (``*.tar.gz``) path or URI.
        dest_dir: ``--dest-dir``; only its ``.taskbox-bundles`` subdirectory is written.

    Returns:
        The bundle's root directory.

    Raises:
        taskbox.bundles.BundleRejected: The bundle breaks a rule (USER, non-recoverable).
        taskbox.errors.StorageError: The bundle cannot be fetched, or the destination cannot be written.
        taskbox.errors.ConfigError: A ``TASKBOX_BUNDLE_MAX_*`` variable is malformed.
    """
    target = bundle_dir(dest_dir, uri)
    if _complete(target, uri):
        log.info("code bundle %s already extracted at %s", uri, target)
    else:
        from taskbox.bundles.extract import fetch_and_extract  # noqa: PLC0415 - cold path only
        from taskbox.storage import local  # noqa: PLC0415

        limits = limits_from_env()
        with local.translate(target):  # an unwritable destination is a typed storage error
            os.makedirs(os.path.dirname(target), exist_ok=True)
            fetch_and_extract(uri, target, limits=limits)  # type: ignore[arg-type]
    activate(target)
    return target


def activate(root: str) -> None:
    """Put ``root`` first on ``sys.path`` and on ``PYTHONPATH`` (inherited by the task's subprocesses)."""
    import importlib  # noqa: PLC0415 - already loaded by the interpreter; a local name only

    if root in sys.path:
        sys.path.remove(root)
    sys.path.insert(0, root)
    importlib.invalidate_caches()
    current = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([root, current]) if current else root


def main(argv: list[str]) -> int:
    """``taskbox fast-execute``.

    Returns:
        The exit code of the ``execute`` run (0 after ``error.pb``, as Flyte expects), 2 on usage errors.
    """
    from taskbox.entrypoint.signals import TerminationGuard  # noqa: PLC0415

    guard = TerminationGuard()
    guard.install()
    try:
        parsed = parse_args(argv)
    except UsageError as exc:
        print(f"taskbox fast-execute: {exc}\n{USAGE}", file=sys.stderr)
        return 2
    if parsed is None:
        print(USAGE)
        return 0
    from taskbox.entrypoint.cli import execute_options  # noqa: PLC0415

    opts = execute_options(parsed.execute_argv)
    if opts is None:
        return 2

    from taskbox import logs  # noqa: PLC0415
    from taskbox.entrypoint.execute import execute  # noqa: PLC0415

    logs.configure()
    prepare = None
    if parsed.distribution is not None:
        uri, dest = parsed.distribution, parsed.dest_dir or os.getcwd()

        def prepare() -> str:
            return install_bundle(uri, dest)

    return execute(opts, guard, prepare)
