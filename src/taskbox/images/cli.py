"""``taskbox images`` (the catalog) and ``taskbox image build|sizes`` (the Docker SDK tooling).

``taskbox image build`` has two forms:

* ``--variant V``: build ``Dockerfiles/V.Dockerfile`` from the source tree on ``--base-image`` (the
  Python base), tagged ``<registry>/executor-V:<version>-py<python>`` unless ``--tag`` says otherwise;
* ``--executor PACKAGE_OR_PATH --tag T [--base VARIANT]``: add a third-party executor to the ``base``
  image (or another variant) and check that it loads inside the new image.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from taskbox.errors import TaskboxError

__all__ = ["image_main", "images_main"]


def images_main(argv: list[str]) -> int:
    """``taskbox images [--json]``: the catalog, with the references of the installed version."""
    p = argparse.ArgumentParser(prog="taskbox images", description="Print the executor image catalog.")
    p.add_argument("--json", action="store_true", help="print JSON")
    ns = p.parse_args(argv)
    from taskbox import __version__
    from taskbox.images.catalog import load_catalog

    try:
        catalog = load_catalog()
    except TaskboxError as exc:
        print(f"taskbox images: {exc}", file=sys.stderr)
        return 1
    rows = [
        {
            "variant": e.variant,
            "repository": e.repository,
            "tag": catalog.tag(__version__),
            "reference": catalog.reference(e.variant, __version__),
            "digest": e.digests.get(catalog.tag(__version__)),
            "description": e.description,
        }
        for e in catalog.entries.values()
    ]
    if ns.json:
        print(json.dumps({"version": __version__, "tag_scheme": catalog.tag_scheme, "images": rows}, indent=2))
        return 0
    print(f"taskbox {__version__} images (tags {catalog.tag_scheme}; digest-pinned once published):")
    for row in rows:
        pinned = row["digest"] or "unpublished"
        print(f"  {row['variant']:<8} {row['reference']}  [{pinned}]")
        print(f"  {'':<8} {row['description']}")
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="taskbox image", description="Build and measure executor images (Docker SDK).")
    sub = p.add_subparsers(dest="action", required=True)
    b = sub.add_parser("build", help="build a variant image or a custom executor image")
    what = b.add_mutually_exclusive_group(required=True)
    what.add_argument("--variant", help="a catalog variant: base, sqlite, sql, http, python")
    what.add_argument("--executor", help="a project folder, a wheel, or a pip requirement registering executors")
    b.add_argument("--tag", help="image reference (default for variants: <registry>/executor-V:<version>-py<python>)")
    b.add_argument("--base", default="base", help="for --executor: the variant to build on (default base)")
    b.add_argument("--base-image", help="for --variant: the Python base image; for --executor: the parent image")
    b.add_argument("--registry", help="registry and namespace replacing the catalog's (ghcr.io/acme)")
    b.add_argument("--version", help="image version (default: the installed taskbox version)")
    b.add_argument("--revision", default="unknown", help="source revision for the OCI label")
    b.add_argument("--created", default="1970-01-01T00:00:00Z", help="creation time for the OCI label")
    b.add_argument("--source", type=Path, help="taskbox source tree (default: found from here)")
    b.add_argument(
        "--build-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='for --variant: another build argument, e.g. EXTRA_PACKAGES="pandas numpy" for the python variant',
    )
    b.add_argument("--quiet", action="store_true", help="do not echo the build output")
    for action, summary in (
        ("sizes", "print each variant's uncompressed size and what it adds to its base"),
        ("tags", "print each variant and its image reference, one per line"),
    ):
        s = sub.add_parser(action, help=summary)
        s.add_argument("--base-image", required=True, help="the Python base the variants were built on")
        s.add_argument("--registry", help="registry and namespace replacing the catalog's")
        s.add_argument("--version", help="image version (default: the installed taskbox version)")
        s.add_argument("--variants", nargs="*", help="variants (default: all)")
    return p


def _parent(client: Any, ns: argparse.Namespace, version: str) -> str:
    """Pick the parent of a custom executor image: ``--base-image``, else the local ``--base`` variant image."""
    from taskbox.images.catalog import load_catalog
    from taskbox.images.errors import ImageBuildError
    from taskbox.images.variants import variant_tag

    if ns.base_image:
        return ns.base_image
    repository = variant_tag(ns.base, version, "any", ns.registry).rsplit(":", 1)[0]
    # Any Python: the tag up to the scheme's {python} field ("0.1.0-py").
    prefix = load_catalog().tag_scheme.split("{python}", 1)[0].format(version=version)
    for image in client.images.list(name=repository):
        for tag in image.tags:
            if tag.startswith(f"{repository}:{prefix}"):
                return tag
    raise ImageBuildError(repository, f"no local {ns.base} image of version {version}: run `make image-{ns.base}`")


def _build(ns: argparse.Namespace) -> int:
    from taskbox import __version__
    from taskbox.images import build as sdk
    from taskbox.images.context import find_source_root
    from taskbox.images.variants import build_executor_image, build_variant

    version = ns.version or __version__
    progress = None if ns.quiet else sdk.print_progress
    client = sdk.docker_client()
    if ns.variant:
        if not ns.base_image:
            print("taskbox image build: --variant needs --base-image (the Python base)", file=sys.stderr)
            return 2
        built = build_variant(
            client,
            ns.variant,
            base_image=ns.base_image,
            version=version,
            revision=ns.revision,
            source=ns.source or find_source_root(),
            tag=ns.tag,
            registry=ns.registry,
            created=ns.created,
            extra_buildargs=dict(arg.partition("=")[::2] for arg in ns.build_arg),
            progress=progress,
        )
        print(built.tag)
        return 0
    if not ns.tag:
        print("taskbox image build: --executor needs --tag", file=sys.stderr)
        return 2
    built = build_executor_image(client, ns.executor, ns.tag, parent=_parent(client, ns, version), progress=progress)
    print(built.tag)
    for info in built.executors:
        print(f"  executor {info['name']} (task types: {', '.join(info['task_types'])}): {info['status']}")
    return 0


def _variants(ns: argparse.Namespace) -> int:
    from taskbox import __version__
    from taskbox.images import VARIANTS
    from taskbox.images import build as sdk
    from taskbox.images.variants import format_sizes, image_sizes, variant_tag

    client = sdk.docker_client()
    python = sdk.image_python(client, ns.base_image)
    version = ns.version or __version__
    tags = {v: variant_tag(v, version, python, ns.registry) for v in (ns.variants or VARIANTS)}
    if ns.action == "tags":
        for variant, tag in tags.items():
            print(variant, tag)
    else:
        print(format_sizes(image_sizes(client, tags, ns.base_image), ns.base_image))
    return 0


def image_main(argv: list[str]) -> int:
    """``taskbox image build|sizes|tags ...``."""
    ns = _parser().parse_args(argv)
    try:
        return _build(ns) if ns.action == "build" else _variants(ns)
    except TaskboxError as exc:
        print(f"taskbox image {ns.action}: {exc}", file=sys.stderr)
        return 1
