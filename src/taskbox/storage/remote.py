"""Remote storage on fsspec: ``s3://``, ``gs://``, ``abfs://`` and any other protocol but ``http(s)://``.

Why: the entrypoint reads ``inputs.pb`` and writes one commit object per attempt in whatever blob store Flyte
points it at. This module gives :mod:`taskbox.storage` the seven functions of :mod:`taskbox.storage.local` over
fsspec, configured only from each backend's standard environment variables (no taskbox-specific setup).

Configuration (read when a protocol is first used in a process; :func:`reset_filesystems` re-reads):
    * S3: botocore's own chain (``AWS_ENDPOINT_URL_S3``, ``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
      ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``, ``AWS_DEFAULT_REGION``,
      ``AWS_REQUEST_CHECKSUM_CALCULATION``...; botocore >= 1.31 reads the endpoint variables itself).
      Flyte's ``FLYTE_AWS_ENDPOINT``, ``FLYTE_AWS_ACCESS_KEY_ID`` and ``FLYTE_AWS_SECRET_ACCESS_KEY``
      are passed explicitly, as flytekit's ``s3_setup_args`` does, so they win when set.
    * GCS: ``STORAGE_EMULATOR_HOST`` selects the emulator with ``token="anon"`` (and gcsfs's plain JSON
      client, since the emulator has no gRPC for the experimental bucket-type probe); otherwise
      ``GOOGLE_APPLICATION_CREDENTIALS`` names the key file, else Google's default credentials.
    * Azure (``abfs://``, ``abfss://``, ``az://``; adlfs): ``FLYTE_AZURE_*``, ``AZURE_STORAGE_*``, else
      ``DefaultAzureCredential``, in the precedence of :mod:`taskbox.storage.azure`.
    * Any protocol: fsspec's own ``FSSPEC_<PROTOCOL>_<KEY>`` variables and config files.

Invariants:
    * fsspec and the backends are imported on first use of a remote URI, never by importing
      :mod:`taskbox.storage` (fsspec costs ~0.2 s, s3fs ~0.8 s).
    * One filesystem instance per protocol and per process (``gs``/``gcs``, ``s3``/``s3a``,
      ``abfs``/``abfss``/``az``, ``http``/``https`` share one; Azure adds one per account a URI names). A
      forked child forgets the parent's instances (their event loop and connections) and builds its own.
    * Retries belong to :mod:`taskbox.storage.retry` alone: botocore's and s3fs's retry loops are set to
      one attempt and the Azure SDK's to none, so the attempt count and time budget there are the real
      ones. gcsfs's retry decorator has no per-instance setting: GCS calls keep gcsfs's inner retries (6
      tries on 408/429/5xx) underneath ours.
    * ``write_bytes`` is atomic: on S3 a single PUT below 5 GiB (above, a multipart upload, invisible until
      completed, which s3fs aborts on failure); on GCS a simple upload, or a resumable session that gcsfs
      cancels on failure; on Azure one Put Blob, or blocks committed by one Put Block List (uncommitted
      blocks are never visible). The size is verified with one ``info`` afterwards. A single-file
      ``download`` goes to a temporary file renamed into place.
    * ``http(s)://`` is not served here but by :mod:`taskbox.storage.httpstore` (through the SSRF guard);
      :func:`filesystem` refuses it, so no code path fetches a URL unguarded.
    * ``download(max_bytes=)`` counts the bytes the backend writes (fsspec's per-chunk callback) and
      stops at the first chunk past the cap; ``read_bytes(max_size=)`` refuses from the reported size,
      then checks the bytes returned.
    * ``info`` reports a strong validator from the object's metadata: S3 ``VersionId`` else ``ETag``,
      GCS ``generation``, else an ``ETag``/``etag`` entry (Azure's); ``None`` when there is none.
    * Recursive downloads refuse object names that would land outside the destination directory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib
import logging
import os
import posixpath
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

from taskbox.errors import StorageError, StorageNotFound
from taskbox.storage import local, retry
from taskbox.storage.caps import ByteCounter, ObjectInfo, fsspec_counting_callback, too_large, validator_from_info

if TYPE_CHECKING:
    from fsspec import AbstractFileSystem

__all__ = [
    "download",
    "exists",
    "filesystem",
    "read_bytes",
    "remove",
    "reset_filesystems",
    "size",
    "upload",
    "write_bytes",
]

log = logging.getLogger("taskbox.storage")

T = TypeVar("T")

# Schemes that share one filesystem instance.
_ALIASES = {"s3a": "s3", "gcs": "gs", "abfss": "abfs", "az": "abfs", "https": "http"}
# Canonical protocol -> (module that must import, how to install it).
_EXTRAS = {
    "s3": ("s3fs", "pip install 'taskbox[s3]'"),
    "gs": ("gcsfs", "pip install 'taskbox[gcs]'"),
    "abfs": ("adlfs", "pip install 'taskbox[azure]'"),
}
_READ_ONLY = frozenset({"http"})
# Served by taskbox.storage.httpstore, through the SSRF guard; never by fsspec.
_GUARDED = frozenset({"http"})
# Protocols whose listings cache is switched off (another process may write between two calls).
_NO_LISTINGS_CACHE = frozenset({"s3", "gs", "abfs", "http"})
# Object stores whose first path segment is a bucket: remove() refuses a bare bucket.
_BUCKETED = frozenset({"s3", "gs", "az", "abfs", "abfss", "adl", "oss", "r2"})

# S3 single-PUT ceiling for write_bytes (the service limit), and the part size for uploads of local
# files, which stream from disk (single PUT below twice this size). Module-level for tests.
_S3_SINGLE_PUT_MAX = 5 * 2**30
_S3_PART_SIZE = 50 * 2**20

# How long an interrupted operation may take to unwind its cancellation (SIGTERM leaves ~10 s in all).
_CANCEL_WAIT_S = 2.0

# Refuse early from the size a store reports (tests switch it off to play a store that under-reports).
_TRUST_REPORTED_SIZE = True

_lock = threading.Lock()
_cache: dict[str, AbstractFileSystem] = {}
_cache_pid = os.getpid()


# --------------------------------------------------------------------------------------------------
# Filesystems
# --------------------------------------------------------------------------------------------------


def _after_fork_in_child() -> None:
    global _lock, _cache_pid
    _lock = threading.Lock()
    _cache.clear()  # the parent's instances hold its event loop and sockets: drop, do not close
    _cache_pid = os.getpid()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _scheme(uri: str) -> str:
    from taskbox.storage import protocol_of  # lazy: the package imports us lazily

    return protocol_of(uri)


def _azure() -> Any:  # the module; lazy: Azure URIs only (adlfs itself loads when a filesystem is built)
    from taskbox.storage import azure

    return azure


def _normalise(uri: str) -> tuple[str, str, str]:
    """Return ``(uri with a lower-case scheme, scheme as written in lower case, canonical protocol)``."""
    scheme = _scheme(uri)
    if not scheme:
        raise StorageError(f"not a remote URI: {retry.redact_uri(uri)}", recoverable=False)
    return scheme + uri[len(scheme) :], scheme, _ALIASES.get(scheme, scheme)


def reset_filesystems() -> None:
    """Forget every cached filesystem, so the next call re-reads the environment."""
    global _cache_pid
    with _lock:
        _cache.clear()
        _cache_pid = os.getpid()


def filesystem(uri: str) -> AbstractFileSystem:
    """Return the process's filesystem instance for ``uri``'s protocol, building it on first use.

    Args:
        uri: A remote URI (or just ``"s3://"``).

    Returns:
        The fsspec filesystem.

    Raises:
        StorageError: Not recoverable: the backend package is not installed, the protocol is unknown to
            fsspec, or its configuration is incomplete (``StorageDenied``: a key for another account).
    """
    _, scheme, canonical = _normalise(uri)
    if canonical in _GUARDED:
        raise StorageError(f"{scheme}:// is served through the SSRF guard, not fsspec", recoverable=False)
    global _cache_pid
    with _lock:
        if _cache_pid != os.getpid():  # forked without register_at_fork having run
            _cache.clear()
            _cache_pid = os.getpid()
        with retry.translate(f"{scheme}://", "configure"):
            key = _azure().cache_key(uri) if canonical == "abfs" else canonical  # Azure: one per account
            fs = _cache.get(key)
            if fs is None:
                fs = _build(scheme, canonical, os.environ, uri)
                _cache[key] = fs
        return fs


def _require(scheme: str, module: str, hint: str) -> Any:
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise StorageError(f"{scheme}:// needs {module}: {hint}", recoverable=False) from exc


def _build(scheme: str, canonical: str, env: Mapping[str, str], uri: str) -> AbstractFileSystem:
    fsspec = _require(scheme, "fsspec", "pip install fsspec")
    from fsspec.config import apply_config

    if canonical in _EXTRAS:
        _require(scheme, *_EXTRAS[canonical])
    kwargs: dict[str, Any]
    if canonical == "s3":
        cls, kwargs = importlib.import_module("s3fs").S3FileSystem, _s3_options(env)
    elif canonical == "gs":
        cls, kwargs = _gcs_class_and_options(env)
    elif canonical == "abfs":
        cls, kwargs = _azure().filesystem_options(env, uri)
    else:
        try:
            cls = fsspec.get_filesystem_class(canonical)
        except ValueError as exc:
            raise StorageError(f"unsupported storage protocol: {scheme}://", recoverable=False) from exc
        except ImportError as exc:
            raise StorageError(f"{scheme}:// needs a package that is not installed: {exc}", recoverable=False) from exc
        kwargs = {}
    if canonical in _NO_LISTINGS_CACHE:
        kwargs["use_listings_cache"] = False
    kwargs = apply_config(cls, kwargs)
    fs = cls(skip_instance_cache=True, **kwargs)  # our cache, not fsspec's: the env may change between tests
    if canonical == "s3":
        fs.retries = 1  # s3fs's own loop off; taskbox.storage.retry decides
    log.debug("storage: created %s filesystem for %s://", cls.__name__, scheme)
    return fs


def _s3_options(env: Mapping[str, str]) -> dict[str, Any]:
    """s3fs arguments: Flyte's variables explicitly, everything else left to botocore's chain."""
    options: dict[str, Any] = {"config_kwargs": {"retries": {"total_max_attempts": 1}}}
    endpoint = env.get("FLYTE_AWS_ENDPOINT", "").strip()
    if endpoint:
        options["client_kwargs"] = {"endpoint_url": endpoint}
    for name, option in (("FLYTE_AWS_ACCESS_KEY_ID", "key"), ("FLYTE_AWS_SECRET_ACCESS_KEY", "secret")):
        if env.get(name):
            options[option] = env[name]
    return options


def _gcs_class_and_options(env: Mapping[str, str]) -> tuple[type, dict[str, Any]]:
    emulator = env.get("STORAGE_EMULATOR_HOST", "").strip()
    if emulator and emulator != "default":
        # gcsfs reads STORAGE_EMULATOR_HOST itself for the base URL. The plain JSON-API class is used
        # because the experimental one probes the bucket type over gRPC, which emulators lack (60 s hang).
        from gcsfs.core import GCSFileSystem

        return GCSFileSystem, {"token": "anon"}
    gcsfs = importlib.import_module("gcsfs")
    credentials = env.get("GOOGLE_APPLICATION_CREDENTIALS", "").strip()
    return gcsfs.GCSFileSystem, ({"token": credentials} if credentials else {})


# --------------------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------------------


def _open(uri: str, *, write: bool = False) -> tuple[AbstractFileSystem, str, str]:
    """Filesystem, normalised URI and canonical protocol; refuses writes to read-only protocols."""
    normalised, scheme, canonical = _normalise(uri)
    if write and canonical in _READ_ONLY:
        raise StorageError(f"{scheme}:// is read-only: cannot write {retry.redact_uri(uri)}", recoverable=False)
    return filesystem(normalised), normalised, canonical


def _run(fn: Callable[[], T], uri: str, action: str) -> T:
    return retry.call(fn, uri=uri, action=action)


def _call(fs: AbstractFileSystem, method: str, *args: Any, **kwargs: Any) -> Any:
    """Call ``fs.<method>``; for async filesystems, cancel the operation if this thread is interrupted.

    fsspec's own sync wrappers leave the coroutine running on its event-loop thread when the waiting thread
    is interrupted (``Terminated`` from the SIGTERM handler, ``KeyboardInterrupt``), so an abandoned PUT
    could land after the entrypoint gave up on it. Here the coroutine is cancelled (its connection closed
    mid-request) before the interruption propagates.
    """
    coroutine_function = getattr(fs, f"_{method}", None)
    loop = getattr(fs, "loop", None)
    if not getattr(fs, "async_impl", False) or coroutine_function is None or loop is None:
        return getattr(fs, method)(*args, **kwargs)
    unwound = threading.Event()

    async def run() -> Any:
        try:
            return await coroutine_function(*args, **kwargs)
        finally:
            unwound.set()

    future = asyncio.run_coroutine_threadsafe(run(), loop)
    try:
        while True:
            try:
                return future.result(timeout=1.0)  # short waits keep signal handlers responsive
            except concurrent.futures.TimeoutError:
                if future.done():
                    return future.result()  # finished meanwhile, or the operation itself timed out
    except BaseException:
        if not future.done():
            future.cancel()  # cancels the task on the loop; wait until it has closed its connection
            unwound.wait(timeout=_CANCEL_WAIT_S)
        raise


def _abort_multipart_uploads(fs: AbstractFileSystem, uri: str, *, prefix: bool = False) -> None:
    """Best effort: abort unfinished S3 multipart uploads of ``uri`` (or, with ``prefix``, under it).

    s3fs aborts its upload when a part fails with an ``Exception``, but not when the operation is
    cancelled; this covers that case. Failures are logged, never raised: the caller is already failing,
    and a bucket lifecycle rule is the backstop for anything left.
    """
    try:
        bucket, key, _ = fs.split_path(uri)
        listing = _call(fs, "call_s3", "list_multipart_uploads", Bucket=bucket, Prefix=key)
        for upload in listing.get("Uploads", []):
            if upload["Key"] == key or (prefix and upload["Key"].startswith(key.rstrip("/") + "/")):
                ids = {"Bucket": bucket, "Key": upload["Key"], "UploadId": upload["UploadId"]}
                _call(fs, "call_s3", "abort_multipart_upload", **ids)
                log.info("storage: aborted unfinished multipart upload of s3://%s/%s", bucket, upload["Key"])
    except Exception as exc:  # noqa: BLE001 - best effort while another failure propagates
        log.warning("storage: could not abort multipart uploads under %s: %s", retry.redact_uri(uri), exc)


def _info(fs: AbstractFileSystem, uri: str) -> dict[str, Any]:
    return _call(fs, "info", uri)


def _verify_size(fs: AbstractFileSystem, uri: str, expected: int) -> None:
    """One ``info`` after a write: the store must report exactly the bytes we sent."""
    fs.invalidate_cache(fs._strip_protocol(uri))
    actual = _info(fs, uri).get("size")
    if actual is None or int(actual) != expected:
        raise StorageError(
            f"size check failed after writing {retry.redact_uri(uri)}: sent {expected} bytes, "
            f"the store reports {actual}"
        )


def _too_large(uri: str, actual: int, limit: int) -> Exception:
    return too_large(retry.redact_uri(uri), actual, limit)


def _write_kwargs(canonical: str) -> dict[str, Any]:
    # s3fs PUTs in one request when len(data) < min(5 GiB, 2 * chunksize).
    return {"chunksize": _S3_SINGLE_PUT_MAX // 2} if canonical == "s3" else {}


def _upload_kwargs(canonical: str) -> dict[str, Any]:
    return {"chunksize": _S3_PART_SIZE} if canonical == "s3" else {}


def _relative_parts(name: str, base: str) -> list[str] | None:
    """Segments of ``name`` below ``base``; None for directory markers; raises for escaping names."""
    rel = name[len(base) :].lstrip("/") if base else name
    if not rel or rel.endswith("/"):
        return None
    parts = rel.split("/")
    if any(p in ("", ".", "..") or "\\" in p or "\0" in p for p in parts):
        raise StorageError(
            f"refusing to download an object whose name escapes the destination: {name!r}", recoverable=False
        )
    return parts


# --------------------------------------------------------------------------------------------------
# The storage API (see taskbox.storage for the contract)
# --------------------------------------------------------------------------------------------------


def read_bytes(uri: str, *, max_size: int | None = None) -> bytes:
    """Read a whole object, refusing one larger than ``max_size`` (checked before downloading it)."""
    fs, uri, canonical = _open(uri)

    def op() -> bytes:
        kwargs: dict[str, Any] = {}
        if max_size is not None:
            reported = _info(fs, uri).get("size")
            if reported is not None and int(reported) > max_size:
                raise _too_large(uri, int(reported), max_size)
            if canonical == "s3" and reported is not None and int(reported) <= _S3_PART_SIZE:
                kwargs["max_concurrency"] = 1  # size known and small: skip s3fs's own HEAD, one GET
        data = _call(fs, "cat_file", uri, **kwargs)
        if max_size is not None and len(data) > max_size:  # the server did not report a size, or it changed
            raise _too_large(uri, len(data), max_size)
        return bytes(data)

    return _run(op, uri, "read")


def write_bytes(uri: str, data: bytes) -> None:
    """Replace the object at ``uri`` with ``data`` in one atomic PUT, then verify its size."""
    fs, uri, canonical = _open(uri, write=True)
    payload = bytes(data)
    kwargs = _write_kwargs(canonical)

    def op() -> None:
        try:
            _call(fs, "pipe_file", uri, payload, **kwargs)
        except BaseException:
            if canonical == "s3" and len(payload) >= _S3_SINGLE_PUT_MAX:
                _abort_multipart_uploads(fs, uri)
            raise
        _verify_size(fs, uri, len(payload))

    _run(op, uri, "write")


def info(uri: str) -> ObjectInfo:
    """Size and strong validator of the object at ``uri``, from one metadata request."""
    fs, uri, _ = _open(uri)
    details = _run(lambda: _info(fs, uri), uri, "stat")
    if details.get("type") == "directory":
        raise StorageError(f"{retry.redact_uri(uri)} is a prefix (directory), not an object", recoverable=False)
    reported = details.get("size")
    return ObjectInfo(None if reported is None else int(reported), validator_from_info(details))


def exists(uri: str) -> bool:
    """Tell whether an object, or a prefix with objects under it, exists at ``uri``."""
    fs, uri, _ = _open(uri)
    try:
        _run(lambda: _info(fs, uri), uri, "stat")
    except StorageNotFound:
        return False
    return True


def size(uri: str) -> int:
    """Size of the object at ``uri`` in bytes."""
    fs, uri, _ = _open(uri)
    info = _run(lambda: _info(fs, uri), uri, "stat")
    if info.get("type") == "directory":
        raise StorageError(f"{retry.redact_uri(uri)} is a prefix (directory), not an object", recoverable=False)
    reported = info.get("size")
    if reported is None:
        raise StorageError(f"the server did not report a size for {retry.redact_uri(uri)}", recoverable=False)
    return int(reported)


def remove(uri: str) -> None:
    """Delete an object and everything under ``uri/``; a missing object is not an error.

    The objects are listed, deleted in bulk, and listed again: anything still there is deleted one by
    one, so a per-key failure that the bulk call reports only in its response body raises here.
    """
    fs, uri, canonical = _open(uri, write=True)
    path = fs._strip_protocol(uri).strip("/")
    if canonical in _BUCKETED and "/" not in path:
        raise StorageError(f"refusing to remove a whole bucket: {retry.redact_uri(uri)}", recoverable=False)

    def op() -> None:
        targets = _call(fs, "find", uri, withdirs=False)  # the object at uri and everything under uri/
        if not targets:
            return
        _call(fs, "rm", targets)
        # S3's multi-object delete answers 200 and lists per-key failures (AccessDenied...) in its
        # body, which s3fs drops; delete what is left one by one so the real error surfaces.
        for leftover in _call(fs, "find", uri, withdirs=False):
            _call(fs, "rm_file", leftover)

    try:
        _run(op, uri, "remove")
    except StorageNotFound:
        pass


def download(uri: str, local_path: str, *, recursive: bool = False, max_bytes: int | None = None) -> str:
    """Copy an object (or every object under a prefix) to ``local_path``.

    A single object is written to a temporary file beside ``local_path`` and renamed into place, so a
    failed download never leaves a truncated file under the final name. A recursive download copies
    the prefix's contents into ``local_path`` (like ``cp -r src/. dst``), file by file. ``max_bytes``
    (single objects only) is counted on the bytes written, chunk by chunk.
    """
    fs, uri, _ = _open(uri)
    if recursive and max_bytes is not None:
        raise StorageError("max_bytes applies to a single object, not a recursive download", recoverable=False)
    if recursive:
        return _download_tree(fs, uri, local_path)
    tmp = local.partial_beside(local_path, retry.redact_uri(uri))

    def op() -> None:
        if max_bytes is None:
            _call(fs, "get_file", uri, tmp)
            return
        counter = ByteCounter(retry.redact_uri(uri), max_bytes)
        _call(
            fs,
            "get_file",
            uri,
            tmp,
            callback=fsspec_counting_callback(counter, trust_reported_size=_TRUST_REPORTED_SIZE),
        )
        with local.translate(local_path):
            counter.total = 0
            counter.add(os.path.getsize(tmp))  # a backend that ignores the callback is still capped

    try:
        _run(op, uri, "download")
        with local.translate(local_path):
            os.replace(tmp, local_path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return local_path


def _download_tree(fs: AbstractFileSystem, uri: str, local_path: str) -> str:
    base = fs._strip_protocol(uri).rstrip("/")
    names = _run(lambda: _call(fs, "find", uri, withdirs=False), uri, "list")
    rpaths: list[str] = []
    lpaths: list[str] = []
    for name in sorted(names):
        if name == base:
            continue  # an object named exactly like the prefix: not part of the tree
        if not name.startswith(base + "/"):
            continue
        parts = _relative_parts(name, base)
        if parts is None:
            continue
        rpaths.append(name)
        lpaths.append(os.path.join(local_path, *parts))
    if not rpaths:
        raise StorageNotFound(f"not found: no objects under {retry.redact_uri(uri)}/")
    with local.translate(local_path):
        for lp in lpaths:
            os.makedirs(os.path.dirname(lp), exist_ok=True)
    _run(lambda: _call(fs, "get", rpaths, lpaths), uri, "download")
    return local_path


def upload(local_path: str, uri: str, *, recursive: bool = False) -> str:
    """Copy a local file (or every file under a local directory) to ``uri``, verifying sizes afterwards."""
    fs, uri, canonical = _open(uri, write=True)
    kwargs = _upload_kwargs(canonical)
    if recursive:
        return _upload_tree(fs, local_path, uri, canonical, kwargs)
    with local.translate(local_path):
        if os.path.isdir(local_path):
            raise StorageError(f"{local_path} is a directory; copy it recursively", recoverable=False)
        expected = os.stat(local_path).st_size

    def op() -> None:
        try:
            _call(fs, "put_file", local_path, uri, **kwargs)
        except BaseException:
            if canonical == "s3" and expected >= 2 * _S3_PART_SIZE:
                _abort_multipart_uploads(fs, uri)
            raise
        _verify_size(fs, uri, expected)

    _run(op, uri, "upload")
    return uri


def _upload_tree(fs: AbstractFileSystem, local_path: str, uri: str, canonical: str, kwargs: dict[str, Any]) -> str:
    from taskbox.storage import join

    if not os.path.isdir(local_path):
        raise StorageNotFound(f"not a directory: {local_path}")
    lpaths: list[str] = []
    rpaths: list[str] = []
    sizes: dict[str, int] = {}
    with local.translate(local_path):
        for root, dirs, files in os.walk(local_path):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                if not os.path.isfile(full):
                    continue  # sockets, FIFOs, dangling links
                rel = os.path.relpath(full, local_path).replace(os.sep, "/")
                remote = join(uri, rel)
                lpaths.append(full)
                rpaths.append(remote)
                sizes[fs._strip_protocol(remote)] = os.stat(full).st_size
    if not lpaths:
        return uri

    def op() -> None:
        try:
            _call(fs, "put", lpaths, rpaths, **kwargs)
        except BaseException:
            if canonical == "s3" and max(sizes.values()) >= 2 * _S3_PART_SIZE:
                _abort_multipart_uploads(fs, uri, prefix=True)
            raise
        fs.invalidate_cache(fs._strip_protocol(uri))
        listed = _call(fs, "find", uri, withdirs=False, detail=True)
        wrong = [
            posixpath.relpath(p, fs._strip_protocol(uri))
            for p, expected in sizes.items()
            if p not in listed or int(listed[p].get("size") or 0) != expected
        ]
        if wrong:
            raise StorageError(
                f"size check failed after uploading to {retry.redact_uri(uri)}: {len(wrong)} object(s) "
                f"missing or of the wrong size, e.g. {wrong[:3]}"
            )

    _run(op, uri, "upload")
    return uri
