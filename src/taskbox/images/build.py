"""Build executor images and check them, through the Docker SDK (the ``images`` extra).

Why the SDK and not the ``docker`` command: the tests and ``taskbox image build`` need structured results
(image ids, sizes, labels, a container's exit code and logs), and the SDK talks to the engine's API
directly, whichever ``docker`` client is on the PATH.

Invariants (docs/test-environment.md):
    * Builds run with ``network_mode="host"`` and containers with ``network_mode="host"``: the test
      machines' engines have no bridge, and no bridge network is ever created.
    * Nothing is pulled: the parent of every build (``BASE_IMAGE`` / ``PARENT``) must already exist
      locally, or be pullable by the engine on its own terms (``pull=False`` here).
    * One build at a time: callers build in series (the machines are shared).
"""

from __future__ import annotations

import io
import json
import sys
import tarfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from taskbox.images.context import BuildContext
from taskbox.images.errors import DockerUnavailable, ImageBuildError

__all__ = [
    "RunResult",
    "build",
    "docker_client",
    "image_exists",
    "image_python",
    "installed_executors",
    "read_file",
    "run",
]

#: Seconds the SDK waits for one API call (a build streams for minutes).
API_TIMEOUT_S = 1800
LOG_TAIL = 60


def docker_client() -> Any:
    """Return a Docker SDK client for the engine the environment names (``DOCKER_HOST`` or the socket).

    Raises:
        DockerUnavailable: The SDK is not installed or no engine answers.

    """
    try:
        import docker  # lazy: the ``images`` extra
    except ImportError as exc:
        raise DockerUnavailable(f"the docker Python package is missing: pip install 'taskbox[images]' ({exc})") from exc
    try:
        client = docker.from_env(timeout=API_TIMEOUT_S)
        client.ping()
    except Exception as exc:
        raise DockerUnavailable(str(exc)) from exc
    return client


def image_exists(client: Any, reference: str) -> bool:
    """Whether the engine has ``reference`` locally."""
    from docker.errors import ImageNotFound

    try:
        client.images.get(reference)
    except ImageNotFound:
        return False
    return True


def build(
    client: Any,
    context: BuildContext,
    tag: str,
    *,
    buildargs: Mapping[str, str] | None = None,
    labels: Mapping[str, str] | None = None,
    progress: Callable[[str], None] | None = None,
    nocache: bool = False,
    log: list[str] | None = None,
) -> str:
    """Build ``context`` into ``tag`` with the legacy builder, host networking and no pull.

    Args:
        client: From :func:`docker_client`.
        context: A staged context (``Dockerfile`` at its root).
        tag: The image reference to tag.
        buildargs: ``--build-arg`` values.
        labels: Extra image labels.
        progress: Called with each line of build output (default: nothing is printed).
        nocache: Build every step afresh (``--no-cache``), as a rebuild from scratch would.
        log: Receives every line of build output (to find the images the build made).

    Returns:
        The image id.

    Raises:
        ImageBuildError: The build failed; carries the end of the build log.

    """
    from docker.errors import APIError

    lines: list[str] = [] if log is None else log
    try:
        stream = client.api.build(
            path=str(context.path),
            dockerfile="Dockerfile",
            tag=tag,
            buildargs=dict(buildargs or {}),
            labels=dict(labels or {}),
            network_mode="host",
            pull=False,
            rm=True,
            forcerm=True,
            nocache=nocache,
            decode=True,
        )
        for chunk in stream:
            if "error" in chunk:
                raise ImageBuildError(tag, chunk["error"].strip(), "\n".join(lines[-LOG_TAIL:]))
            text = chunk.get("stream", "")
            for line in text.splitlines():
                lines.append(line)
                if progress is not None:
                    progress(line)
    except APIError as exc:
        raise ImageBuildError(tag, str(exc), "\n".join(lines[-LOG_TAIL:])) from exc
    return client.images.get(tag).id


@dataclass(frozen=True)
class RunResult:
    """What a finished container left.

    Attributes:
        exit_code: The container's exit status.
        stdout: Its standard output.
        stderr: Its standard error.

    """

    exit_code: int
    stdout: str
    stderr: str


