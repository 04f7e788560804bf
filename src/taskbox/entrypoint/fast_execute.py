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
      bundle URI; the extraction (:mod:`taskbox.bundles.install`) owns only that directory and its
      ``.<key>.*`` siblings inside ``.taskbox-bundles``; files of the user's in ``DEST`` are never touched.
    * A tree is used only when it carries the completion marker for this bundle's name. That is checked
      here, without importing :mod:`taskbox.bundles` (a warm start costs a file read); a completed tree
      is never removed by another process, so the unlocked check is safe.
    * Every failure of the fetch or the extraction (and SIGTERM during it) ends in ``error.pb`` under
      the inner command's ``--output-prefix``, through the same commit path as any task failure:
      ``BundleRejected`` is USER/non-recoverable, storage errors keep their SYSTEM classification.
    * The working directory is not changed (flytekit does not change it either). The bundle's root is
      put first on ``sys.path`` and on ``PYTHONPATH`` (for the task's own subprocesses).
    * The command line is parsed by :mod:`taskbox.entrypoint.cmdline`.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable

from taskbox.entrypoint.cmdline import FAST_EXECUTE_USAGE as USAGE
from taskbox.entrypoint.cmdline import FastExecuteArgs, UsageError
from taskbox.entrypoint.cmdline import parse_fast_execute as parse_args

# LIMIT_ENV and limits_from_env live in taskbox.bundles.install (loaded on first use: see __getattr__).
__all__ = [
    "BUNDLES_DIR",
    "MARKER",
    "USAGE",
    "FastExecuteArgs",
    "UsageError",
    "activate",
    "bundle_dir",
    "bundle_preparer",
    "install_bundle",
    "main",
    "parse_args",
]

log = logging.getLogger("taskbox")

#: Subdirectory of ``--dest-dir`` that holds taskbox's extracted bundles (and nothing else).
BUNDLES_DIR = ".taskbox-bundles"
#: :data:`taskbox.bundles.extract.MARKER`, repeated so a warm start need not import the extractor
#: (a test keeps the two equal).
MARKER = ".taskbox-bundle-complete"
_KEY_HEX_DIGITS = 32


def __getattr__(name: str) -> object:
    """``LIMIT_ENV`` and ``limits_from_env``, from :mod:`taskbox.bundles.install` (their home) on first use."""
    if name in ("LIMIT_ENV", "limits_from_env"):
        from taskbox.bundles import install  # lazy: the extractor loads only when asked for

        return getattr(install, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
        from _sha2 import sha256  # type: ignore[import-not-found]  # lazy: CPython >= 3.12, built in
    except ImportError:
        try:
            from _sha256 import sha256  # type: ignore[import-not-found]  # lazy: CPython 3.11
        except ImportError:
            from hashlib import sha256
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
        from taskbox.bundles.install import extract_bundle  # lazy: cold path only

        extract_bundle(uri, target)
    activate(target)
    return target


def activate(root: str) -> None:
    """Put ``root`` first on ``sys.path`` and on ``PYTHONPATH`` (inherited by the task's subprocesses)."""
    import importlib  # lazy: already loaded by the interpreter; a local name only

    if root in sys.path:
        sys.path.remove(root)
    sys.path.insert(0, root)
    importlib.invalidate_caches()
    current = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join([root, current]) if current else root


def bundle_preparer(distribution: str | None, dest_dir: str | None) -> Callable[[], str] | None:
    """Return a callable that installs ``distribution`` under ``dest_dir`` (the cwd if ``None``), or ``None``.

    The pipeline runs it under the SIGTERM guard, before the task loads, so its failures end in ``error.pb``.
    """
    if distribution is None:
        return None
    uri, dest = distribution, dest_dir or os.getcwd()

    def prepare() -> str:
        return install_bundle(uri, dest)

    return prepare


def main(argv: list[str]) -> int:
    """``taskbox fast-execute``.

    Returns:
        The exit code of the ``execute`` run (0 after ``error.pb``, as Flyte expects), 2 on usage errors.
    """
    from taskbox.entrypoint.signals import TerminationGuard

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
    from taskbox.entrypoint.cmdline import execute_options

    opts = execute_options(parsed.execute_argv)
    if opts is None:
        return 2

    from taskbox import logs
    from taskbox.entrypoint.execute import execute

    logs.configure()
    return execute(opts, guard, bundle_preparer(parsed.distribution, parsed.dest_dir))
