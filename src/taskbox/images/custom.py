"""What a custom executor image says it is, and what its build leaves behind.

Why: ``taskbox image build --executor`` builds a third-party executor on a taskbox image. The image inherits
its parent's labels (``title`` "taskbox executor image: base", ``dev.taskbox.variant=base``), so without
labels of its own it claims to be the base image; and the legacy builder keeps the builder stage (the
parent plus pip and the overlay, ~280 MB) as an untagged image after every build.

Invariants:
    * A custom image is labelled from what is inside it, read after the build: the executors it adds
      (``taskbox executors --json``) and the distributions that provide them (``importlib.metadata``
      entry points), never from the build context's path. ``dev.taskbox.variant`` is ``custom``.
    * The parent is named by reference and by digest (its repository digest when it was pulled or pushed,
      else its image id), in OCI's ``base.name``/``base.digest`` labels and taskbox's own.
    * Cleanup removes only images this build made (step ids from its own output) that nothing tagged and
      that are not ancestors of the result; images another build or a tag still uses are left alone.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

__all__ = ["STEP_ID", "distributions", "label_build", "labels_for", "parent_digest", "remove_stages"]

#: A legacy-builder step's resulting image (`` ---> 0123456789ab``).
STEP_ID = re.compile(r"^ ---> ([0-9a-f]{12})$")

_DISTRIBUTIONS = """
import importlib.metadata as md, json
found = {}
for ep in md.entry_points(group="taskbox.executors"):
    dist = ep.dist
    found[ep.name] = [dist.name, dist.version] if dist is not None else None
print(json.dumps(found))
"""


def distributions(client: Any, image: str) -> dict[str, tuple[str, str]]:
    """The distribution (name, version) of each ``taskbox.executors`` entry point installed in ``image``."""
    from taskbox.images import build as sdk
    from taskbox.images.errors import ImageBuildError

    result = sdk.run(client, image, ["-c", _DISTRIBUTIONS], entrypoint=["python3"])
    if result.exit_code != 0:
        raise ImageBuildError(image, "cannot list its executor distributions", result.stderr[-2000:])
    return {name: (dist[0], dist[1]) for name, dist in json.loads(result.stdout).items() if dist}


def parent_digest(client: Any, parent: str) -> str:
    """The parent's repository digest (``sha256:...``) when it has one, else its image id."""
    attrs = client.images.get(parent).attrs
    for repo_digest in attrs.get("RepoDigests") or ():
        return str(repo_digest.rsplit("@", 1)[1])
    return str(attrs["Id"])


def labels_for(
    executors: Sequence[Mapping[str, Any]], packages: Mapping[str, tuple[str, str]], parent: str, digest: str
) -> dict[str, str]:
    """The labels of a custom executor image adding ``executors`` (``taskbox executors --json`` rows)."""
    names = [str(e["name"]) for e in executors]
    dists = sorted({f"{packages[n][0]}=={packages[n][1]}" for n in names if n in packages})
    summaries = [f"{e['name']}: {e['summary']}" if e.get("summary") else str(e["name"]) for e in executors]
    versions = sorted({packages[n][1] for n in names if n in packages})
    return {
        "org.opencontainers.image.title": f"taskbox executor image: {', '.join(names)}",
        "org.opencontainers.image.description": (
            f"{'; '.join(summaries)} (from {', '.join(dists) or 'an unnamed distribution'}) on {parent}"
        ),
        "org.opencontainers.image.version": versions[0] if len(versions) == 1 else "",
        "org.opencontainers.image.base.name": parent,
        "org.opencontainers.image.base.digest": digest,
        "dev.taskbox.variant": "custom",
        "dev.taskbox.executors": ",".join(names),
        "dev.taskbox.packages": ",".join(dists),
        "dev.taskbox.parent": parent,
        "dev.taskbox.parent.digest": digest,
    }


def label_build(client: Any, image_id: str, tag: str, labels: Mapping[str, str]) -> str:
    """Tag ``image_id`` as ``tag`` with ``labels`` added (a ``FROM`` build: configuration only, no layer)."""
    from taskbox.images.errors import ImageBuildError

    dockerfile = io.BytesIO(f"FROM {image_id}\n".encode())
    for chunk in client.api.build(
        fileobj=dockerfile, tag=tag, labels=dict(labels), pull=False, rm=True, forcerm=True, decode=True
    ):
        if "error" in chunk:
            raise ImageBuildError(tag, "labelling the image failed", str(chunk["error"]))
    return str(client.images.get(tag).id)


def remove_stages(client: Any, build_log: Iterable[str], result: str) -> list[str]:
    """Remove the images a build made that ``result`` does not use (its other stages); return their ids.

    Args:
        client: A Docker SDK client.
        build_log: The build's output lines (legacy builder: `` ---> <id>`` after each step).
        result: The built image's id or reference.

    """
    from docker.errors import APIError, NotFound

    ancestry = {str(h.get("Id", "")).removeprefix("sha256:")[:12] for h in client.api.history(result)}
    steps = [m.group(1) for line in build_log if (m := STEP_ID.match(line))]
    removed = []
    for step in reversed(list(dict.fromkeys(steps))):  # a stage's last step first: its parents go with it
        if step in ancestry:
            continue
        try:
            if client.images.get(step).tags:
                continue
            client.api.remove_image(step, noprune=False)
        except (NotFound, APIError):  # gone with a later step's removal, or used by another image: kept
            continue
        removed.append(step)
    return removed
