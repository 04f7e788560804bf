"""Acceptance (issue 5): ``@taskbox.task`` functions from a code bundle on S3, run by the exact container args.

The sample project (``tests/sample_project``, package ``sample_tasks``) is bundled once with the real
``taskbox bundle ... --to s3://...`` (moto on 127.0.0.1), then every case runs the real CLI as a
subprocess, from a working directory that does not hold the project, with inputs, outputs, raw data and
checkpoints on S3::

    taskbox fast-execute --additional-distribution URI --dest-dir DIR -- taskbox execute --inputs ...
        --output-prefix ... --raw-output-data-prefix ... --checkpoint-path ... --prev-checkpoint ...
        --resolver taskbox.function -- task-module sample_tasks.tasks task-name N
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tarfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from flyteidl.core import errors_pb2, execution_pb2

import servers
from helpers import ROOT, TASKBOX, encode_inputs, put, read_error, read_literal_map, subprocess_env, write_tar
from taskbox import storage
from taskbox.bundles import bundle_name, pack
from taskbox.entrypoint.fast_execute import BUNDLES_DIR, bundle_dir

pytestmark = pytest.mark.servers

SAMPLE_PROJECT = ROOT / "tests" / "sample_project"
MODULE = "sample_tasks.tasks"
SENTINEL = b"do not touch\n"


@dataclass
class Order:
    """Same fields as ``sample_tasks.tasks.Order`` (dataclasses travel as msgpack, by field name)."""

    item: str
    quantity: int
    unit_price: float


@pytest.fixture(scope="module")
def bundle_uri(s3_server) -> str:
    """``taskbox bundle tests/sample_project --to s3://.../bundles``: the URI it prints."""
    to = s3_server.uri(f"fast-execute-acceptance-{uuid.uuid4().hex[:8]}/bundles")
    proc = subprocess.run([TASKBOX, "bundle", str(SAMPLE_PROJECT), "--to", to], capture_output=True, text=True,
                          timeout=120, env=subprocess_env())  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    assert len(lines) == 1
    assert lines[0] == storage.join(to, bundle_name(pack(str(SAMPLE_PROJECT))))
    assert storage.exists(lines[0])
    return lines[0]


class Attempt:
    """One attempt's S3 locations (as propeller lays them out) and the local dirs of its pod."""

    def __init__(self, base: str, tmp_path: Path, attempt: int = 0) -> None:
        self.inputs = storage.join(base, "inputs.pb")
        self.output_prefix = storage.join(base, str(attempt))
        self.raw = storage.join(base, "raw", str(attempt))
        self.checkpoint = storage.join(self.raw, "_flytecheckpoints")
        self.dest = tmp_path / "dest"
        self.cwd = tmp_path / "cwd"
        self.cwd.mkdir(exist_ok=True)


def container_args(bundle: str, at: Attempt, task: str, prev_checkpoint: str = '""', *,
                   inner: tuple[str, ...] = ("taskbox", "execute")) -> list[str]:  # fmt: skip
    return [
        TASKBOX, "fast-execute", "--additional-distribution", bundle, "--dest-dir", str(at.dest), "--",
        *inner, "--inputs", at.inputs, "--output-prefix", at.output_prefix,
        "--raw-output-data-prefix", at.raw, "--checkpoint-path", at.checkpoint, "--prev-checkpoint", prev_checkpoint,
        "--resolver", "taskbox.function", "--", "task-module", MODULE, "task-name", task,
    ]  # fmt: skip


