"""The remote stores the reliability tests run on, behind one small interface: moto's S3 and Azurite.

Why: tests/reliability/test_storage_faults.py and the kill tests (killrun.py) hold every remote store to the
same promises with the same code. What differs per store is only: how a child process reaches the store
through a fault proxy (an endpoint variable, a connection string), the errors a throttled or failing
service answers with (S3's ``SlowDown``, Azure's ``ServerBusy`` and ``OperationTimedOut``), how to list
what a reader sees under a prefix, what an upload that was started and never committed looks like (an
open S3 multipart upload; blocks staged on an Azure blob and never listed in a Put Block List), and how to
make a child send small payloads in parts or blocks (a start-up hook, as tests get with monkeypatch).

Invariants:
    * A store is built from its session server (tests/servers.py) by :func:`get`, through the fixture of
      that name (``s3_server``, ``azure_server``): the server starts only for the tests that use it.
    * :meth:`Store.family` leaves S3's ledger families as they were and appends `` on <store>`` to the
      others, so the reliability summary counts each store's runs on rows of their own.
    * Listings are taken straight from the server (not through a proxy, not through taskbox).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import pytest

from faultproxy import AZURE_FAULTS, FAULTS, Action
from helpers import PLUGINS

FaultKinds = Mapping[str, Callable[..., Action]]


def bucket_and_key(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` (or ``abfs://container/a/b``) -> ``("bucket", "a/b")``."""
    bucket, _, key = uri.split("://", 1)[1].partition("/")
    return bucket, key


class Store:
    """A session server seen as a store: the base class holds what every store shares.

    Attributes:
        name: ``s3`` or ``azure`` (test ids, ledger families).
        server: The session server (``servers.S3Server``, ``servers.AzureServer``).
        faults: The fault kinds :class:`faultproxy.RandomFaults` draws from: the store's own service errors
            and the transport faults (reset, truncated body, stall).
        aborts_unfinished: Whether a failed upload leaves nothing unfinished. S3: s3fs aborts a multipart
            upload that fails. Azure: staged blocks have no abort; the service discards them after a week,
            and no reader ever sees them.
    """

    name: ClassVar[str]
    faults: ClassVar[FaultKinds]
    aborts_unfinished: ClassVar[bool]

    def __init__(self, server: Any) -> None:
        self.server = server

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.server.endpoint})"

    @property
    def endpoint(self) -> str:
        """The server's own ``http://127.0.0.1:PORT`` (put a fault proxy in front of it)."""
        return str(self.server.endpoint)

    def uri(self, key: str) -> str:
        """The URI of ``key`` in the session bucket or container."""
        return str(self.server.uri(key))

    def family(self, family: str) -> str:
        """The ledger family of runs on this store."""
        return family if self.name == "s3" else f"{family} on {self.name}"

    def child_env(self, endpoint: str) -> dict[str, str]:
        """Environment that sends a child's traffic for this store to ``endpoint`` (a fault proxy)."""
        raise NotImplementedError

    def objects_under(self, prefix: str) -> set[str]:
        """The committed objects under ``prefix`` (what a reader lists), relative to it."""
        raise NotImplementedError

    def unfinished(self, prefix: str) -> set[str]:
        """Keys under ``prefix`` with an upload started and not committed (invisible to readers)."""
        raise NotImplementedError

    def small_uploads(self, size: int) -> str:
        """Source of a start-up hook (``sitecustomize.py``) making taskbox upload in parts or blocks of ``size``."""
        raise NotImplementedError

    def hook_env(self, directory: Path, size: int) -> dict[str, str]:
        """Write :meth:`small_uploads` into ``directory``; the ``PYTHONPATH`` that loads it in a child."""
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "sitecustomize.py").write_text(self.small_uploads(size))
        return {"PYTHONPATH": os.pathsep.join([str(directory), PLUGINS])}


class S3Store(Store):
    """moto's S3: ``AWS_ENDPOINT_URL``; unfinished uploads are open multipart uploads."""

    name = "s3"
    faults = FAULTS
    aborts_unfinished = True

    def child_env(self, endpoint: str) -> dict[str, str]:
        return {"AWS_ENDPOINT_URL": endpoint}

    def objects_under(self, prefix: str) -> set[str]:
        bucket, key = bucket_and_key(prefix)
        key = key.rstrip("/")
        listing = self.server.client().list_objects_v2(Bucket=bucket, Prefix=key + "/")
        return {item["Key"][len(key) + 1 :] for item in listing.get("Contents", [])}

    def unfinished(self, prefix: str) -> set[str]:
        bucket, key = bucket_and_key(prefix)
        listing = self.server.client().list_multipart_uploads(Bucket=bucket, Prefix=key.rstrip("/") + "/")
        return {upload["Key"] for upload in listing.get("Uploads", [])}

    def small_uploads(self, size: int) -> str:
        # S3 refuses parts under 5 MiB (but the last): a multipart upload needs at least two of them.
        return (
            "from taskbox.storage import remote\n\n"
            f"remote._S3_PART_SIZE = {size}\n"
            "remote._S3_SINGLE_PUT_MAX = 2 * remote._S3_PART_SIZE\n"
        )


class AzureStore(Store):
    """Azurite: a connection string whose ``BlobEndpoint`` is the proxy; unfinished uploads are staged blocks."""

    name = "azure"
    faults = AZURE_FAULTS
    aborts_unfinished = False

    def child_env(self, endpoint: str) -> dict[str, str]:
        return {"AZURE_STORAGE_CONNECTION_STRING": self.server.connection_string(endpoint=endpoint)}

    def _container(self, prefix: str) -> tuple[Any, str]:
        container, key = bucket_and_key(prefix)
        return self.server.client().get_container_client(container), key.rstrip("/") + "/"

    def objects_under(self, prefix: str) -> set[str]:
        container, key = self._container(prefix)
        return {blob.name[len(key) :] for blob in container.list_blobs(name_starts_with=key)}

    def unfinished(self, prefix: str) -> set[str]:
        # A blob with staged blocks only is listed with include=uncommittedblobs alone; a committed blob may
        # hold staged blocks too (a later upload of the same name that never committed): ask each one.
        container, key = self._container(prefix)
        staged = set()
        for blob in container.list_blobs(name_starts_with=key, include=["uncommittedblobs"]):
            _, uncommitted = container.get_blob_client(blob.name).get_block_list("uncommitted")
            if uncommitted:
                staged.add(blob.name)
        return staged

    def small_uploads(self, size: int) -> str:
        # One Put Blob up to `size`, above it Put Block of `size` each and one Put Block List.
        return f"from taskbox.storage import azure\n\nazure._SINGLE_PUT_MAX = azure._BLOCK_SIZE = {size}\n"


STORES: dict[str, type[Store]] = {cls.name: cls for cls in (S3Store, AzureStore)}


def get(request: pytest.FixtureRequest, name: str) -> Store:
    """The store ``name`` on its session server (started by its fixture, ``<name>_server``, if not yet)."""
    return STORES[name](request.getfixturevalue(f"{name}_server"))
