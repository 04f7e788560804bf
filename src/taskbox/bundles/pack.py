"""Pack a source tree into a deterministic, content-addressed ``tar.gz`` code bundle.

Why: a bundle's name is the hash of its bytes, so the same tree must always give the same bytes
(re-registering unchanged code uploads nothing and yields the same URI), and the bundle must never
carry what the extractor rejects (links, special files, odd modes) or what does not belong in it
(VCS data, caches, virtual environments, ignored files).

Invariants:
    * Members are sorted by name; every member has mtime 0, uid/gid 0, empty user/group names and a
      mode of 0o755 (directories and executables) or 0o644; the gzip header has mtime 0 and no name.
    * ``.git``, ``__pycache__``, ``*.pyc`` and ``.venv*`` are always ignored; then the rules of the
      root ``.gitignore`` and ``.taskboxignore`` apply (the common gitignore subset: globs, ``**``,
      ``dir/``, ``!negation``, anchored ``/x``; last match wins; an ignored directory is not entered).
    * A symlink whose target resolves inside the tree is dereferenced (stored as the file or the
      directory it points to); one that points outside, dangles, or loops raises
      :class:`BundleRejected`. Sockets, FIFOs and devices are rejected too.
"""

from __future__ import annotations

import gzip
import io
import os
import re
import stat
import tarfile

from taskbox import storage
from taskbox.bundles.errors import BundleRejected
from taskbox.errors import StorageNotFound

__all__ = ["IgnoreRules", "bundle_name", "iter_files", "pack", "store_bundle", "upload_bundle"]

ALWAYS_IGNORED = (".git", "__pycache__", "*.pyc", ".venv*")
IGNORE_FILES = (".gitignore", ".taskboxignore")
_GZIP_LEVEL = 9


class _Rule:
    """One ignore rule (a plain class: this module is imported by ``fast-execute``, dataclasses cost ~10 ms)."""

    __slots__ = ("anchored", "dir_only", "negate", "regex")

    def __init__(self, regex: re.Pattern[str], negate: bool, dir_only: bool, anchored: bool) -> None:
        self.regex = regex
        self.negate = negate
        self.dir_only = dir_only
        self.anchored = anchored


def _glob_to_regex(glob: str) -> str:
    """Translate a gitignore glob (``*``, ``?``, ``[...]``, ``**``) into a regex body."""
    out: list[str] = []
    i = 0
    while i < len(glob):
        c = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("/**", i) and i + 3 == len(glob):
            out.append("/.*")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif c == "*":
            out.append("[^/]*")
            i += 1
        elif c == "?":
            out.append("[^/]")
            i += 1
        elif c == "[":
            end = glob.find("]", i + 2)
            if end == -1:
                out.append(re.escape(c))
                i += 1
            else:
                body = glob[i + 1 : end]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end + 1
        elif c == "\\" and i + 1 < len(glob):
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(c))
            i += 1
    return "".join(out)


class IgnoreRules:
    """An ordered list of gitignore-style rules; the last matching rule decides.

    Args:
        lines: Rule lines (comments, blanks and trailing spaces are ignored).
    """

    def __init__(self, lines: list[str] | tuple[str, ...] = ()) -> None:
        self._rules: list[_Rule] = []
        for line in lines:
            self.add(line)

    def add(self, line: str) -> None:
        """Parse and append one rule line."""
        line = line.rstrip("\n").rstrip("\r")
        if not line.endswith("\\ "):
            line = line.rstrip(" ")
        if not line or line.startswith("#"):
            return
        negate = line.startswith("!")
        if negate:
            line = line[1:]
        elif line.startswith("\\"):
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            return
        anchored = "/" in line
        line = line.lstrip("/")
        regex = re.compile(r"\A" + _glob_to_regex(line) + r"\Z", re.DOTALL)
        self._rules.append(_Rule(regex, negate, dir_only, anchored))

    def ignored(self, relpath: str, is_dir: bool) -> bool:
        """True if ``relpath`` (posix, relative to the root) is ignored.

        Args:
            relpath: The path relative to the tree's root, with ``/`` separators.
            is_dir: Whether the path is a directory (``dir/`` rules match directories only).

        Returns:
            The decision of the last matching rule, or False when none matches.
        """
        name = relpath.rsplit("/", 1)[-1]
        result = False
        for rule in self._rules:
            if rule.dir_only and not is_dir:
                continue
            subject = relpath if rule.anchored else name
            if rule.regex.match(subject):
                result = not rule.negate
        return result


def _load_rules(root: str) -> IgnoreRules:
    rules = IgnoreRules(ALWAYS_IGNORED)
    for filename in IGNORE_FILES:
        path = os.path.join(root, filename)
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as fh:
                for line in fh:
                    rules.add(line)
    for name in ALWAYS_IGNORED:  # cannot be re-included by a negation
        rules.add(name)
    return rules


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root + os.sep)


