"""The SSRF guard: resolve the host, check every address, connect to the address that was checked.

Why: a task URL built from inputs can point anywhere the pod can reach: the cloud metadata service,
the cluster's services, localhost. Checking a host name and then letting the HTTP library resolve it
again loses to DNS rebinding, so this guard resolves once, checks all addresses, and hands httpx a URL
whose host is the checked address, while the ``Host`` header and TLS SNI/certificate check keep the
original name (httpcore's ``sni_hostname`` extension).

Invariants:
    * Only ``http`` and ``https`` URLs pass.
    * Loopback, private, link-local (169.254.169.254, fd00:ec2::254), CGNAT (incl. 100.100.100.200),
      multicast, unspecified and reserved addresses are refused, also as IPv4-mapped IPv6 and in
      decimal/hex/short IPv4 forms (``2852039166``, ``0xA9FEA9FE``).
    * Every resolved address must pass, not just the one used.
    * A host that is neither an IP literal nor a valid DNS name (RFC 1123 labels of at most 63
      characters, 253 in all, IDNA ``xn--`` labels that decode, no percent-escapes or spaces, not ending
      in a number) is refused before any lookup as :class:`~taskbox.net.errors.RequestNotSendable`
      (USER, not retried): it can never resolve.
    * Exceptions come only from an explicit allow-list: the task's ``allow`` and the container's
      ``TASKBOX_HTTP_ALLOW`` (comma-separated CIDRs and host names).
    * Each request (so each redirect hop and page) goes through :meth:`GuardedTransport.handle_request`.
"""

from __future__ import annotations

import functools
import ipaddress
import os
import re
import socket
from collections.abc import Callable, Iterable
from typing import Any

import httpx

from taskbox import settings
from taskbox.net.errors import SsrfBlocked

__all__ = ["AddressPolicy", "GuardedTransport", "Resolver", "check_host_syntax", "system_resolver"]

