"""Checkpoints: let an attempt resume from what the previous attempt saved.

Why: Flyte retries a failed attempt (a recoverable error, a node eviction) from scratch unless the task
saves its progress. Propeller gives every attempt a checkpoint prefix to write
(``{{.checkpointOutputPrefix}}`` -> ``--checkpoint-path``) and the previous attempt's prefix to read
(``{{.prevCheckpointPrefix}}`` -> ``--prev-checkpoint``, literally ``""`` on the first attempt). This
module is the task-side API over those two prefixes, shaped like flytekit's ``SyncCheckpoint``
(``prev_exists``, ``restore``, ``save``, ``read``, ``write``) so code moves between the two unchanged.

Invariants:
    * ``write(data)`` stores the bytes as ``<checkpoint-path>/_dst_cp``, flytekit's name, so a checkpoint
      written by a flytekit task is read here and the other way round.
    * Reading never fails because there is nothing to read: no ``--prev-checkpoint`` (absent, empty,
      ``""`` or an unsubstituted placeholder, normalised by the CLI) or an empty/missing prefix (the
      previous attempt saved nothing) gives ``None``.
    * Writing without a ``--checkpoint-path`` raises :class:`CheckpointError` (a USER error): silently
      dropping progress would only surface as a lost retry later.
    * All traffic goes through :mod:`taskbox.storage` (local paths, ``file://``, ``s3://``, ``gs://``, ``abfs://``);
      the previous checkpoint is downloaded at most once per run, into the run's working directory.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO

from taskbox import storage
from taskbox.errors import StorageNotFound, UserError

__all__ = ["DATA_FILE", "Checkpoint", "CheckpointError"]

#: The object ``write()`` creates under the checkpoint prefix (flytekit's ``SyncCheckpoint.TMP_DST_PATH``).
DATA_FILE = "_dst_cp"


class CheckpointError(UserError):
    """A checkpoint was used in a way this run does not allow (no checkpoint path, ambiguous content)."""

    code = "USER:CheckpointError"


class Checkpoint:
    """One attempt's view of its checkpoints.

    Args:
        checkpoint_path: Where this attempt saves (``--checkpoint-path``); ``None`` if Flyte gave none.
        prev_checkpoint: What the previous attempt saved (``--prev-checkpoint``); ``None`` on the first.
        working_dir: Local scratch directory (the run's) for the restored copy.
    """

    def __init__(self, checkpoint_path: str | None, prev_checkpoint: str | None, *, working_dir: str) -> None:
        self._dest = checkpoint_path or None
        self._src = prev_checkpoint or None
        self._working_dir = working_dir
        self._restored: Path | None = None
        self._restore_done = False

    @property
    def path(self) -> str | None:
        """Return this attempt's checkpoint prefix (where ``save``/``write`` go), if any."""
        return self._dest

    @property
    def prev_path(self) -> str | None:
        """The previous attempt's checkpoint prefix, if any."""
        return self._src

    def __repr__(self) -> str:
        return f"Checkpoint(path={self._dest!r}, prev_path={self._src!r})"

    def prev_exists(self) -> bool:
        """Tell whether Flyte named a previous checkpoint (it may still be empty: :meth:`read` says ``None``)."""
        return self._src is not None

    def restore(self, path: str | os.PathLike[str] | None = None) -> Path | None:
        """Download the previous attempt's checkpoint into a local directory.

        Args:
            path: A local directory to restore into (created if missing); by default a directory in the
                run's working directory. Only the first call downloads; later calls return the same place.

        Returns:
            The directory holding the previous checkpoint's files, or ``None`` if there is none.

        Raises:
            CheckpointError: ``path`` exists and is not a directory.
            StorageError: The download failed (transient errors are recoverable, as usual).
        """
        if self._restore_done:
            return self._restored
        if self._src is None:
            return None
        target = Path(path) if path is not None else Path(self._working_dir, "prev-checkpoint")
        if target.exists() and not target.is_dir():
            raise CheckpointError(f"checkpoints restore into a directory; {target} is a file")
        target.mkdir(parents=True, exist_ok=True)
        try:
            storage.download(self._src, str(target), recursive=True)
        except StorageNotFound:
            restored = None  # the previous attempt saved nothing
        else:
            restored = target
        self._restored, self._restore_done = restored, True
        return restored

    def save(self, checkpoint: str | os.PathLike[str] | IO[bytes]) -> None:
        """Save a local directory, a local file or a binary stream as this attempt's checkpoint.

        A directory's files go under the checkpoint prefix keeping their relative paths; a file goes
        there under its own name; a stream's bytes become ``<prefix>/_dst_cp`` (as :meth:`write`).

        Raises:
            CheckpointError: This run has no checkpoint path, or ``checkpoint`` does not exist.
            StorageError: The upload failed.
        """
        dest = self._require_dest()
        if hasattr(checkpoint, "read"):
            self.write(checkpoint.read())
            return
        local = os.fspath(checkpoint)
        if os.path.isdir(local):
            storage.upload(local, dest, recursive=True)
        elif os.path.isfile(local):
            storage.upload(local, storage.join(dest, os.path.basename(local)))
        else:
            raise CheckpointError(f"cannot save checkpoint {local}: no such file or directory")

    def read(self) -> bytes | None:
        """Return the previous attempt's checkpoint as bytes (what it passed to :meth:`write`).

        Returns:
            The bytes, or ``None`` if there is no previous checkpoint or it is empty.

        Raises:
            CheckpointError: The previous checkpoint holds more than one file (use :meth:`restore`).
        """
        restored = self.restore()
        if restored is None:
            return None
        files = sorted(p for p in restored.rglob("*") if p.is_file())
        if not files:
            return None
        if len(files) > 1:
            names = ", ".join(str(p.relative_to(restored)) for p in files[:5])
            raise CheckpointError(
                f"expected exactly one file in the previous checkpoint {self._src}, found {len(files)} ({names}); "
                "use restore() for multi-file checkpoints"
            )
        return files[0].read_bytes()

    def write(self, data: bytes) -> None:
        """Save ``data`` as this attempt's checkpoint (``<checkpoint-path>/_dst_cp``), replacing any earlier write.

        Raises:
            CheckpointError: This run has no checkpoint path, or ``data`` is not bytes.
            StorageError: The upload failed.
        """
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise CheckpointError(f"checkpoint data must be bytes, got {type(data).__name__}")
        storage.write_bytes(storage.join(self._require_dest(), DATA_FILE), bytes(data))

    def _require_dest(self) -> str:
        if self._dest is None:
            raise CheckpointError(
                "this run has no checkpoint path (--checkpoint-path was absent or an unsubstituted "
                "placeholder), so a checkpoint cannot be saved"
            )
        return self._dest
