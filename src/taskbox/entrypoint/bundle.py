"""``taskbox bundle SRC_DIR --to URI``: pack a source tree and upload it as a content-addressed bundle.

Why: a user task runs from a code bundle (``taskbox fast-execute --additional-distribution URI``);
this command makes one. The bundle's object name is the hash of its bytes
(:func:`taskbox.bundles.pack.bundle_name`), so packing an unchanged tree twice uploads nothing and
prints the same URI.

Invariants:
    * stdout carries exactly one line, the bundle URI (scriptable: ``URI=$(taskbox bundle src --to ...)``);
      ``--list`` prints the archive names instead, one per line, directories ending in ``/``. Anything
      for a person goes to stderr.
    * Errors are typed (``BundleRejected`` for a missing or unpackable tree, storage errors for an
      unwritable destination) and reported as one ``taskbox bundle: CODE: message`` line on stderr with
      exit code 1; usage errors exit 2.
    * A plain local ``--to`` path is made absolute, so the printed URI works from any directory.
"""

from __future__ import annotations

import argparse
import os
import sys

from taskbox import storage

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="taskbox bundle",
        description="Pack SRC_DIR into a deterministic tar.gz named by its content hash, upload it to "
        "URI/<hash>.tar.gz and print that URI.",
    )
    p.add_argument("src_dir", metavar="SRC_DIR", help="the source tree (its contents become the bundle's root)")
    p.add_argument("--to", metavar="URI", help="directory path or URI prefix (local, file://, s3://, gs://, abfs://)")
    p.add_argument("--list", action="store_true", help="print the files that would be included; upload nothing")
    p.add_argument("--dry-run", action="store_true", help="pack and print the URI; upload nothing")
    return p


def _destination(to: str) -> str:
    return os.path.abspath(to) if storage.protocol_of(to) == "" else to


def main(argv: list[str]) -> int:
    """Run ``taskbox bundle``.

    Returns:
        0 on success, 1 on a typed error (reported on stderr), 2 on a usage error.
    """
    parser = _parser()
    ns = parser.parse_args(argv)
    if not ns.list and not (ns.to or "").strip():
        parser.error("--to URI is required (or --list)")
    from taskbox.bundles.pack import iter_files, pack, store_bundle
    from taskbox.errors import TaskboxError

    try:
        if ns.list:
            for arcname, _path, is_dir in iter_files(ns.src_dir):
                print(f"{arcname}/" if is_dir else arcname)
            return 0
        data = pack(ns.src_dir)
        to = _destination(ns.to)
        if ns.dry_run:
            from taskbox.bundles.pack import bundle_name

            print(storage.join(to, bundle_name(data)))
            print(f"taskbox bundle: dry run, {len(data)} bytes, nothing uploaded", file=sys.stderr)
            return 0
        uri, written = store_bundle(data, to)
    except TaskboxError as exc:
        print(f"taskbox bundle: {exc.code}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:  # storage.join refuses a malformed destination
        print(f"taskbox bundle: invalid destination {ns.to!r}: {exc}", file=sys.stderr)
        return 1
    print(uri)
    state = "uploaded" if written else "already present, not uploaded"
    print(f"taskbox bundle: {len(data)} bytes, {state}", file=sys.stderr)
    return 0
