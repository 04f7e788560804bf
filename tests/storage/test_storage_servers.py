"""The test servers and fixtures themselves (moto, the GCS emulator, Azurite): loopback only, clear failure when
not installed, the proxy."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import servers


def _listen_addresses(port: int) -> set[str]:
    """Local addresses (hex, as in /proc/net/tcp) of sockets listening on ``port``."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, port_hex = fields[1].rsplit(":", 1)
            if int(port_hex, 16) == port and fields[3] == "0A":  # 0A = LISTEN
                found.add(address)
    return found


def test_servers_listen_on_loopback_only(
    s3_server: servers.S3Server, gcs_server: servers.GCSServer, azure_server: servers.AzureServer
) -> None:
    for server in (s3_server, gcs_server, azure_server):
        assert _listen_addresses(server.process.port) == {"0100007F"}  # 127.0.0.1, nothing else


def test_fixture_environment(s3_server: servers.S3Server, gcs_server: servers.GCSServer) -> None:
    assert os.environ["AWS_ENDPOINT_URL"] == s3_server.endpoint.rstrip("/")
    assert (os.environ["AWS_ACCESS_KEY_ID"], os.environ["AWS_SECRET_ACCESS_KEY"]) == ("testing", "testing")
    assert os.environ["AWS_DEFAULT_REGION"] == "us-east-1"
    assert os.environ["STORAGE_EMULATOR_HOST"] == gcs_server.endpoint
    assert os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] == "false"
    assert s3_server.uri("a/b") == f"s3://{s3_server.bucket}/a/b"
    assert gcs_server.uri("/a/b") == f"gs://{gcs_server.bucket}/a/b"
    assert s3_server.endpoint.startswith("http://127.0.0.1:") and gcs_server.endpoint.startswith("http://127.0.0.1:")


def test_azure_fixture_environment(azure_server: servers.AzureServer) -> None:
    assert os.environ["AZURE_STORAGE_CONNECTION_STRING"] == azure_server.connection_string()
    endpoint = f"BlobEndpoint=http://127.0.0.1:{azure_server.process.port}/devstoreaccount1;"
    assert endpoint in os.environ["AZURE_STORAGE_CONNECTION_STRING"]
    for name in ("FLYTE_AZURE_STORAGE_ACCOUNT_KEY", "AZURE_CLIENT_ID", "AZURE_STORAGE_ACCOUNT_NAME", "MSI_ENDPOINT"):
        assert name not in os.environ  # nothing could lead to DefaultAzureCredential or another account
    assert azure_server.uri("/a/b") == f"abfs://{azure_server.container}/a/b"
    assert azure_server.client().get_container_client(azure_server.container).exists()


def test_a_subprocess_reaches_the_servers(s3_base: str, gcs_base: str, azure_base: str) -> None:
    code = (
        "import sys, taskbox.storage as s\n"
        "for base in sys.argv[1:]:\n"
        "    s.write_bytes(base + '/child.txt', b'from a child')\n"
        "    assert s.read_bytes(base + '/child.txt') == b'from a child'\n"
    )
    argv = [sys.executable, "-c", code, s3_base, gcs_base, azure_base]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_unique_prefix_differs_per_test(unique_prefix: str, request: pytest.FixtureRequest) -> None:
    assert unique_prefix.startswith("test_unique_prefix_differs_per_test-")
    assert request.getfixturevalue("unique_prefix") == unique_prefix


def test_missing_venv_fails_with_the_install_hint(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception) as info:
        servers.require_servers_venv(tmp_path / "no-venv")
    assert "test servers are not installed: run `make test-servers` (scripts/install-test-servers.sh)" in str(
        info.value
    )
    with pytest.raises(pytest.fail.Exception):
        servers.start_moto(venv=tmp_path / "no-venv")


def test_install_script_is_idempotent(servers_venv: Path) -> None:
    proc = subprocess.run(
        ["bash", str(servers.INSTALL_SCRIPT)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "TASKBOX_SERVERS_VENV": str(servers_venv)},
    )
    assert proc.returncode == 0, proc.stderr
    assert "test servers already installed" in proc.stdout
    assert "Azurite 3.35.0 already installed" in proc.stdout


def test_missing_azurite_fails_with_the_install_hint(tmp_path: Path) -> None:
    with pytest.raises(pytest.fail.Exception) as info:
        servers.start_azurite(tmp_path / "data", directory=tmp_path / "no-azurite")
    assert "Azurite (the Azure Storage emulator) is not installed: run `make test-servers`" in str(info.value)
    assert "npm" in str(info.value)


def test_proxy_refuses_non_loopback_upstreams() -> None:
    with pytest.raises(ValueError):
        servers.FaultProxy("http://10.0.0.1:9000")


def test_proxy_forwards_to_azurite(azure_server: servers.AzureServer) -> None:
    with servers.FaultProxy(azure_server.endpoint) as proxy:
        listing = f"{proxy.endpoint}/{azure_server.account}?comp=list"
        assert servers.http_status(listing) == 403  # unsigned: Azurite answers, through the proxy
        proxy.rule = servers.FailFirst(1, servers.azure_error(503))
        assert servers.http_status(listing) == 503
        assert len(proxy.requests) == 2


def test_proxy_forwards_and_counts(s3_server: servers.S3Server) -> None:
    with servers.FaultProxy(s3_server.endpoint) as proxy:
        assert servers.http_status(f"{proxy.endpoint}/{s3_server.bucket}") == 200
        proxy.rule = servers.FailFirst(1, servers.s3_error(503))
        assert servers.http_status(f"{proxy.endpoint}/{s3_server.bucket}") == 503
        assert servers.http_status(f"{proxy.endpoint}/{s3_server.bucket}") == 200
        assert len(proxy.requests) == 3
