r"""Write the CycloneDX SBOM of an executor image: its Python venv, its Debian packages, its OS and interpreter.

Runs in the builder stage of every Dockerfile in ``Dockerfiles/``, with the interpreter of a throwaway venv
that holds the generator (``/build/sbom-venv``, pinned in ``images/sbom/requirements.txt``); nothing of it
reaches the runtime image, which gets only the SBOM file (``/usr/share/taskbox/sbom.cdx.json``)::

    SOURCE_DATE_EPOCH=... /build/sbom-venv/bin/python make_sbom.py --venv /opt/taskbox \
        --name taskbox-sqlite --version 0.1.0 --revision abc123 --output /build/sbom.cdx.json

What it lists, and from where:

* every distribution of the venv (``pkg:pypi/name@version``), with its licenses and dependency graph:
  ``cyclonedx-py environment`` on the venv's interpreter, after ``strip_venv.py`` (so exactly what ships);
* every installed Debian package of the root filesystem (``pkg:deb/debian/name@version?arch=..&distro=..``),
  read from dpkg's status file. The builder stage and the runtime stage start from the same ``BASE_IMAGE``
  and neither installs Debian packages, so the builder's status file is the runtime image's (the tests
  compare it with ``dpkg-query`` inside the image);
* the operating system (``/etc/os-release``), and the Python interpreter when no Debian package owns it
  (``python:3.11-slim`` builds its own in ``/usr/local``): ``pkg:generic/python@version``.

cyclonedx-python-lib merges these into one BOM (CycloneDX 1.6, JSON) and validates it against the schema.
The output is reproducible: the timestamp is ``SOURCE_DATE_EPOCH`` (the commit time, never the clock) and
the serial number a UUID derived from the content.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import re
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from cyclonedx.model import ExternalReference, ExternalReferenceType, Property, XsUri
from cyclonedx.model.bom import Bom
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

#: cyclonedx-py's placeholder for components it has no stable identity for (random: replaced).
_RANDOM_REF = re.compile(r"^BomRef\.[0-9.]+$")
_SERIAL_PLACEHOLDER = uuid.UUID(int=0)


def canonical(name: str) -> str:
    """PEP 503 normalized distribution name (the name in a ``pkg:pypi`` purl)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def python_bom(venv: Path) -> Bom:
    """The venv's distributions, as ``cyclonedx-py environment`` lists them."""
    generator = Path(sys.executable).with_name("cyclonedx-py")
    with tempfile.TemporaryDirectory(prefix="sbom-") as scratch:
        out = Path(scratch) / "python.cdx.json"
        cmd = [str(generator), "environment", "--output-reproducible", "--sv", "1.6", "--of", "JSON"]
        subprocess.run([*cmd, "-o", str(out), str(venv / "bin" / "python")], check=True)
        bom = Bom.from_json(json.loads(out.read_text(encoding="utf-8")))  # type: ignore[attr-defined]
    components = list(bom.components)
    taken = {c.bom_ref.value for c in components if c.bom_ref.value and not _RANDOM_REF.match(c.bom_ref.value)}
    for component in components:
        # A distribution installed from a local wheel (taskbox's own) gets no purl and no bom-ref (the
        # library makes a random one when writing): give it both, stable.
        if component.purl is None and component.version:
            component.purl = PackageURL(type="pypi", name=canonical(component.name), version=component.version)
        ref = component.bom_ref.value
        if ref is None or _RANDOM_REF.match(ref):
            ref = stable = f"{component.name}=={component.version}"
            for n in range(2, len(components) + 2):
                if ref not in taken:
                    break
                ref = f"{stable}#{n}"
            component.bom_ref.value = ref
            taken.add(ref)
    bom.components = components  # re-sorted: the purls are part of the order
    return bom


def control_paragraphs(text: str) -> Iterator[dict[str, str]]:
    """The paragraphs of a Debian control file (dpkg's status file), as ``{field: value}``."""
    for paragraph in text.split("\n\n"):
        fields: dict[str, str] = {}
        key = ""
        for line in paragraph.splitlines():
            if line[:1] in (" ", "\t"):
                if key:
                    fields[key] += "\n" + line.strip()
                continue
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        if fields:
            yield fields


def os_release(root: Path) -> dict[str, str]:
    """``/etc/os-release`` (or ``/usr/lib/os-release``) as a dict, quotes removed."""
    for path in (root / "etc" / "os-release", root / "usr" / "lib" / "os-release"):
        if path.is_file():
            pairs = (line.partition("=") for line in path.read_text(encoding="utf-8").splitlines() if "=" in line)
            return {key: value.strip().strip("\"'") for key, _, value in pairs}
    return {}


def debian_components(root: Path, release: dict[str, str]) -> list[Component]:
    """One component per installed Debian package (``Status: install ok installed``)."""
    status = root / "var" / "lib" / "dpkg" / "status"
    if not status.is_file():
        return []
    namespace = release.get("ID", "debian")
    distro = f"{namespace}-{release['VERSION_ID']}" if release.get("VERSION_ID") else namespace
    found = []
    for fields in control_paragraphs(status.read_text(encoding="utf-8")):
        if fields.get("Status", "").split()[-1:] != ["installed"]:
            continue
        name, version, arch = fields["Package"], fields["Version"], fields.get("Architecture", "all")
        purl = PackageURL(
            type="deb", namespace=namespace, name=name, version=version, qualifiers={"arch": arch, "distro": distro}
        )
        source = fields.get("Source", "").split(" ")[0]
        properties = [Property(name="deb:source", value=source)] if source and source != name else []
        found.append(
            Component(
                type=ComponentType.LIBRARY,
                name=name,
                version=version,
                purl=purl,
                bom_ref=purl.to_string(),
                description=fields.get("Description", "").split("\n", 1)[0] or None,
                properties=properties,
            )
        )
    return found


