"""Ask a registry whether it serves a manifest, through the Registry HTTP API v2 (``taskbox images --check``).

Why not the Docker engine: a check must see what a cluster pulling the image sees, from any machine,
without pulling gigabytes; the API answers ``HEAD /v2/<name>/manifests/<digest>`` with the digest and no
body. What a registry needs for that, as the distribution registry, ghcr.io and Docker Hub do it:

* the name split as Docker splits it: a first component with a ``.`` or ``:`` (or ``localhost``) is the
  registry host, anything else is on Docker Hub (``registry-1.docker.io``, ``library/`` for one-word names);
* plain HTTP for loopback hosts (127.0.0.0/8, ``::1``, ``localhost``: the engine treats them as insecure
  registries too), HTTPS for every other host;
* anonymous bearer tokens: a ``401`` with ``WWW-Authenticate: Bearer realm=...,service=...,scope=...`` is
  answered by ``GET <realm>?service=...&scope=...`` without credentials, and the request is repeated with
  the token (``token`` or ``access_token`` in the JSON answer). Tokens are reused per realm, service and
  scope.

Invariants:
    * Only reads (``HEAD``/``GET``); never credentials: a check answers for anonymous pulls.
    * A ``404`` means "not served" (``False``); anything else that is not a ``200`` is a
      :class:`~taskbox.images.errors.RegistryError` naming the registry and what it said.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from typing import Any

from taskbox.images.errors import RegistryError

__all__ = ["MANIFEST_TYPES", "ImageName", "RegistryClient", "parse_name"]

#: What a check accepts: Docker's and OCI's manifests and indexes (a multi-platform push is an index).
MANIFEST_TYPES = (
    "application/vnd.docker.distribution.manifest.v2+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.oci.image.index.v1+json",
)
DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"
TIMEOUT_S = 30.0
_CHALLENGE_PARAM = re.compile(r'(\w+)="([^"]*)"')


@dataclass(frozen=True)
class ImageName:
    """A repository as the registry API names it.

    Attributes:
        host: The registry's API host (``ghcr.io``, ``127.0.0.1:5000``, ``registry-1.docker.io``).
        name: The repository path on that host (``taskbox/executor-base``, ``library/python``).

    """

    host: str
    name: str

    @property
    def loopback(self) -> bool:
        """Whether the host is on the loopback interface (plain HTTP, as the engine does)."""
        hostname = self.host
        if hostname.startswith("["):
            hostname = hostname[1:].split("]", 1)[0]
        elif hostname.count(":") == 1:
            hostname = hostname.rsplit(":", 1)[0]
        if hostname == "localhost":
            return True
        try:
            return ipaddress.ip_address(hostname).is_loopback
        except ValueError:
            return False

    @property
    def base_url(self) -> str:
        """``http(s)://HOST/v2/NAME``."""
        return f"{'http' if self.loopback else 'https'}://{self.host}/v2/{self.name}"


def parse_name(repository: str) -> ImageName:
    """Split ``[host/]path`` (no tag, no digest) the way Docker does.

    Raises:
        RegistryError: The repository is empty.

    """
    if not repository or repository.startswith("/"):
        raise RegistryError(repository or "(none)", "no repository name")
    first, slash, rest = repository.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        host, name = first, rest
    else:
        host, name = DOCKER_HUB, repository
    if host in (DOCKER_HUB, "index.docker.io"):
        return ImageName(DOCKER_HUB_API, name if "/" in name else f"library/{name}")
    return ImageName(host, name)


def _challenge(header: str) -> dict[str, str] | None:
    """The parameters of a ``Bearer`` challenge, or ``None`` for any other scheme."""
    scheme, _, params = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return dict(_CHALLENGE_PARAM.findall(params))


