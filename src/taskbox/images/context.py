"""Build contexts for executor images, and the content hash that names a build.

Why: a Docker build context should hold exactly what the Dockerfile copies, never the source tree
(``.venv``, ``.git``, test data). Each context is staged into a fresh folder:

* ``Dockerfile``: ``Dockerfiles/<variant>.Dockerfile`` from the source tree, or the packaged
  ``executor.Dockerfile`` for custom executor images;
* ``dist/``: the wheels to install (taskbox's own, built from the source tree; or the executor's);
* ``requirements.txt``: taskbox's dependencies with the Dockerfile's default ``EXTRAS``, read from
  ``pyproject.toml``; the builder installs them in a layer of their own, which the engine's build cache
  keeps while the dependencies are unchanged (a source change then rebuilds in seconds);
* ``strip_venv.py`` and ``bin/`` (flytekit's command names) from the source tree's ``images/``;
* ``sbom/``: the SBOM generator (``images/sbom/make_sbom.py``) and its pinned requirements, which the
  builder stage installs into a throwaway venv (never the exported ``*.cdx.json`` files beside them);
* ``ca-certificates.crt``: the host's CA bundle, for pip in the builder stage only (the test machines
  reach PyPI through an HTTPS proxy whose authority is only in that bundle). The runtime stage never
  copies it.

Invariants:
    * :attr:`BuildContext.content_hash` depends on what ends up in the image (Dockerfile, helper files,
      the wheels' members, not their zip timestamps) and on nothing else, so an image tagged with it can
      be reused as long as the hash is unchanged. The CA bundle is not part of it.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path, PurePosixPath

from taskbox.images.errors import ImageBuildError

__all__ = ["BuildContext", "find_source_root", "stage_executor", "stage_variant"]

#: The host's CA bundle (Debian's path), handed to pip in the builder stage.
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
CA_NAME = "ca-certificates.crt"
DOCKERFILE = "Dockerfile"
EXECUTOR_DOCKERFILE = "executor.Dockerfile"
#: Source files a taskbox wheel is built from (copied to a scratch folder first: the tree stays clean).
WHEEL_SOURCES = ("pyproject.toml", "README.md", "src")
SOURCE_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
#: What of ``images/sbom/`` goes into a variant's context (the generator, not the exported SBOMs).
SBOM_FILES = ("make_sbom.py", "requirements.txt")
_EXTRAS_ARG = re.compile(r"^ARG EXTRAS=(\S*)\s*$", re.MULTILINE)
_SELF_EXTRA = re.compile(r"^taskbox\[(?P<extras>[^\]]*)\]$")


@dataclass(frozen=True)
class BuildContext:
    """A staged build context.

    Attributes:
        path: The context folder (holds ``Dockerfile``).
        content_hash: Hex SHA-256 of what the image is built from (see the module docstring).

    """

    path: Path
    content_hash: str


def find_source_root(start: Path | None = None) -> Path:
    """Find the taskbox source tree: the nearest folder with ``pyproject.toml`` and ``Dockerfiles/``.

    Args:
        start: Where to start looking (default: the installed package's folder, then the working folder).

    Raises:
        ImageBuildError: No source tree above ``start`` (variant images build from a checkout).

    """
    starts = [start] if start is not None else [Path(__file__).resolve().parent, Path.cwd()]
    for origin in starts:
        for folder in (origin, *origin.parents):
            if (folder / "pyproject.toml").is_file() and (folder / "Dockerfiles").is_dir():
                return folder
    raise ImageBuildError("variant", "variant images build from a taskbox source checkout; pass --source DIR")


def _wheel_digest(wheel: Path, digest: hashlib._Hash) -> None:
    with zipfile.ZipFile(wheel) as zf:
        for name in sorted(zf.namelist()):
            digest.update(name.encode())
            digest.update(hashlib.sha256(zf.read(name)).digest())


def _hash(context: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(context.rglob("*")):
        if not path.is_file() or path.name == CA_NAME:
            continue
        rel = path.relative_to(context).as_posix()
        digest.update(rel.encode())
        digest.update(str(path.stat().st_mode & 0o777).encode())
        if path.suffix == ".whl":
            _wheel_digest(path, digest)
        else:
            digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


def build_wheel(project: Path, dest: Path) -> Path:
    """Build one wheel of ``project`` (no dependencies) into ``dest`` with pip.

    Raises:
        ImageBuildError: pip failed.

    """
    dest.mkdir(parents=True, exist_ok=True)
    before = set(dest.glob("*.whl"))
    cmd = [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(dest), str(project)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    built = set(dest.glob("*.whl")) - before
    if proc.returncode != 0 or len(built) != 1:
        raise ImageBuildError(str(project), "building the wheel failed", (proc.stderr or proc.stdout)[-4000:])
    return built.pop()


def requirements(pyproject: Path, extras: list[str]) -> list[str]:
    """Taskbox's dependencies plus those of ``extras``, from ``pyproject.toml`` (``taskbox[...]`` expanded)."""
    import tomllib

    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    optional = project.get("optional-dependencies", {})
    found: list[str] = list(project.get("dependencies", []))
    pending, seen = list(extras), set()
    while pending:
        extra = pending.pop(0)
        if extra in seen or extra not in optional:
            continue
        seen.add(extra)
        for req in optional[extra]:
            nested = _SELF_EXTRA.match(req)
            if nested:
                pending.extend(e.strip() for e in nested["extras"].split(","))
            elif req not in found:
                found.append(req)
    return found


def _fresh(dest: Path) -> Path:
    if dest.exists():
        shutil.rmtree(dest)
    dest.mkdir(parents=True)
    return dest


def _copy_ca(dest: Path) -> None:
    if not HOST_CA_BUNDLE.is_file():
        raise ImageBuildError(
            "context", f"the host's CA bundle {HOST_CA_BUNDLE} is missing (apt-get install ca-certificates)"
        )
    shutil.copyfile(HOST_CA_BUNDLE, dest / CA_NAME)


def stage_variant(variant: str, dest: Path, source: Path) -> BuildContext:
    """Stage the context of a variant image (``Dockerfiles/<variant>.Dockerfile``).

    Args:
        variant: ``base``, ``sqlite``, ``sql``, ``http`` or ``python``.
        dest: The context folder (emptied first).
        source: The taskbox source tree (see :func:`find_source_root`).

    Raises:
        ImageBuildError: No such Dockerfile, or the wheel does not build.

    """
    dockerfile = source / "Dockerfiles" / f"{variant}.Dockerfile"
    if not dockerfile.is_file():
        raise ImageBuildError(variant, f"no Dockerfile {dockerfile}")
    dest = _fresh(dest)
    shutil.copyfile(dockerfile, dest / DOCKERFILE)
    default_extras = _EXTRAS_ARG.search(dockerfile.read_text(encoding="utf-8"))
    extras = default_extras.group(1).split(",") if default_extras else []
    lines = requirements(source / "pyproject.toml", [e for e in extras if e])
    (dest / "requirements.txt").write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    images = source / "images"
    shutil.copyfile(images / "strip_venv.py", dest / "strip_venv.py")
    shutil.copytree(images / "bin", dest / "bin")
    (dest / "sbom").mkdir()
    for name in SBOM_FILES:
        shutil.copyfile(images / "sbom" / name, dest / "sbom" / name)
    with tempfile.TemporaryDirectory(prefix="taskbox-wheel-") as scratch:
        project = Path(scratch)
        for name in WHEEL_SOURCES:
            item = source / name
            if item.is_dir():
                shutil.copytree(item, project / name, ignore=SOURCE_IGNORE)
            else:
                shutil.copyfile(item, project / name)
        build_wheel(project, dest / "dist")
    context = BuildContext(dest, _hash(dest))
    _copy_ca(dest)
    return context


def stage_executor(executor: str, dest: Path) -> tuple[BuildContext, str]:
    """Stage the context of a custom executor image.

    Args:
        executor: A folder holding a Python project, a wheel file, or a requirement (``pkg==1.2``)
            that pip installs from the package index inside the build.
        dest: The context folder (emptied first).

    Returns:
        The context, and what the Dockerfile's ``EXECUTOR`` build argument must be (a wheel path
        inside the context, or the requirement).

    Raises:
        ImageBuildError: The project's wheel does not build.

    """
    dest = _fresh(dest)
    template = resources.files(__package__).joinpath(EXECUTOR_DOCKERFILE)
    (dest / DOCKERFILE).write_bytes(template.read_bytes())
    (dest / "dist").mkdir()
    local = Path(executor)
    if local.is_dir():  # built from a copy: the project folder gets no build/ or *.egg-info
        with tempfile.TemporaryDirectory(prefix="taskbox-executor-") as scratch:
            project = Path(scratch) / local.resolve().name
            shutil.copytree(local, project, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build", "dist"))
            wheel = build_wheel(project, dest / "dist")
        requirement = (PurePosixPath("dist") / wheel.name).as_posix()
    elif local.is_file() and local.suffix == ".whl":
        shutil.copyfile(local, dest / "dist" / local.name)
        requirement = (PurePosixPath("dist") / local.name).as_posix()
    else:
        requirement = executor
        (dest / "requirement.txt").write_text(requirement + "\n")  # hashed: the requirement names the image
    context = BuildContext(dest, _hash(dest))
    _copy_ca(dest)
    return context, requirement