def iter_files(src_dir: str) -> list[tuple[str, str, bool]]:
    """List what :func:`pack` would store, sorted by archive name.

    Args:
        src_dir: The tree's root directory.

    Returns:
        ``(arcname, real_source_path, is_dir)`` tuples, symlinks already resolved.

    Raises:
        BundleRejected: A symlink leaves the tree, dangles or loops; or a special file is found.
    """
    root = os.path.realpath(src_dir)
    if not os.path.isdir(root):
        raise BundleRejected(None, f"source {src_dir!r} is not a directory")
    rules = _load_rules(root)
    entries: list[tuple[str, str, bool]] = []

    def walk(real_dir: str, rel_dir: str, ancestors: frozenset[str]) -> None:
        with os.scandir(real_dir) as it:
            names = sorted(e.name for e in it)
        for name in names:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            path = os.path.join(real_dir, name)
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                try:
                    followed: os.stat_result | None = os.stat(path)
                except OSError:
                    followed = None
                if rules.ignored(rel, followed is not None and stat.S_ISDIR(followed.st_mode)):
                    continue  # an ignored link is never followed, wherever it points
                target = os.path.realpath(path)
                if not _inside(target, root):
                    raise BundleRejected(rel, f"symlink points outside the source tree ({os.readlink(path)!r})")
                if followed is None:
                    raise BundleRejected(rel, "symlink dangles or loops")
                st, path = followed, target
            elif rules.ignored(rel, stat.S_ISDIR(st.st_mode)):
                continue
            is_dir = stat.S_ISDIR(st.st_mode)
            if is_dir:
                if path in ancestors:
                    raise BundleRejected(rel, "symlink makes a directory cycle")
                entries.append((rel, path, True))
                walk(path, rel, ancestors | {path})
            elif stat.S_ISREG(st.st_mode):
                entries.append((rel, path, False))
            else:
                raise BundleRejected(rel, "not a regular file or directory (socket, FIFO or device)")

    walk(root, "", frozenset({root}))
    entries.sort(key=lambda e: e[0])
    return entries


def pack(src_dir: str) -> bytes:
    """Build the deterministic ``tar.gz`` bundle of ``src_dir``.

    Args:
        src_dir: The tree's root directory; its contents become the archive's top level.

    Returns:
        The gzip-compressed tar bytes; equal trees give equal bytes.

    Raises:
        BundleRejected: See :func:`iter_files`.
    """
    raw = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=_GZIP_LEVEL) as gz:
        with tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT, encoding="utf-8") as tar:
            for arcname, path, is_dir in iter_files(src_dir):
                info = tarfile.TarInfo(arcname)
                info.mtime = 0
                info.uid = info.gid = 0
                info.uname = info.gname = ""
                if is_dir:
                    info.type = tarfile.DIRTYPE
                    info.mode = 0o755
                    tar.addfile(info)
                    continue
                with open(path, "rb") as fh:
                    st = os.fstat(fh.fileno())
                    info.size = st.st_size
                    info.mode = 0o755 if st.st_mode & 0o111 else 0o644
                    tar.addfile(info, fh)
    return raw.getvalue()


def bundle_name(data: bytes) -> str:
    """Content-addressed object name of a bundle: ``<sha256 hex[:32]>.tar.gz``."""
    import hashlib  # lazy: OpenSSL costs 5-10 ms; fast-execute imports this module but never hashes

    return hashlib.sha256(data).hexdigest()[:32] + ".tar.gz"


def store_bundle(data: bytes, to_uri: str) -> tuple[str, bool]:
    """Store packed bundle bytes as ``<to_uri>/<bundle_name>``.

    The write is skipped when an object of that name and the same size already exists (the name is
    the content hash).

    Args:
        data: What :func:`pack` returned.
        to_uri: A directory path or URI prefix (local, ``file://``, ``s3://`` ...).

    Returns:
        ``(uri, written)``: the bundle's URI and whether it was written (``False``: already there).
    """
    uri = storage.join(to_uri, bundle_name(data))
    if storage.exists(uri):
        try:
            if storage.size(uri) == len(data):
                return uri, False
        except StorageNotFound:  # pragma: no cover - raced with a delete: just write it
            pass
    storage.write_bytes(uri, data)
    return uri, True


def upload_bundle(src_dir: str, to_uri: str) -> str:
    """Pack ``src_dir`` and store it as ``<to_uri>/<bundle_name>`` (see :func:`store_bundle`).

    Args:
        src_dir: The tree to pack.
        to_uri: A directory path or URI prefix (local, ``file://``, ``s3://`` ...).

    Returns:
        The bundle's URI.
    """
    return store_bundle(pack(src_dir), to_uri)[0]