@dataclass
class RegistryClient:
    """A small read-only client of the Registry HTTP API v2 (anonymous, bearer tokens when asked).

    Attributes:
        timeout_s: Seconds for each request.

    Use as a context manager, or call :meth:`close`.

    """

    timeout_s: float = TIMEOUT_S
    _clients: dict[bool, Any] = field(default_factory=dict, repr=False)
    _tokens: dict[tuple[str, str, str], str] = field(default_factory=dict, repr=False)

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        for client in self._clients.values():
            client.close()
        self._clients.clear()

    def _client(self, image: ImageName) -> Any:
        import httpx  # lazy: only checks talk to registries

        # Loopback registries never go through a proxy from the environment.
        trust_env = not image.loopback
        if trust_env not in self._clients:
            self._clients[trust_env] = httpx.Client(timeout=self.timeout_s, trust_env=trust_env)
        return self._clients[trust_env]

    def _token(self, image: ImageName, challenge: dict[str, str]) -> str:
        realm = challenge.get("realm")
        if not realm:
            raise RegistryError(image.host, "asked for a bearer token without naming a realm")
        service = challenge.get("service", "")
        scope = challenge.get("scope") or f"repository:{image.name}:pull"
        key = (realm, service, scope)
        if key not in self._tokens:
            params = {"scope": scope, **({"service": service} if service else {})}
            response = self._send(image, "GET", realm, params=params)
            if response.status_code != 200:
                raise RegistryError(
                    image.host, f"the token service {realm} refused an anonymous token ({response.status_code})"
                )
            try:
                answer = response.json()
                token = answer.get("token") or answer.get("access_token")
            except (ValueError, AttributeError):
                token = None
            if not isinstance(token, str) or not token:
                raise RegistryError(image.host, f"the token service {realm} answered without a token")
            self._tokens[key] = token
        return self._tokens[key]

    def _send(self, image: ImageName, method: str, url: str, **kwargs: Any) -> Any:
        import httpx

        try:
            return self._client(image).request(method, url, **kwargs)
        except httpx.HTTPError as exc:
            raise RegistryError(image.host, f"{method} {url} failed: {type(exc).__name__}: {exc}") from exc

    def _request(self, image: ImageName, method: str, path: str, headers: dict[str, str]) -> Any:
        """One API request, with the anonymous token flow when the registry asks for it."""
        url = f"{image.base_url}/{path}"
        response = self._send(image, method, url, headers=headers)
        if response.status_code != 401:
            return response
        challenge = _challenge(response.headers.get("www-authenticate", ""))
        if challenge is None:
            raise RegistryError(
                image.host, f"{image.name} needs credentials (no anonymous bearer token offered): not public"
            )
        token = self._token(image, challenge)
        response = self._send(image, method, url, headers={**headers, "Authorization": f"Bearer {token}"})
        if response.status_code in (401, 403):
            raise RegistryError(
                image.host, f"{image.name} refused an anonymous pull ({response.status_code}): not public"
            )
        return response

    def manifest_digest(self, repository: str, reference: str) -> str | None:
        """Ask for ``repository``'s manifest ``reference`` (a tag or a digest) without its body.

        Returns:
            The digest the registry serves it under (``Docker-Content-Digest``; ``reference`` itself for a
            digest when the header is absent), or ``None`` when the registry has no such manifest.

        Raises:
            RegistryError: The registry cannot be reached, refuses anonymous pulls, or answers otherwise.

        """
        image = parse_name(repository)
        response = self._request(image, "HEAD", f"manifests/{reference}", {"Accept": ", ".join(MANIFEST_TYPES)})
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise RegistryError(image.host, f"HEAD {image.name} manifest {reference} answered {response.status_code}")
        served = response.headers.get("docker-content-digest")
        if served:
            return str(served)
        return reference if reference.startswith("sha256:") else None

    def serves(self, repository: str, digest: str) -> bool:
        """Whether the registry serves ``repository@digest``.

        Raises:
            RegistryError: As :meth:`manifest_digest`.

        """
        return self.manifest_digest(repository, digest) == digest
