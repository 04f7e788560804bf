"""The SSRF guard. The "bad address" cases use a stub resolver (the only test double in the HTTP tests):
host names resolve to metadata/private/loopback addresses without DNS, and the guard must refuse them
before any connection is attempted, so no packet leaves for those addresses. Real connections go to
127.0.0.1 only."""

from __future__ import annotations

import uuid

import pytest

from helpers import make_template, simple
from taskbox.authoring import TaskFailed, run_template
from taskbox.executors import http as http_executor
from taskbox.net.errors import SsrfBlocked
from taskbox.net.guard import AddressPolicy

INT, STRUCT = simple("INTEGER"), simple("STRUCT")

STUB = {
    "metadata.test": ["169.254.169.254"],
    "metadata6.test": ["fd00:ec2::254"],
    "alibaba.test": ["100.100.100.200"],
    "private.test": ["10.0.0.5"],
    "cgnat.test": ["100.64.1.1"],
    "loop.test": ["127.0.0.1"],
    "mixed.test": ["93.184.216.34", "192.168.1.1"],
    "public.test": ["93.184.216.34"],
}
CONNECT_ATTEMPTS: list[str] = []


def stub_resolver(host: str, port: int) -> list[str]:
    return list(STUB[host])


@pytest.fixture
def no_env_allow(monkeypatch):
    monkeypatch.delenv("TASKBOX_HTTP_ALLOW", raising=False)


@pytest.mark.parametrize(
    "host",
    [
        "metadata.test",
        "metadata6.test",
        "alibaba.test",
        "private.test",
        "cgnat.test",
        "loop.test",
        "mixed.test",
        "169.254.169.254",
        "2852039166",
        "0xA9FEA9FE",
        "0251.0376.0251.0376",
        "[::ffff:169.254.169.254]",
        "::ffff:169.254.169.254",
        "127.1",
        "[::1]",
        "0.0.0.0",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.0.1",
        "224.0.0.1",
        "240.0.0.1",
        "[fe80::1]",
        "[fc00::1]",
    ],
)
def test_refused_addresses(no_env_allow, host):
    with pytest.raises(SsrfBlocked):
        AddressPolicy(resolver=stub_resolver).check("http", host, 80)


def test_public_address_passes_and_is_pinned(no_env_allow):
    assert AddressPolicy(resolver=stub_resolver).check("https", "public.test", 443) == "93.184.216.34"


@pytest.mark.parametrize("scheme", ["file", "gopher", "ftp"])
def test_only_http_schemes(no_env_allow, scheme):
    with pytest.raises(SsrfBlocked):
        AddressPolicy(resolver=stub_resolver).check(scheme, "public.test", 80)


def test_allow_list_cidrs_and_hosts(no_env_allow):
    assert AddressPolicy(["10.0.0.0/8"], resolver=stub_resolver).check("http", "private.test", 80) == "10.0.0.5"
    assert AddressPolicy(["loop.test"], resolver=stub_resolver).check("http", "loop.test", 80) == "127.0.0.1"
    assert (
        AddressPolicy(environ={"TASKBOX_HTTP_ALLOW": "127.0.0.1, other.test"}, resolver=stub_resolver).check(
            "http", "loop.test", 80
        )
        == "127.0.0.1"
    )
    with pytest.raises(SsrfBlocked):  # allowing one range does not open the others
        AddressPolicy(["10.0.0.0/8"], resolver=stub_resolver).check("http", "metadata.test", 80)


def run_http(tmp_path, custom, outputs=None):
    tpl = make_template("http", {}, outputs or {}, custom)
    return run_template(tpl, {}, workdir=str(tmp_path / f"run-{uuid.uuid4().hex[:8]}"))


@pytest.fixture
def stubbed(monkeypatch):
    monkeypatch.setattr(http_executor, "RESOLVER", stub_resolver)


@pytest.mark.parametrize(
    "url",
    [
        "http://metadata.test/latest/meta-data/",
        "http://private.test:8080/",
        "http://169.254.169.254/",
        "http://[fd00:ec2::254]/",
        "file:///etc/passwd",
    ],
)
def test_executor_refuses_before_connecting(tmp_path, stubbed, no_env_allow, url):
    with pytest.raises(TaskFailed) as err:
        run_http(tmp_path, {"url": url, "retry": {"max_attempts": 1}})
    assert err.value.code == "USER:SsrfBlocked" and err.value.origin == "USER"


def test_loopback_refused_unless_allow_listed(tmp_path, server, no_env_allow, monkeypatch):
    with pytest.raises(TaskFailed) as err:
        run_http(tmp_path, {"url": server.base + "/echo"})
    assert err.value.code == "USER:SsrfBlocked"
    assert server.requests == [] and server.connections == 0
    out = run_http(
        tmp_path, {"url": server.base + "/echo", "allow": ["127.0.0.1/32"], "status_output": "s"}, {"s": INT}
    )
    assert out == {"s": 200}
    monkeypatch.setenv("TASKBOX_HTTP_ALLOW", "10.0.0.0/8,127.0.0.1")
    assert run_http(tmp_path, {"url": server.base + "/echo", "status_output": "s"}, {"s": INT}) == {"s": 200}


def test_connects_to_checked_address_keeping_host_header(tmp_path, server, stubbed, no_env_allow):
    """loop.test resolves (stub) to 127.0.0.1: the connection goes there, the Host header keeps the name."""
    port = server.server_address[1]
    out = run_http(
        tmp_path,
        {"url": f"http://loop.test:{port}/echo", "allow": ["127.0.0.1"], "outputs": {"h": "/headers"}},
        {"h": STRUCT},
    )
    assert out["h"]["host"] == f"loop.test:{port}"


def test_redirect_hop_to_denied_address_is_blocked(tmp_path, server, stubbed, no_env_allow):
    with pytest.raises(TaskFailed) as err:
        run_http(
            tmp_path,
            {
                "url": f"{server.base}/redirect?to=http://metadata.test/",
                "follow_redirects": True,
                "allow": ["127.0.0.1"],
            },
        )
    assert err.value.code == "USER:SsrfBlocked"
    assert len(server.requests) == 1
