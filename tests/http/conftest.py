"""Fixtures of the HTTP executor's tests: loopback servers and the allow-list for 127.0.0.1."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import httptesting


@pytest.fixture
def server():
    with httptesting.running() as srv:
        yield srv


@pytest.fixture
def other_server():
    """A second origin (another port on 127.0.0.1)."""
    with httptesting.running() as srv:
        yield srv


@pytest.fixture(autouse=True)
def allow_loopback(monkeypatch):
    """The tests' servers are on 127.0.0.1, which the guard refuses unless allow-listed."""
    monkeypatch.setenv("TASKBOX_HTTP_ALLOW", "127.0.0.1/32")
    monkeypatch.setenv("TASKBOX_HTTP_BACKOFF_BASE_S", "0.01")
