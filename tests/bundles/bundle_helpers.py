"""Helpers for the bundle tests: tree builders, raw archive builders and a multiprocessing worker."""

from __future__ import annotations

import gzip
import os
import tarfile

from helpers import write_tar
from taskbox import storage
from taskbox.bundles import fetch_and_extract


def write_tree(root, files: dict[str, str | bytes]) -> str:
    """Create ``files`` (posix relative path -> content) under ``root``; return ``str(root)``."""
    for rel, content in files.items():
        path = os.path.join(str(root), *rel.split("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(path, mode) as fh:
            fh.write(content)
    return str(root)


def read_tree(root) -> dict[str, bytes]:
    """All regular files under ``root`` as posix relative path -> bytes."""
    out = {}
    for dirpath, _dirs, files in os.walk(str(root)):
        for name in files:
            path = os.path.join(dirpath, name)
            out[os.path.relpath(path, str(root)).replace(os.sep, "/")] = open(path, "rb").read()
    return out


def make_targz(path, members, *, format=tarfile.GNU_FORMAT, encoding="utf-8") -> str:
    """Write a tar.gz of ``members``: (TarInfo field dict, bytes or None) pairs."""
    return write_tar(path, members, "w:gz", format=format, encoding=encoding, errors="surrogateescape")


def make_zero_bomb(path, size: int = 1024**3) -> str:
    """A tar.gz holding one member of ``size`` zero bytes, streamed (about 1 MB for 1 GiB)."""
    info = tarfile.TarInfo("zeros.bin")
    info.size = size
    chunk = bytes(4 * 1024 * 1024)
    with open(str(path), "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
        gz.write(info.tobuf(format=tarfile.GNU_FORMAT))
        left = size
        while left:
            n = min(left, len(chunk))
            gz.write(chunk[:n] if n < len(chunk) else chunk)
            left -= n
        gz.write(bytes(-size % 512 + 1024))
    return str(path)


def make_many_empty(path, count: int = 200_000) -> str:
    """A tar.gz of ``count`` empty regular files, headers built from a template (fast)."""
    template = bytearray(tarfile.TarInfo("f0000000").tobuf(format=tarfile.USTAR_FORMAT))

    def header(i: int) -> bytes:
        block = bytearray(template)
        block[0:8] = b"f%07d" % i
        block[148:156] = b" " * 8
        block[148:156] = b"%06o\x00 " % sum(block)
        return bytes(block)

    with open(str(path), "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=1, mtime=0) as gz:
        for start in range(0, count, 10_000):
            gz.write(b"".join(header(i) for i in range(start, min(start + 10_000, count))))
        gz.write(bytes(1024))
    return str(path)


def extract_logging_downloads(uri: str, dest: str, log: str) -> None:
    """Process worker: extract ``uri`` into ``dest``, appending a line to ``log`` for every download."""
    real = storage.download

    def counting(src, local_path, **kwargs):
        with open(log, "a") as fh:
            fh.write(f"{os.getpid()}\n")
        return real(src, local_path, **kwargs)

    storage.download = counting
    fetch_and_extract(uri, dest)
