"""``taskbox run --image VARIANT_OR_REF``: the same run, inside a taskbox executor image (Docker SDK).

Why: before wiring an orchestrator, a user wants to see the published image do the job on their own
files. This runs ``taskbox run`` with the same arguments in the image, with the local folders it names
mounted at the same absolute paths, so every path in the arguments (and relative paths in a config, from
the working directory) means the same inside and out.

Invariants:
    * Mounted, each at its own absolute path: the working directory (the container's working directory
      too) and the folder of every local path given by an option (``--template``, ``--config``,
      ``--interface``, ``--inputs``, ``--outputs``, ``--raw-output-prefix``, checkpoints, the progress
      file, ``--output-file`` targets), and of every existing absolute path named in the config, a
      JSON/YAML template or inputs, or an ``--input`` value (a SQLite file, an input file), read-only.
      URIs and inline JSON are passed on untouched. Credential files named by a passed-on variable
      (:data:`_CREDENTIAL_FILES`: a service-account key, shared AWS config, a workload-identity token, a CA
      bundle) are mounted read-only, each file alone at its own path.
    * Without ``--outputs`` the outputs go to a new local temporary directory (a directory inside the
      container would vanish with it), which is then named in the arguments.
    * The container runs as the calling user (files it writes are the caller's), with the host's network
      (loopback endpoints work unchanged), and the taskbox, Flyte, secret and storage (AWS, GCS, Azure)
      variables of this environment; ``TASKBOX_IMAGE`` is not passed on. The exit code is the container's.
    * ``docker`` is imported only here (``pip install 'taskbox[images]'``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

__all__ = ["image_reference", "mounts", "run_in_image"]

_PATH_OPTIONS = (
    "template",
    "config",
    "interface",
    "inputs",
    "outputs",
    "raw_output_prefix",
    "checkpoint_path",
    "prev_checkpoint",
    "progress_file",
)
_ENV_PREFIXES = ("TASKBOX_", "FLYTE_", "_F_", "_FSEC_", "AWS_", "AZURE_", "GOOGLE_", "ARGO_")
_ENV_NAMES = ("STORAGE_EMULATOR_HOST", "NO_PROXY", "no_proxy")
#: Passed-on variables that name a file the storage clients read (mounted read-only when it exists).
_CREDENTIAL_FILES = (
    "GOOGLE_APPLICATION_CREDENTIALS",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CA_BUNDLE",
    "AZURE_FEDERATED_TOKEN_FILE",
    "AZURE_CLIENT_CERTIFICATE_PATH",
)


def image_reference(value: str) -> str:
    """Map a catalog variant (``sqlite``) to its reference for this taskbox version; others stay as given."""
    if "/" in value or ":" in value or "@" in value:
        return value
    from taskbox.images.catalog import default_image, load_catalog

    return default_image(value) if value in load_catalog().entries else value


def _local(value: str | None) -> str | None:
    if not value or "://" in value or value.lstrip().startswith(("{", "[")) or "\n" in value:
        return None
    return os.path.abspath(value)


def mounts(ns: Any, cwd: str, environ: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
    """Return the Docker SDK ``volumes`` for a run: each needed local folder at its own path (module doc).

    Args:
        ns: The parsed ``taskbox run`` options.
        cwd: The working directory (mounted read-write).
        environ: The environment passed on; its credential files are mounted read-only.

    """
    folders = {cwd: "rw"}
    paths = [(key, _local(getattr(ns, key))) for key in _PATH_OPTIONS]
    paths += [("output_file", _local(pair.partition("=")[2])) for pair in ns.output_file]
    for key, path in paths:
        if path is None:
            continue
        folder = path if key in ("outputs", "raw_output_prefix", "checkpoint_path") else os.path.dirname(path)
        if key in ("outputs", "raw_output_prefix", "checkpoint_path", "output_file", "progress_file"):
            os.makedirs(folder, exist_ok=True)
            folders[folder] = "rw"
        else:
            folders.setdefault(folder, "ro")
    for path in _referenced_paths(ns):
        folders.setdefault(path if os.path.isdir(path) else os.path.dirname(path), "ro")
    for name in _CREDENTIAL_FILES:  # each file alone: its folder may hold other secrets
        path = (environ or {}).get(name, "")
        if os.path.isabs(path) and os.path.isfile(path):  # relative or missing: the client inside reports it
            folders.setdefault(path, "ro")
    kept: dict[str, dict[str, str]] = {}
    for folder in sorted(folders, key=len):
        inside = next((k for k in kept if folder == k or folder.startswith(k.rstrip("/") + "/")), None)
        if inside is not None and (kept[inside]["mode"] == "rw" or folders[folder] == "ro"):
            continue
        kept[folder] = {"bind": folder, "mode": folders[folder]}
    return kept


def _walk_strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _walk_strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _walk_strings(item)]
    return []


def _referenced_paths(ns: Any) -> list[str]:
    """Existing absolute local paths named inside the config, a JSON/YAML template or inputs, or ``--input``."""
    from taskbox.entrypoint.plainio import load_document
    from taskbox.errors import TaskboxError

    strings = [pair.partition("=")[2] for pair in ns.input]
    for key in ("config", "template", "inputs"):
        ref = getattr(ns, key)
        if not ref or (key != "config" and ref.endswith(".pb")):
            continue
        try:
            strings += _walk_strings(load_document(ref, what=key))
        except TaskboxError:
            continue  # the run in the container reports it
    return [s for s in strings if os.path.isabs(s) and os.path.exists(s)]


def _arguments(argv: list[str], outputs: str | None) -> list[str]:
    args, skip = [], False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg == "--image":
            skip = True
            continue
        if arg.startswith("--image="):
            continue
        args.append(arg)
    if outputs is not None:
        args += ["--outputs", outputs]
    return ["run", *args]


def _environment(environ: Mapping[str, str]) -> dict[str, str]:
    return {
        k: v for k, v in environ.items() if (k.startswith(_ENV_PREFIXES) or k in _ENV_NAMES) and k != "TASKBOX_IMAGE"
    }


def run_in_image(ns: Any, argv: list[str], environ: Mapping[str, str]) -> int:
    """Run ``taskbox run`` with ``argv`` (less ``--image``) in the image ``ns.image``.

    Returns:
        The container's exit code; 3 when no Docker engine answers, 1 when the image cannot be had.

    """
    from taskbox.entrypoint.exitcodes import EXIT_SYSTEM, EXIT_USER
    from taskbox.entrypoint.pipeline import default_outputs_dir
    from taskbox.errors import TaskboxError
    from taskbox.images.build import docker_client

    reference = image_reference(ns.image)
    added = None
    if not ns.outputs:
        ns.outputs = added = default_outputs_dir()
        print(f"taskbox run: outputs under {added}", file=sys.stderr)
    cwd = os.getcwd()
    environment = _environment(environ)
    try:
        client = docker_client()
    except TaskboxError as exc:
        print(f"taskbox run --image: no Docker engine: {exc}", file=sys.stderr)
        return EXIT_SYSTEM
    import docker.errors  # lazy: installed with the SDK that docker_client just loaded

    try:
        container = client.containers.run(
            reference,
            _arguments(argv, added),
            volumes=mounts(ns, cwd, environment),
            environment=environment,
            working_dir=cwd,
            user=f"{os.getuid()}:{os.getgid()}",
            network_mode="host",
            detach=True,
        )
    except (docker.errors.ImageNotFound, docker.errors.NotFound) as exc:
        print(f"taskbox run --image: cannot get the image {reference}: {exc}", file=sys.stderr)
        return EXIT_USER
    except docker.errors.APIError as exc:
        print(f"taskbox run --image: the engine refused to start {reference}: {exc}", file=sys.stderr)
        return EXIT_SYSTEM
    try:
        for chunk in container.logs(stream=True, follow=True, stdout=False, stderr=True):
            sys.stderr.write(chunk.decode("utf-8", errors="replace"))
        code = int(container.wait().get("StatusCode", EXIT_SYSTEM))
        sys.stdout.write(container.logs(stdout=True, stderr=False).decode("utf-8", errors="replace"))
        sys.stdout.flush()
    finally:
        container.remove(force=True)
    return code