def interpreter_component(venv: Path, root: Path) -> Component | None:
    """The venv's base interpreter, unless a Debian package owns it (then it is listed as that package)."""
    base = (venv / "bin" / "python").resolve()
    info = root / "var" / "lib" / "dpkg" / "info"
    for listing in sorted(info.glob("*.list")) if info.is_dir() else ():
        if str(base) in listing.read_text(encoding="utf-8", errors="replace").splitlines():
            return None
    code = "import platform; print(platform.python_version())"
    version = subprocess.run([str(base), "-c", code], check=True, capture_output=True, text=True).stdout.strip()
    purl = PackageURL(type="generic", name="python", version=version)
    return Component(
        type=ComponentType.APPLICATION,
        name="python",
        version=version,
        purl=purl,
        bom_ref=purl.to_string(),
        description="CPython interpreter of the base image (not a Debian package)",
        properties=[Property(name="taskbox:path", value=str(base))],
    )


def image_component(args: argparse.Namespace) -> Component:
    """The image itself: the BOM's subject (``metadata.component``)."""
    properties = [
        Property(name=f"org.opencontainers.image.{key}", value=value)
        for key, value in (
            ("revision", args.revision),
            ("base.name", args.base_name),
            ("base.digest", args.base_digest),
        )
        if value
    ]
    references = [ExternalReference(type=ExternalReferenceType.VCS, url=XsUri(args.source))] if args.source else []
    return Component(
        type=ComponentType.CONTAINER,
        name=args.name,
        version=args.version,
        bom_ref=f"image:{args.name}",
        description=args.description or None,
        external_references=references,
        properties=properties,
    )


def source_date(environ: dict[str, str]) -> datetime.datetime:
    """``SOURCE_DATE_EPOCH`` as an aware datetime (0 when unset: never the clock)."""
    raw = environ.get("SOURCE_DATE_EPOCH", "").strip() or "0"
    if not raw.isdigit():
        raise SystemExit(f"make_sbom: SOURCE_DATE_EPOCH must be whole seconds since 1970, not {raw!r}")
    return datetime.datetime.fromtimestamp(int(raw), tz=datetime.UTC)


def build_bom(args: argparse.Namespace) -> Bom:
    """Merge the Python environment, the Debian packages, the OS and the interpreter under the image."""
    venv, root = Path(args.venv), Path(args.root)
    bom = python_bom(venv)
    release = os_release(root)
    image = image_component(args)
    bom.metadata.component = image
    bom.metadata.timestamp = source_date(dict(os.environ))
    bom.metadata.tools.components.add(
        Component(type=ComponentType.APPLICATION, name="make_sbom.py", group="taskbox", version=args.version)
    )
    top: list[Component] = [c for c in bom.components if canonical(c.name) == "taskbox"]
    debs = debian_components(root, release)
    if release.get("ID"):
        system = Component(
            type=ComponentType.OPERATING_SYSTEM,
            name=release["ID"],
            version=release.get("VERSION_ID"),
            description=release.get("PRETTY_NAME"),
            bom_ref=f"os:{release['ID']}@{release.get('VERSION_ID', '')}",
        )
        bom.components.add(system)
        bom.register_dependency(system, debs)
        top.append(system)
    for deb in debs:
        bom.components.add(deb)
        bom.register_dependency(deb)
    interpreter = interpreter_component(venv, root)
    if interpreter is not None:
        bom.components.add(interpreter)
        bom.register_dependency(interpreter)
        top.append(interpreter)
    bom.register_dependency(image, top)
    return bom


def render(bom: Bom) -> str:
    """The BOM as CycloneDX 1.6 JSON, validated, with a serial number derived from its content."""
    bom.serial_number = _SERIAL_PLACEHOLDER
    draft = JsonV1Dot6(bom).output_as_string()
    bom.serial_number = uuid.uuid5(uuid.NAMESPACE_URL, "sha256:" + hashlib.sha256(draft.encode()).hexdigest())
    text = JsonV1Dot6(bom).output_as_string()
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    if error is not None:
        raise SystemExit(f"make_sbom: the SBOM does not validate against CycloneDX 1.6: {error}")
    return text


def main(argv: list[str] | None = None) -> int:
    """Write the SBOM of the image being built."""
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--venv", required=True, help="the runtime venv (/opt/taskbox)")
    p.add_argument("--output", required=True, help="where to write the SBOM")
    p.add_argument("--name", required=True, help="the image's name (taskbox-sqlite)")
    p.add_argument("--version", required=True, help="the image's version")
    p.add_argument("--description", default="")
    p.add_argument("--revision", default="")
    p.add_argument("--source", default="", help="the source repository URL")
    p.add_argument("--base-name", default="")
    p.add_argument("--base-digest", default="")
    p.add_argument("--root", default="/", help="the root filesystem whose Debian packages are listed")
    args = p.parse_args(argv)
    text = render(build_bom(args))
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(text + "\n", encoding="utf-8")
    summary = json.loads(text)
    print(f"make_sbom: {len(summary.get('components', []))} components -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
