"""``taskbox images`` (the catalog, ``--check``) and ``taskbox image build|push|sizes|tags`` (the Docker SDK tooling).

``taskbox image build`` has two forms:

* ``--variant V``: build ``Dockerfiles/V.Dockerfile`` from the source tree on ``--base-image`` (the
  Python base), tagged ``<registry>/executor-V:<version>-py<python>`` unless ``--tag`` says otherwise;
* ``--executor PACKAGE_OR_PATH --tag T [--base VARIANT]``: add a third-party executor to the ``base``
  image (or another variant) and check that it loads inside the new image.

``taskbox image push`` pushes variant images (the references ``build`` tags, with the same ``--registry``)
and records their digests in the image lock; ``taskbox images`` then prints ``repository:tag@sha256:...``
and ``taskbox images --check`` asks the registries whether they serve those digests.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskbox.errors import TaskboxError

if TYPE_CHECKING:
    from taskbox.images.catalog import Catalog

__all__ = ["image_main", "images_main"]


def _image_rows(variants: list[str], lock_path: Path | None) -> tuple[Catalog, list[dict[str, Any]]]:
    """The catalog and one row per variant: the installed version's reference, pinned when the lock has it."""
    from taskbox import __version__
    from taskbox.images.catalog import load_catalog
    from taskbox.images.lock import load_lock

    catalog = load_catalog()
    lock = load_lock(lock_path)
    rows = []
    for variant in variants or list(catalog.entries):
        entry = catalog.entry(variant)
        published = lock.entry(variant, __version__)
        reference = published.reference if published else catalog.reference(variant, __version__)
        rows.append(
            {
                "variant": variant,
                "repository": reference.rsplit(":", 1)[0],
                "tag": reference.rsplit(":", 1)[1],
                "reference": published.pinned if published else reference,
                "digest": published.digest if published else None,
                "description": entry.description,
            }
        )
    return catalog, rows


def _check(rows: list[dict[str, Any]]) -> list[str]:
    """Ask each row's registry for its digest; set ``row["check"]``; return the problems, one per variant."""
    from taskbox.images.registry import RegistryClient

    problems = []
    with RegistryClient() as registry:
        for row in rows:
            if row["digest"] is None:
                row["check"] = "not published"
            else:
                try:
                    served = registry.serves(row["repository"], row["digest"])
                    row["check"] = "served" if served else "not served"
                except TaskboxError as exc:
                    row["check"] = f"error: {exc}"
            if row["check"] != "served":
                problems.append(f"{row['variant']} ({row['reference']}): {row['check']}")
    return problems


