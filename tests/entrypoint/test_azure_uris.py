"""``abfs://`` wherever the command line takes a URI, through the real CLI against Azurite on 127.0.0.1.

The storage_base-parametrised tests already run ``taskbox execute`` (inputs, template, outputs), checkpoints,
function tasks, the sqlite executor's database URI and ``taskbox bundle --to`` on Azure; here the paths that
only a pod lays out end to end: a code bundle uploaded to Azure and run by ``taskbox fast-execute`` with
every location on Azure, and ``taskbox run --outputs abfs://...`` with its error files and rerun.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from helpers import ROOT, TASKBOX, encode_inputs, put, read_literal_map, run, subprocess_env
from taskbox import storage
from taskbox.bundles import bundle_name, pack

pytestmark = pytest.mark.servers

SAMPLE_PROJECT = ROOT / "tests" / "sample_project"


def test_bundle_and_fast_execute_with_everything_on_azure(azure_base: str, tmp_path) -> None:
    proc = run([TASKBOX, "bundle", str(SAMPLE_PROJECT), "--to", storage.join(azure_base, "bundles")])
    assert proc.returncode == 0, proc.stderr
    bundle = proc.stdout.strip()
    assert bundle == storage.join(azure_base, "bundles", bundle_name(pack(str(SAMPLE_PROJECT))))
    inputs = put(storage.join(azure_base, "inputs.pb"), encode_inputs({"a": 40, "b": 2}, {"a": int, "b": int}))
    prefix, raw = storage.join(azure_base, "0"), storage.join(azure_base, "raw", "0")
    args = [
        TASKBOX, "fast-execute", "--additional-distribution", bundle, "--dest-dir", str(tmp_path / "dest"), "--",
        "taskbox", "execute", "--inputs", inputs, "--output-prefix", prefix, "--raw-output-data-prefix", raw,
        "--checkpoint-path", storage.join(raw, "_flytecheckpoints"), "--prev-checkpoint", '""',
        "--resolver", "taskbox.function", "--", "task-module", "sample_tasks.tasks", "task-name", "add",
    ]  # fmt: skip
    (tmp_path / "cwd").mkdir()
    proc = subprocess.run(args, cwd=tmp_path / "cwd", capture_output=True, text=True, timeout=120, env=subprocess_env())
    assert proc.returncode == 0, proc.stderr
    assert read_literal_map(storage.join(prefix, "outputs.pb")).literals["o0"].scalar.primitive.integer == 42
    assert not storage.exists(storage.join(prefix, "error.pb"))


def test_run_outputs_on_azure(azure_base: str) -> None:
    out = storage.join(azure_base, "run-1")
    proc = run([TASKBOX, "run", "--executor", "echo", "--input", "greeting=hi", "--outputs", out])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(storage.read_bytes(storage.join(out, "outputs.json"))) == {"greeting": "hi"}
    assert storage.read_bytes(storage.join(out, "greeting")) == b"hi"
    assert storage.exists(storage.join(out, "outputs.pb"))

    bad = json.dumps({"uri": storage.join(azure_base, "no-such.db"), "query_template": "SELECT 1"})
    proc = run([TASKBOX, "run", "--executor", "sqlite", "--config", bad, "--outputs", out])
    assert proc.returncode != 0
    error = json.loads(storage.read_bytes(storage.join(out, "error.json")))
    assert error["code"] == "SYSTEM:StorageNotFound", error
    assert storage.join(azure_base, "no-such.db") in error["message"]
    assert not storage.exists(storage.join(out, "outputs.pb"))  # one commit file: the stale one is gone
