"""``taskbox run --output-file outputs.pickle=PATH``: the plain outputs as a pickle of builtins.

Airflow's DockerOperator with ``retrieve_output=True`` copies one file out of the stopped container and
``pickle.load``s it; this pseudo-name (beside ``outputs.json``) writes that file. The pickle must hold
``outputs.json``'s values and nothing else: built-in types only, so unpickling imports no module.
"""

from __future__ import annotations

import io
import json
import pickle
import pickletools
import sqlite3
from pathlib import Path
from typing import Any

from helpers import TASKBOX, make_template, run, simple
from taskbox.entrypoint import run as runmod


class _BuiltinsOnly(pickle.Unpickler):
    """An unpickler that imports nothing: loading fails if the pickle names any class or function."""

    def find_class(self, module: str, name: str) -> Any:
        raise AssertionError(f"the pickle names {module}.{name}")


def load_builtins(path: Path) -> Any:
    return _BuiltinsOnly(io.BytesIO(path.read_bytes())).load()


def test_pickle_holds_the_plain_outputs_as_builtins(tmp_path: Path):
    values = {"word": "hé", "count": 3, "ratio": 0.5, "flag": True, "items": ["one", "two"], "doc": {"a": {"b": None}}}
    out, pickled, as_json = tmp_path / "out", tmp_path / "xcom" / "script.out", tmp_path / "return.json"
    proc = run([TASKBOX, "run", "--executor", "echo", "--inputs", json.dumps(values), "--outputs", str(out),
                "--output-file", f"outputs.pickle={pickled}", "--output-file", f"outputs.json={as_json}"])  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    plain = json.loads((out / "outputs.json").read_text())
    assert load_builtins(pickled) == plain == json.loads(as_json.read_text()) == json.loads(proc.stdout)
    assert plain["count"] == 3 and plain["doc"] == {"a": {"b": None}}
    data = pickled.read_bytes()
    assert data[:2] == b"\x80\x04"  # protocol 4: readable by any Python 3.4+ worker
    assert not {op.name for op, _, _ in pickletools.genops(data)} & {"GLOBAL", "STACK_GLOBAL", "REDUCE", "INST"}
    assert "outputs.pickle" not in {p.name for p in out.iterdir()}  # only where --output-file names it


def test_pickle_of_a_query_and_from_the_environment(tmp_path: Path):
    db = tmp_path / "shop.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, amount REAL)")
    conn.executemany("INSERT INTO orders VALUES (?, ?)", [(1, 5.0), (2, 10.0), (3, 12.5), (4, 150.0)])
    conn.commit()
    conn.close()
    config = {
        "uri": str(db),
        "query_template": "SELECT count(*) AS n, sum(amount) AS total FROM orders WHERE amount >= {{ .inputs.m }}",
        "interface": {"inputs": {"m": "float"}, "outputs": {"n": "int", "total": "float"}},
    }
    pickled = tmp_path / "script.out"
    proc = run([TASKBOX, "run", "--executor", "sqlite", "--config", json.dumps(config), "--input", "m=10",
                "--outputs", str(tmp_path / "out")], TASKBOX_OUTPUT_FILES=f"outputs.pickle={pickled}")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert load_builtins(pickled) == {"n": 3, "total": 172.5}
    assert type(load_builtins(pickled)["n"]) is int


def test_outputs_pickle_is_reserved_and_listed_in_the_error(tmp_path: Path):
    template = make_template("echo", {"outputs.pickle": simple("STRING")}, {"outputs.pickle": simple("STRING")})
    (tmp_path / "task.pb").write_bytes(template.SerializeToString())
    proc = run([TASKBOX, "run", "--template", str(tmp_path / "task.pb"), "--input", "outputs.pickle=x",
                "--outputs", str(tmp_path / "o")])  # fmt: skip
    assert proc.returncode == 1
    error = json.loads((tmp_path / "o" / "error.json").read_text())
    assert error["code"] == "USER:InvalidTemplate" and "outputs.pickle" in error["message"]
    proc = run([TASKBOX, "run", "--executor", "echo", "--input", "w=1", "--outputs", str(tmp_path / "p"),
                "--output-file", f"outputs.pkl={tmp_path / 'x'}"])  # fmt: skip
    error = json.loads((tmp_path / "p" / "error.json").read_text())
    assert proc.returncode == 1 and error["code"] == "USER:InvalidConfig"
    assert "outputs.json, outputs.pickle" in error["message"]


def test_a_failure_writes_no_pickle(tmp_path: Path):
    pickled = tmp_path / "script.out"
    proc = run([TASKBOX, "run", "--executor", "sqlite", "--config", json.dumps({"uri": str(tmp_path / "none.db"),
                "query_template": "SELECT 1 AS n"}), "--outputs", str(tmp_path / "out"),
                "--output-file", f"outputs.pickle={pickled}"])  # fmt: skip
    assert proc.returncode != 0 and not pickled.exists()


def test_help_names_the_pseudo_outputs():
    text = " ".join(runmod.parser({}).format_help().split())
    assert "outputs.pickle=PATH writes outputs.json's values as a pickle" in text
