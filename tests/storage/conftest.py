"""Fixtures for the storage tests: an IAM-enforcing moto, fault proxies in front of the servers, fast retries."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

import servers
from taskbox.errors import Terminated
from taskbox.storage import remote


@dataclass
class AuthS3:
    """A second moto that enforces IAM: ``reader`` may only GetObject/ListBucket on ``bucket``."""

    endpoint: str
    bucket: str
    seed_key: str
    reader_key: str
    reader_secret: str


# moto lets this many requests through unauthenticated, then enforces IAM; _setup_auth_server uses
# exactly these five (create user, access key, policy, bucket, seed object).
_UNAUTHENTICATED_SETUP_REQUESTS = 5


@pytest.fixture(scope="session")
def auth_s3(servers_venv: Path) -> Iterator[AuthS3]:
    """moto with ``INITIAL_NO_AUTH_ACTION_COUNT``: real InvalidAccessKeyId and AccessDenied answers."""
    env = {"INITIAL_NO_AUTH_ACTION_COUNT": str(_UNAUTHENTICATED_SETUP_REQUESTS)}
    with servers.start_moto(venv=servers_venv, env=env) as process:
        s3 = servers.S3Server(process, "locked")
        iam_client, s3_client = s3.client("iam"), s3.client("s3")
        iam_client.create_user(UserName="reader")
        key = iam_client.create_access_key(UserName="reader")["AccessKey"]
        policy = {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Effect": "Allow",
                    # AWS authorises HEAD by s3:GetObject; moto 5.2.6 checks an action "s3:HeadObject"
                    # (not an AWS action, so listing it grants nothing more on AWS).
                    "Action": ["s3:GetObject", "s3:HeadObject", "s3:ListBucket"],
                    "Resource": ["arn:aws:s3:::locked", "arn:aws:s3:::locked/*"],
                }
            ],
        }
        iam_client.put_user_policy(UserName="reader", PolicyName="read-only", PolicyDocument=json.dumps(policy))
        s3_client.create_bucket(Bucket="locked")
        s3_client.put_object(Bucket="locked", Key="seed.txt", Body=b"seed")
        yield AuthS3(process.endpoint, "locked", "seed.txt", key["AccessKeyId"], key["SecretAccessKey"])


def set_retries(monkeypatch: pytest.MonkeyPatch, retries: int, budget_s: float = 60.0, base_s: float = 0.01) -> None:
    """Configure taskbox's retry policy through its environment variables (small delays for tests)."""
    monkeypatch.setenv("TASKBOX_STORAGE_RETRIES", str(retries))
    monkeypatch.setenv("TASKBOX_STORAGE_RETRY_BUDGET_S", str(budget_s))
    monkeypatch.setenv("TASKBOX_STORAGE_RETRY_BASE_S", str(base_s))


@pytest.fixture
def retry_env(monkeypatch: pytest.MonkeyPatch):
    """``retry_env(retries, budget_s=60, base_s=0.01)`` sets the retry policy for this test."""
    return lambda retries, budget_s=60.0, base_s=0.01: set_retries(monkeypatch, retries, budget_s, base_s)


@pytest.fixture
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """Default attempt count, but millisecond backoff so retry tests stay quick."""
    set_retries(monkeypatch, 5, 60.0, 0.01)


@pytest.fixture
def s3_proxy(
    s3_server: servers.S3Server, monkeypatch: pytest.MonkeyPatch, fresh_filesystems: None, fast_retries: None
) -> Iterator[servers.FaultProxy]:
    """A :class:`servers.FaultProxy` in front of moto, with ``AWS_ENDPOINT_URL`` pointing at it.

    Set ``proxy.rule`` in the test; with no rule every request is forwarded.
    """
    with servers.FaultProxy(s3_server.endpoint) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint)
        remote.reset_filesystems()
        yield proxy
        remote.reset_filesystems()


@pytest.fixture
def gcs_proxy(
    gcs_server: servers.GCSServer, monkeypatch: pytest.MonkeyPatch, fresh_filesystems: None, fast_retries: None
) -> Iterator[servers.FaultProxy]:
    """A :class:`servers.FaultProxy` in front of the GCS emulator, with ``STORAGE_EMULATOR_HOST`` at it."""
    with servers.FaultProxy(gcs_server.endpoint) as proxy:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", proxy.endpoint)
        remote.reset_filesystems()
        yield proxy
        remote.reset_filesystems()


@pytest.fixture
def azure_proxy(
    azure_server: servers.AzureServer, monkeypatch: pytest.MonkeyPatch, fresh_filesystems: None, fast_retries: None
) -> Iterator[servers.FaultProxy]:
    """A :class:`servers.FaultProxy` in front of Azurite: the connection string's ``BlobEndpoint`` points at it."""
    with servers.FaultProxy(azure_server.endpoint) as proxy:
        monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", azure_server.connection_string(endpoint=proxy.endpoint))
        remote.reset_filesystems()
        yield proxy
        remote.reset_filesystems()


@pytest.fixture
def interrupt_when():
    """``interrupt_when(event)``: raise ``Terminated`` in the main thread (as the SIGTERM handler does)
    once ``event`` is set; the handler is restored afterwards."""
    main = threading.main_thread().ident

    def on_signal(signum: int, frame: object) -> None:
        raise Terminated()

    previous = signal.signal(signal.SIGUSR1, on_signal)
    threads = []

    def arm(event: threading.Event) -> None:
        def wait_then_signal() -> None:
            if event.wait(timeout=60):
                signal.pthread_kill(main, signal.SIGUSR1)

        thread = threading.Thread(target=wait_then_signal, daemon=True)
        thread.start()
        threads.append(thread)

    yield arm
    for thread in threads:
        thread.join(timeout=60)
    signal.signal(signal.SIGUSR1, previous)
