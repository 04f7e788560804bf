"""A user task from a code bundle, driven by ``taskbox run`` with a JSON template and JSON inputs.

The template is the one ``@taskbox.task`` writes (``taskbox fast-execute --additional-distribution URI
... -- taskbox execute ... --resolver taskbox.function``); ``taskbox run`` follows its container args, so
the bundle is fetched and extracted and the function runs, with outputs in the three forms.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from google.protobuf.json_format import MessageToJson

from helpers import ROOT, TASKBOX, read_outputs, run, simple

SAMPLE = ROOT / "tests" / "sample_project"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> str:
    target = tmp_path_factory.mktemp("bundles")
    proc = run([TASKBOX, "bundle", str(SAMPLE), "--to", str(target)])
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.strip()


@pytest.fixture(scope="module")
def tasks():
    sys.path.insert(0, str(SAMPLE))
    try:
        from sample_tasks import tasks as module

        yield module
    finally:
        sys.path.remove(str(SAMPLE))


def write_template(task, bundle: str, tmp_path: Path) -> Path:
    template = task.template(image="example/none:1", bundle=bundle, dest_dir=str(tmp_path / "dest"))
    path = tmp_path / "task.json"
    path.write_text(MessageToJson(template))
    return path


def test_bundled_function_with_json_template_and_inputs(bundle: str, tasks, tmp_path: Path):
    template = write_template(tasks.add, bundle, tmp_path)
    (tmp_path / "inputs.json").write_text(json.dumps({"a": 2, "b": 40}))
    out = tmp_path / "out"
    proc = run([TASKBOX, "run", "--template", str(template), "--inputs", str(tmp_path / "inputs.json"),
                "--outputs", str(out)])  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"o0": 42}
    assert read_outputs(str(out), {"o0": simple("INTEGER")}) == {"o0": 42}
    assert (out / "o0").read_text() == "42"
    assert any((tmp_path / "dest" / ".taskbox-bundles").iterdir()), "the bundle was extracted under --dest-dir"


def test_bundled_function_dataclass_in_file_out(bundle: str, tasks, tmp_path: Path):
    template = write_template(tasks.write_invoice, bundle, tmp_path)
    inputs = {"order": {"item": "widget", "quantity": 3, "unit_price": 2.5}, "currency": "USD"}
    out = tmp_path / "out"
    proc = run([TASKBOX, "run", "--template", str(template), "--inputs", json.dumps(inputs), "--outputs", str(out)])
    assert proc.returncode == 0, proc.stderr
    uri = json.loads((out / "outputs.json").read_text())["o0"]
    assert uri.startswith(str(out / "raw") + "/") and (out / "o0").read_text() == uri
    assert Path(uri).read_text() == "3 x widget = 7.50 USD\n"


def test_bundled_function_errors_keep_their_exit_codes(bundle: str, tasks, tmp_path: Path):
    out = tmp_path / "out"
    proc = run([TASKBOX, "run", "--template", str(write_template(tasks.fail, bundle, tmp_path)),
                "--input", "message=boom", "--outputs", str(out)])  # fmt: skip
    assert proc.returncode == 1
    error = json.loads((out / "error.json").read_text())
    assert error["code"] == "USER:ValueError" and "boom" in error["message"]
    proc = run([TASKBOX, "run", "--template", str(write_template(tasks.flaky, bundle, tmp_path)),
                "--input", "message=later", "--outputs", str(out)])  # fmt: skip
    assert proc.returncode == 75
    assert json.loads((out / "error.json").read_text())["recoverable"] is True


def test_a_missing_bundle_is_a_storage_error(tasks, tmp_path: Path):
    template = write_template(tasks.add, str(tmp_path / "no-such-bundle.tar.gz"), tmp_path)
    out = tmp_path / "out"
    proc = run([TASKBOX, "run", "--template", str(template), "--input", "a=1", "--outputs", str(out)])
    assert proc.returncode == 3, proc.stderr
    assert json.loads((out / "error.json").read_text())["code"] == "SYSTEM:StorageNotFound"