def start(args: list[str], at: Attempt, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen(args, cwd=at.cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=subprocess_env(**env))  # fmt: skip


def run_task(args: list[str], at: Attempt, **env: str) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(args, cwd=at.cwd, capture_output=True, text=True, timeout=120, env=subprocess_env(**env))
    assert proc.returncode == 0, proc.stderr
    return proc


def commit_files(prefix: str) -> set[str]:
    return {n for n in ("outputs.pb", "error.pb") if storage.exists(storage.join(prefix, n))}


def outputs(prefix: str):
    assert commit_files(prefix) == {"outputs.pb"}
    return read_literal_map(storage.join(prefix, "outputs.pb")).literals


def error(prefix: str, code: str, recoverable: bool) -> errors_pb2.ContainerError:
    assert commit_files(prefix) == {"error.pb"}
    doc = read_error(prefix)
    assert doc.code == code, doc.message
    assert doc.origin == execution_pb2.ExecutionError.USER
    kind = errors_pb2.ContainerError.RECOVERABLE if recoverable else errors_pb2.ContainerError.NON_RECOVERABLE
    assert doc.kind == kind
    return doc


@pytest.fixture
def at(s3_base, tmp_path) -> Attempt:
    return Attempt(s3_base, tmp_path)


def test_sync_function(bundle_uri, at):
    put(at.inputs, encode_inputs({"a": 40, "b": 2}, {"a": int, "b": int}))
    proc = run_task(container_args(bundle_uri, at, "add"), at)
    assert outputs(at.output_prefix)["o0"].scalar.primitive.integer == 42
    assert proc.stderr.count("downloading code bundle") == 1
    assert (Path(bundle_dir(str(at.dest), bundle_uri)) / "sample_tasks" / "tasks.py").is_file()


def test_async_function(bundle_uri, at):
    put(at.inputs, encode_inputs({"name": "flyte", "delay_s": 0.01}, {"name": str, "delay_s": float}))
    run_task(container_args(bundle_uri, at, "greet"), at)
    assert outputs(at.output_prefix)["o0"].scalar.primitive.string_value == "hello, flyte"


def test_dataclass_in_file_out(bundle_uri, at):
    put(
        at.inputs,
        encode_inputs({"order": Order("widget", 3, 2.5), "currency": "EUR"}, {"order": Order, "currency": str}),
    )
    run_task(container_args(bundle_uri, at, "write_invoice"), at)
    blob = outputs(at.output_prefix)["o0"].scalar.blob
    assert blob.uri.startswith(at.raw + "/"), blob.uri
    assert storage.read_bytes(blob.uri) == b"3 x widget = 7.50 EUR\n"


def test_raising_function_is_a_user_error(bundle_uri, at):
    put(at.inputs, encode_inputs({"message": "bad input 17"}, {"message": str}))
    run_task(container_args(bundle_uri, at, "fail"), at)
    doc = error(at.output_prefix, "USER:ValueError", recoverable=False)
    assert "bad input 17" in doc.message
    extracted = os.path.join(bundle_dir(str(at.dest), bundle_uri), "sample_tasks", "tasks.py")
    assert extracted in doc.message  # the user's traceback, in the extracted bundle (not the tests' copy)


def test_recoverable_error_is_a_recoverable_user_error(bundle_uri, at):
    put(at.inputs, encode_inputs({"message": "try again"}, {"message": str}))
    run_task(container_args(bundle_uri, at, "flaky"), at)
    doc = error(at.output_prefix, "USER:Recoverable", recoverable=True)
    assert "try again" in doc.message


def test_checkpoint_of_one_attempt_is_read_by_the_next(bundle_uri, s3_base, tmp_path):
    first, second = Attempt(s3_base, tmp_path, 0), Attempt(s3_base, tmp_path, 1)
    put(first.inputs, encode_inputs({"n": 10, "fail_at": 6}, {"n": int, "fail_at": int}))
    run_task(container_args(bundle_uri, first, "resumable_sum"), first)
    error(first.output_prefix, "USER:Recoverable", recoverable=True)
    proc = run_task(container_args(bundle_uri, second, "resumable_sum", prev_checkpoint=first.checkpoint), second)
    result = outputs(second.output_prefix)
    assert result["total"].scalar.primitive.integer == sum(range(10))
    assert result["resumed_from"].scalar.primitive.integer == 6
    assert "already extracted" in proc.stderr  # same pod's dest dir: the bundle is not fetched again


def test_the_decorators_own_container_args_run_as_propeller_fills_them(bundle_uri, at):
    sys.path.insert(0, str(SAMPLE_PROJECT))
    try:
        from sample_tasks.tasks import add
    finally:
        sys.path.remove(str(SAMPLE_PROJECT))
    values = {
        "input": at.inputs, "outputPrefix": at.output_prefix, "rawOutputDataPrefix": at.raw,
        "checkpointOutputPrefix": at.checkpoint, "prevCheckpointPrefix": '""',
    }  # fmt: skip
    args = [re.sub(r"\{\{\s*\.(\w+)\s*\}\}", lambda m: values[m.group(1)], a)
            for a in add.container_args(bundle=bundle_uri, dest_dir=str(at.dest))]  # fmt: skip
    assert args[:2] == ["taskbox", "fast-execute"]
    put(at.inputs, encode_inputs({"a": 1, "b": 2}, {"a": int, "b": int}))
    run_task([TASKBOX, *args[1:]], at)
    assert outputs(at.output_prefix)["o0"].scalar.primitive.integer == 3


def test_pyflyte_fast_execute_shaped_args(bundle_uri, at):
    put(at.inputs, encode_inputs({"a": 5, "b": 6}, {"a": int, "b": int}))
    args = container_args(
        bundle_uri, at, "add", prev_checkpoint="{{.prevCheckpointPrefix}}", inner=("pyflyte-execute",)
    )
    resolver = args.index("--resolver")  # where pyflyte-fast-execute inserts its two flags
    args[resolver:resolver] = ["--dynamic-addl-distro", bundle_uri, "--dynamic-dest-dir", str(at.dest)]
    args[1] = "pyflyte-fast-execute"  # flytekit's command name is an alias (an image's ENTRYPOINT is taskbox)
    args[2] = "--dynamic-addl-distro"  # flytekit's spelling is accepted for fast-execute's own flags too
    run_task(args, at)
    assert outputs(at.output_prefix)["o0"].scalar.primitive.integer == 11


def test_same_bundle_extracted_by_two_processes_at_once(bundle_uri, s3_server, s3_base, tmp_path):
    pods = [Attempt(storage.join(s3_base, f"node{i}"), tmp_path, 0) for i in range(2)]  # one shared dest dir
    for i, pod in enumerate(pods):
        put(pod.inputs, encode_inputs({"a": i, "b": 100}, {"a": int, "b": int}))
    key_path = bundle_uri.split("://", 1)[1]
    with servers.FaultProxy(s3_server.endpoint) as proxy:  # counts what reaches the server
        procs = [start(container_args(bundle_uri, pod, "add"), pod, AWS_ENDPOINT_URL=proxy.endpoint) for pod in pods]
        results = [p.communicate(timeout=120) for p in procs]
        bundle_gets = [r for r in proxy.requests if r[0] == "GET" and key_path in r[1]]
    assert [p.returncode for p in procs] == [0, 0], results
    for i, pod in enumerate(pods):
        assert outputs(pod.output_prefix)["o0"].scalar.primitive.integer == 100 + i
    assert sum(err.count("downloading code bundle") for _, err in results) == 1
    assert len(bundle_gets) == 1, proxy.requests
    assert [e for e in os.listdir(pods[0].dest / BUNDLES_DIR) if ".staging-" in e or ".download-" in e] == []


def test_hostile_bundle_uri_gives_an_error_document_and_touches_nothing(s3_base, at, tmp_path):
    evil = write_tar(tmp_path / "evil.tar.gz", [
        ({"name": "sample_tasks/__init__.py"}, b""),
        ({"name": "sample_tasks/tasks.py"}, b"raise SystemExit('never run')\n"),
        ({"name": "../sentinel.txt"}, b"overwritten"),
        ({"name": "link", "type": tarfile.SYMTYPE, "linkname": "/"}, None),
    ])  # fmt: skip
    uri = storage.join(s3_base, "bundles", "evil.tar.gz")
    put(uri, Path(evil).read_bytes())
    at.dest.mkdir()
    (at.dest / "sentinel.txt").write_bytes(SENTINEL)
    (tmp_path / "sentinel.txt").write_bytes(SENTINEL)
    put(at.inputs, encode_inputs({"a": 1, "b": 1}, {"a": int, "b": int}))
    run_task(container_args(uri, at, "add"), at)
    doc = error(at.output_prefix, "USER:BundleRejected", recoverable=False)
    assert "../sentinel.txt" in doc.message
    assert (at.dest / "sentinel.txt").read_bytes() == SENTINEL
    assert (tmp_path / "sentinel.txt").read_bytes() == SENTINEL
    key = os.path.basename(bundle_dir(str(at.dest), uri))
    assert sorted(os.listdir(at.dest)) == [BUNDLES_DIR, "sentinel.txt"]
    assert os.listdir(at.dest / BUNDLES_DIR) == [f".{key}.lock"]  # no tree, no staging, no download left