def images_main(argv: list[str]) -> int:
    """``taskbox images [--json] [--check] [--lock PATH] [--variant V ...] [--sbom V [--image REF]]``."""
    p = argparse.ArgumentParser(prog="taskbox images", description="Print the executor image catalog.")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--check", action="store_true",
                   help="ask each registry (HTTP API v2, anonymously) whether it serves the recorded digests; "
                        "exit 1 naming every variant that is not published or not served")  # fmt: skip
    p.add_argument("--lock", type=Path, help="the image lock to read (default: the packaged catalog.lock.toml)")
    p.add_argument("--variant", action="append", default=[], help="only this variant (repeatable)")
    p.add_argument("--sbom", metavar="VARIANT", help="print VARIANT's CycloneDX SBOM (the exported file, or --image's)")
    p.add_argument("--image", help="with --sbom: read the SBOM out of this local image instead")
    ns = p.parse_args(argv)
    from taskbox import __version__

    if ns.sbom:
        from taskbox.images.provenance import sbom_json

        try:
            print(sbom_json(ns.sbom, ns.image))
        except TaskboxError as exc:
            print(f"taskbox images --sbom: {exc}", file=sys.stderr)
            return 1
        return 0
    try:
        catalog, rows = _image_rows(ns.variant, ns.lock)
        problems = _check(rows) if ns.check else []
    except TaskboxError as exc:
        print(f"taskbox images: {exc}", file=sys.stderr)
        return 1
    if ns.json:
        print(json.dumps({"version": __version__, "tag_scheme": catalog.tag_scheme, "images": rows}, indent=2))
    else:
        print(f"taskbox {__version__} images (tags {catalog.tag_scheme}, pinned by digest once pushed):")
        for row in rows:
            check = f"  [{row['check']}]" if "check" in row else ""
            print(f"  {row['variant']:<8} {row['reference']}{check}")
            print(f"  {'':<8} {row['description']}")
        unpublished = [row["variant"] for row in rows if row["digest"] is None]
        if unpublished:
            print(f"not published (no digest recorded for {__version__}): {', '.join(unpublished)}; tags only")
    if problems:
        print("taskbox images --check: " + "; ".join(problems), file=sys.stderr)
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="taskbox image", description="Build, push, measure executor images (Docker SDK).")
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
    b.add_argument("--revision", help="source revision for the OCI label (default: the source tree's git commit)")
    b.add_argument(
        "--created", help="creation time for the OCI label (default: SOURCE_DATE_EPOCH, else the commit time)"
    )
    b.add_argument("--sbom-out", type=Path, help="for --variant: also write the image's SBOM to DIR/<variant>.cdx.json")
    b.add_argument("--source", type=Path, help="taskbox source tree (default: found from here)")
    b.add_argument(
        "--build-arg",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help='for --variant: another build argument, e.g. EXTRA_PACKAGES="pandas numpy" for the python variant',
    )
    b.add_argument("--quiet", action="store_true", help="do not echo the build output")
    u = sub.add_parser("push", help="push variant images and record their digests in the image lock")
    u.add_argument("--registry", help="registry and namespace replacing the catalog's, as given to build")
    u.add_argument("--variant", action="append", default=[], help="a variant to push (repeatable; default: all)")
    python = u.add_mutually_exclusive_group(required=True)
    python.add_argument("--base-image", help="the Python base the variants were built on (gives the tag's -py<python>)")
    python.add_argument("--python", help="the images' Python minor (3.11), instead of --base-image")
    u.add_argument("--version", help="image version (default: the installed taskbox version)")
    u.add_argument("--sbom-dir", type=Path, help="where to export the pushed images' SBOMs (default: beside the lock)")
    u.add_argument(
        "--lock", type=Path, help="the lock to update (default: images/catalog.lock.toml of the source tree)"
    )
    u.add_argument("--quiet", action="store_true", help="do not echo the push progress")
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
            sbom_dir=ns.sbom_out,
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


def _push(ns: argparse.Namespace) -> int:
    from taskbox import __version__
    from taskbox.images import VARIANTS
    from taskbox.images import build as sdk
    from taskbox.images.context import find_source_root
    from taskbox.images.errors import CatalogError
    from taskbox.images.lock import LOCK_RESOURCE
    from taskbox.images.push import push_variants

    lock_path = ns.lock
    if lock_path is None:
        try:
            lock_path = find_source_root() / "images" / LOCK_RESOURCE
        except TaskboxError:
            raise CatalogError("outside a taskbox source checkout: name the lock to write with --lock") from None
    sbom_dir = ns.sbom_dir or lock_path.parent / "sbom"  # beside the lock: images/sbom/<variant>.cdx.json
    client = sdk.docker_client()
    lock = push_variants(
        client,
        ns.variant or VARIANTS,
        version=ns.version or __version__,
        python=ns.python or sdk.image_python(client, ns.base_image),
        registry=ns.registry,
        lock_path=lock_path,
        sbom_dir=sbom_dir,
        progress=None if ns.quiet else sdk.print_progress,
    )
    for variant in ns.variant or VARIANTS:
        print(variant, lock.entries[variant].pinned)
    print(f"recorded in {lock_path}", file=sys.stderr)
    return 0


def image_main(argv: list[str]) -> int:
    """``taskbox image build|push|sizes|tags ...``."""
    ns = _parser().parse_args(argv)
    actions = {"build": _build, "push": _push}
    try:
        return actions.get(ns.action, _variants)(ns)
    except TaskboxError as exc:
        print(f"taskbox image {ns.action}: {exc}", file=sys.stderr)
        return 1