ALLOW_ENV = "TASKBOX_HTTP_ALLOW"
Resolver = Callable[[str, int], list[str]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NUMERIC_V4 = re.compile(r"^(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}$", re.IGNORECASE)
#: Blocked although ``ipaddress`` may call them global in some Python versions.
_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$", re.IGNORECASE)
_NUMERIC_LABEL = re.compile(r"^(0x[0-9a-f]*|[0-9]+)$", re.IGNORECASE)
_EXTRA_BLOCKED = [ipaddress.ip_network(n) for n in ("100.64.0.0/10", "fd00:ec2::/32", "64:ff9b::/96")]


def system_resolver(host: str, port: int) -> list[str]:
    """Resolve ``host`` with the system resolver; every address, IPv4 and IPv6."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        from taskbox.net.errors import HTTPUnavailable

        raise HTTPUnavailable(f"cannot resolve {host!r}: {exc}") from None
    seen: list[str] = []
    for info in infos:
        addr = str(info[4][0]).split("%", 1)[0]
        if addr not in seen:
            seen.append(addr)
    return seen


def literal_ip(host: str) -> IPAddress | None:
    """The address a host written as an IP literal means (any IPv4 form inet_aton accepts), else None."""
    host = host.strip("[]")
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_V4.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def check_host_syntax(host: str) -> None:
    """Raise :class:`~taskbox.net.errors.RequestNotSendable` unless ``host`` is an IP literal or a valid DNS name.

    Args:
        host: A URL's host as httpx parsed it (lower case, IDNA-encoded; IPv6 with or without brackets).

    """
    if literal_ip(host) is not None:
        return
    name = host[:-1] if host.endswith(".") else host
    labels = name.split(".")
    problem = ""
    if not name or len(name) > 253:
        problem = "a host name is 1 to 253 characters"
    elif not all(_LABEL.match(label) for label in labels):
        problem = "each label of a host name is 1-63 letters, digits, '-' or '_', not starting or ending with '-'"
    elif _NUMERIC_LABEL.match(labels[-1]):
        problem = "a host name ending in a number must be a valid IPv4 address"
    else:
        for label in labels:
            if label.lower().startswith("xn--"):
                try:
                    import idna

                    idna.decode(label)
                except (ImportError, UnicodeError, ValueError) as exc:
                    problem = f"label {label!r} is not valid IDNA ({exc})"
                    break
    if problem:
        from taskbox.net.errors import RequestNotSendable

        raise RequestNotSendable(f"the URL's host {host!r} can never be valid: {problem}")


def is_public(ip: IPAddress) -> bool:
    """Whether ``ip`` is a globally routable unicast address (IPv4-mapped addresses are unwrapped)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return False
    return not any(ip.version == n.version and ip in n for n in _EXTRA_BLOCKED)


class AddressPolicy:
    """Which hosts and addresses may be connected to.

    Args:
        allow: CIDRs and host names let through.
        environ: Read ``TASKBOX_HTTP_ALLOW`` from here (default ``os.environ``).
        resolver: Host name -> addresses (default :func:`system_resolver`; tests pass a stub).

    """

    def __init__(self, allow: Iterable[str] = (), *, environ: Any = None, resolver: Resolver | None = None) -> None:
        env = os.environ if environ is None else environ
        entries = [e.strip() for e in [*allow, *settings.items(ALLOW_ENV, environ=env)] if e.strip()]
        self.networks: list[Any] = []
        self.hosts: set[str] = set()
        for entry in entries:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry.lower().rstrip("."))
        self.resolver = resolver or system_resolver

    def allowed_address(self, ip: IPAddress) -> bool:
        """Whether connecting to ``ip`` is allowed (public, or in the allow-list)."""
        if any(ip.version == n.version and ip in n for n in self.networks):
            return True
        return is_public(ip)

    def check(self, scheme: str, host: str, port: int) -> str:
        """Return the address to connect to for ``host``, or raise :class:`SsrfBlocked`.

        Args:
            scheme: The URL's scheme.
            host: The URL's host (a name or an IP literal).
            port: The port.

        Returns:
            The checked address (text form).

        """
        if scheme not in ("http", "https"):
            raise SsrfBlocked(f"URL scheme {scheme!r} is not allowed; only http and https")
        if not host:
            raise SsrfBlocked("URL has no host")
        check_host_syntax(host)
        ip = literal_ip(host)
        if ip is not None:
            addresses = [ip]
        else:
            name = host.lower().rstrip(".")
            addresses = [ipaddress.ip_address(a) for a in self.resolver(name, port)]
            if not addresses:
                raise SsrfBlocked(f"host {host!r} resolves to no address")
            if name in self.hosts:
                return str(addresses[0])
        for address in addresses:
            if not self.allowed_address(address):
                raise SsrfBlocked(
                    f"host {host!r} resolves to {address}, a non-public address; allow it explicitly with the "
                    f"task's 'allow' list or {ALLOW_ENV} if it is meant to be reached"
                )
        return str(addresses[0])


@functools.lru_cache(maxsize=4)
def _tls_context(cafile: str | None, capath: str | None) -> Any:
    """A verifying TLS context, built once per CA location (loading the CA bundle costs ~40 ms)."""
    import ssl

    if cafile or capath:
        return ssl.create_default_context(cafile=cafile or None, capath=capath or None)
    return httpx.create_ssl_context(verify=True, trust_env=False)


def tls_context() -> Any:
    """The shared verifying context; extra CAs via ``SSL_CERT_FILE`` / ``SSL_CERT_DIR``."""
    return _tls_context(os.environ.get("SSL_CERT_FILE") or None, os.environ.get("SSL_CERT_DIR") or None)


class GuardedTransport(httpx.BaseTransport):
    """An httpx transport that checks each request's host and connects to the checked address.

    Args:
        policy: The address policy.
        verify: ``True`` (the shared verifying context from :func:`tls_context`) or an ``SSLContext``.
        **kwargs: Passed to :class:`httpx.HTTPTransport` (limits, ...).

    """

    def __init__(self, policy: AddressPolicy, *, verify: Any = True, **kwargs: Any) -> None:
        self.policy = policy
        context = tls_context() if verify is True else verify
        self._inner = httpx.HTTPTransport(verify=context, trust_env=False, **kwargs)

    def handle_request(self, request: httpx.Request) -> httpx.Response:  # noqa: D102 - see class
        url = request.url
        address = self.policy.check(url.scheme, url.host, url.port or (443 if url.scheme == "https" else 80))
        extensions = dict(request.extensions)
        if url.scheme == "https" and literal_ip(url.host) is None:
            extensions["sni_hostname"] = url.host
        request.url = url.copy_with(host=address)
        request.extensions = extensions
        try:
            return self._inner.handle_request(request)
        finally:
            request.url = url

    def close(self) -> None:  # noqa: D102
        self._inner.close()
