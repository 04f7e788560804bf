"""A loopback container registry for the push/pull tests, and an anonymous token service for it.

``running_registry(root)`` starts Debian's distribution registry (``docker-registry``, tests/servers.py) on
127.0.0.1; ``TokenService`` is the other half of a ghcr.io-style registry: the registry answers ``401`` with
``WWW-Authenticate: Bearer realm=...,service=...,scope=...``, and the service hands anyone a pull token
for the scope asked (anonymous pulls of a public image). Tokens are JWTs signed with ES256 by a
self-signed certificate the registry trusts (``rootcertbundle``), carried in the token's ``x5c`` header,
which is how the distribution registry verifies them.
"""

from __future__ import annotations

import base64
import datetime
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import servers

SERVICE = "taskbox-test-registry"
ISSUER = "taskbox-test-tokens"


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


class TokenService:
    """An anonymous bearer-token service on 127.0.0.1 (a thread), and the certificate its tokens carry.

    Attributes:
        requests: The query of every token request (``service``, ``scope``), in order.
        cert_path: The PEM certificate the registry must trust (``rootcertbundle``).
    """

    def __init__(self, folder: Path) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, ISSUER)])
        now = datetime.datetime.now(datetime.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(hours=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self._key, hashes.SHA256())
        )
        self._x5c = base64.b64encode(cert.public_bytes(serialization.Encoding.DER)).decode()
        self.cert_path = folder / "token-signer.pem"
        self.cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        self.requests: list[dict[str, str]] = []
        service = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                query = {k: v[0] for k, v in parse_qs(urlsplit(self.path).query).items()}
                service.requests.append(query)
                body = json.dumps({"token": service.token(query.get("scope", ""))}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer((servers.HOST, 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def realm(self) -> str:
        """The token endpoint's URL."""
        return f"http://{servers.HOST}:{self._server.server_address[1]}/token"

    @property
    def auth(self) -> dict[str, Any]:
        """The registry config's ``auth`` section that sends clients here."""
        return {
            "token": {
                "realm": self.realm,
                "service": SERVICE,
                "issuer": ISSUER,
                "rootcertbundle": str(self.cert_path),
            }
        }

    def token(self, scope: str) -> str:
        """A signed token granting ``scope`` (``repository:NAME:pull``): pull only, whatever was asked."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        access = []
        kind, _, rest = scope.partition(":")
        name, _, _actions = rest.rpartition(":")
        if kind == "repository" and name:
            access.append({"type": "repository", "name": name, "actions": ["pull"]})
        now = int(time.time())
        header = {"typ": "JWT", "alg": "ES256", "x5c": [self._x5c]}
        claims = {"iss": ISSUER, "sub": "", "aud": SERVICE, "exp": now + 300, "nbf": now - 30, "iat": now,
                  "jti": uuid.uuid4().hex, "access": access}  # fmt: skip
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        r, s = decode_dss_signature(self._key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return f"{signing_input}.{_b64url(r.to_bytes(32, 'big') + s.to_bytes(32, 'big'))}"

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


@contextmanager
def running_registry(root: Path, *, tokens: TokenService | None = None) -> Iterator[servers.ServerProcess]:
    """The distribution registry on 127.0.0.1 storing under ``root``; with ``tokens``, it asks for their tokens."""
    with servers.start_registry(root, auth=tokens.auth if tokens else None) as process:
        yield process