def run(
    client: Any,
    image: str,
    args: Sequence[str],
    *,
    entrypoint: Sequence[str] | None = None,
    environment: Mapping[str, str] | None = None,
    volumes: Mapping[str, Mapping[str, str]] | None = None,
    user: str = "65532:65532",
    read_only: bool = True,
    timeout_s: float = 300,
) -> RunResult:
    """Run one container to completion the way a pod runs a task, and remove it.

    The container runs as ``user`` on a read-only root filesystem with a tmpfs ``/tmp`` and the host's
    network (the only network these engines have).

    Raises:
        ImageBuildError: The container did not finish within ``timeout_s``.

    """
    container = client.containers.create(
        image,
        command=list(args),
        entrypoint=list(entrypoint) if entrypoint is not None else None,
        environment=dict(environment or {}),
        volumes={k: dict(v) for k, v in (volumes or {}).items()},
        user=user,
        read_only=read_only,
        tmpfs={"/tmp": "rw,nosuid,nodev,size=256m,mode=1777"},
        network_mode="host",
    )
    try:
        container.start()
        try:
            status = container.wait(timeout=timeout_s)
        except Exception as exc:
            container.kill()
            raise ImageBuildError(image, f"container did not finish within {timeout_s:.0f}s") from exc
        stdout = container.logs(stdout=True, stderr=False).decode(errors="replace")
        stderr = container.logs(stdout=False, stderr=True).decode(errors="replace")
        return RunResult(int(status["StatusCode"]), stdout, stderr)
    finally:
        container.remove(force=True)


def read_file(client: Any, image: str, path: str, *, max_bytes: int = 64 * 1024 * 1024) -> bytes | None:
    """Return the bytes of the regular file ``path`` in ``image``, or ``None`` when it has none there.

    Nothing runs: a container is created (host network), the file is copied out of it, the container
    removed.

    Raises:
        ImageBuildError: ``image`` does not exist locally, or the file is larger than ``max_bytes``.

    """
    from docker.errors import ImageNotFound, NotFound

    try:
        container = client.containers.create(image, command=["true"], network_mode="host")
    except ImageNotFound as exc:
        raise ImageBuildError(image, "does not exist locally") from exc
    try:
        try:
            chunks, stat = container.get_archive(path)
        except NotFound:
            return None
        if int(stat.get("size", 0)) > max_bytes:
            raise ImageBuildError(image, f"{path} is larger than {max_bytes} bytes")
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as archive:
            member = archive.next()
            handle = archive.extractfile(member) if member is not None and member.isfile() else None
            return handle.read() if handle is not None else None
    finally:
        container.remove(force=True)


def installed_executors(client: Any, image: str) -> list[dict[str, Any]]:
    """``taskbox executors --json`` inside ``image``: every executor it has, with its status.

    Raises:
        ImageBuildError: The command fails or prints something else than JSON.

    """
    result = run(client, image, ["executors", "--json"], entrypoint=["taskbox"])
    if result.exit_code != 0:
        raise ImageBuildError(image, f"`taskbox executors --json` exited {result.exit_code}", result.stderr[-4000:])
    try:
        return list(json.loads(result.stdout))
    except ValueError as exc:
        raise ImageBuildError(image, "`taskbox executors --json` printed no JSON", result.stdout[-2000:]) from exc


def image_python(client: Any, image: str) -> str:
    """Return the ``major.minor`` of the ``python3`` in ``image`` (the ``-py<python>`` tag suffix)."""
    code = "import sys; print(f'{sys.version_info[0]}.{sys.version_info[1]}')"
    result = run(client, image, ["-c", code], entrypoint=["python3"], user="0:0")
    if result.exit_code != 0:
        raise ImageBuildError(image, "has no working python3", result.stderr[-2000:])
    return result.stdout.strip()


def print_progress(line: str) -> None:
    """Echo one line of build output to stderr (a ``progress`` callback)."""
    print(line, file=sys.stderr, flush=True)
