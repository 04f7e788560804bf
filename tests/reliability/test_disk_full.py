"""A full disk under the output paths: a clear, recoverable error, never a half-written result.

Why: issue 8 point 6 and docs/reliability-security.md sections 5 and 6. A node's disk (an emptyDir, a
mounted volume) fills up; the task must then fail in a way Flyte retries (another node may have room)
with a message that says so, leave no partial data under the final names and no scratch files, and never
commit ``outputs.pb`` for data that did not land.

How: the real ``taskbox execute`` runs inside a private mount namespace (``unshare --mount``, or
``unshare --user --map-root-user --mount`` when not root) where an 8 MiB tmpfs is mounted over a directory
of the test; the namespace (and the tmpfs) ends with the process, so nothing is left mounted on the host
whatever happens. A shell inside the namespace lists the files left on the tmpfs after the run.

Cases (each judged and recorded in the ledger as ``disk full / ...``):
    * raw output prefix on the tmpfs, output prefix outside: a ~20 MB SQLite result (Parquet) and a ~20 MB
      HTTP body (File) do not fit -> ``error.pb`` with ``SYSTEM:DiskFull``, recoverable, a message naming
      the disk, no ``outputs.pb``, nothing left on the tmpfs, the scratch ``$TMPDIR`` removed.
    * the output prefix itself on the tmpfs, no raw prefix given (data goes to ``<prefix>/data``): the
      same error, and ``error.pb`` still lands there because the partial data was removed first.
    * the output prefix on a tmpfs with no room at all: not even ``error.pb`` can be written. The
      documented contract (README "Results and errors") is exit code 1 with the reason on stderr and no
      commit file; Flyte then fails the attempt from the exit code. The ledger counts that run as a
      correct error (the error is reported the only way left) when exactly that happens, as lost otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from flyteidl.core import errors_pb2, execution_pb2, types_pb2

from helpers import ROOT, commit_files, encode_inputs, execute_args, make_template, put, read_error, subprocess_env
from reliability.ledger import ERROR, LEDGER, LOST, judge

if str(ROOT / "tests" / "http") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests" / "http"))

import httptesting

pytestmark = pytest.mark.timeout(120)

TMPFS_MB = 8
DATA_MB = 20
DATASET = types_pb2.LiteralType(structured_dataset_type=types_pb2.StructuredDatasetType(format="parquet"))
FILE = types_pb2.LiteralType(blob=types_pb2.BlobType(dimensionality=types_pb2.BlobType.SINGLE))

#: Inside the namespace: mount the tmpfs, optionally fill it, run the command, list what is left on it.
SCRIPT = f"""
set -u
small="$1"; listing="$2"; fill_kb="$3"; shift 3
mount -t tmpfs -o size={TMPFS_MB}m tmpfs "$small" || exit 97
if [ "$fill_kb" -gt 0 ]; then dd if=/dev/zero of="$small/filler" bs=1024 count="$fill_kb" 2>/dev/null; fi
"$@"
code=$?
find "$small" -type f ! -name filler > "$listing"
exit $code
"""


def namespace_prefix() -> list[str]:
    """The ``unshare`` command that gives a private mount namespace, or a failure saying what to run."""
    unshare = shutil.which("unshare")
    if unshare is None:
        pytest.fail("unshare (util-linux) is not installed: apt-get install util-linux", pytrace=False)
    if os.geteuid() == 0:
        return [unshare, "--mount", "--propagation", "private"]
    probe = subprocess.run([unshare, "--user", "--map-root-user", "--mount", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(
            "cannot mount a small tmpfs: not root, and unprivileged user namespaces are off "
            f"({probe.stderr.strip()}); run as root, or enable them (sysctl kernel.unprivileged_userns_clone=1)",
            pytrace=False,
        )
    return [unshare, "--user", "--map-root-user", "--mount"]


class FullRun:
    """One ``taskbox execute`` run with a small tmpfs mounted at ``small``."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.small = base / "small"  # the tmpfs mount point
        self.scratch = base / "scratch"  # $TMPDIR, outside the tmpfs
        self.listing = base / "left-on-tmpfs.txt"
        for path in (self.small, self.scratch):
            path.mkdir(parents=True)

    def run(self, args: list[str], fill_kb: int = 0, **env: str) -> subprocess.CompletedProcess[str]:
        command = [*namespace_prefix(), "sh", "-c", SCRIPT, "sh", str(self.small), str(self.listing), str(fill_kb)]
        proc = subprocess.run(
            [*command, *args],
            capture_output=True,
            text=True,
            timeout=90,
            env=subprocess_env(TMPDIR=str(self.scratch), **env),
        )
        assert proc.returncode != 97, f"mounting the tmpfs failed: {proc.stderr}"
        return proc

    def left_on_tmpfs(self) -> list[str]:
        return self.listing.read_text().split()

    def left_in_scratch(self) -> list[str]:
        return [p.name for p in self.scratch.iterdir() if not p.name.startswith("taskbox-cache")]


def disk_full(error: errors_pb2.ContainerError) -> bool:
    """The error a full disk must give: SYSTEM, recoverable, code DiskFull, a message that says so."""
    recoverable = error.kind == errors_pb2.ContainerError.RECOVERABLE
    system = error.origin == execution_pb2.ExecutionError.SYSTEM
    return recoverable and system and error.code == "SYSTEM:DiskFull" and "no space left" in error.message.lower()


def record(family: str, run: FullRun, prefix: str, proc: subprocess.CompletedProcess[str], keep: str = "") -> None:
    """Judge the run (``keep``: the one file that belongs on the tmpfs, when the prefix is there) and record it."""
    verdict, detail = judge(prefix, outputs_ok=lambda: False, error_ok=disk_full)
    left = [p for p in run.left_on_tmpfs() if p != keep] + run.left_in_scratch()
    if verdict != LOST and left:
        verdict, detail = LOST, f"{prefix}: files left behind: {left}"
    LEDGER.record(f"disk full / {family}", verdict, faults=1, detail=detail)
    assert verdict != LOST, f"{detail}\nexit {proc.returncode}\nstderr:\n{proc.stderr[-3000:]}"
    assert proc.returncode == 0, proc.stderr  # error.pb was written: Flyte's contract is exit 0
    print(f"\n{family}: {read_error(prefix).message.splitlines()[0]}")


def copied_out(args: list[str], prefix: str, copy: Path) -> list[str]:
    """``args``, then a copy of ``prefix`` to ``copy`` (the tmpfs, and the prefix on it, end with the namespace)."""
    script = 'code=0; "$@" || code=$?; mkdir -p "$COPY"; cp -r "$PREFIX/." "$COPY" 2>/dev/null; exit $code'
    return ["env", f"PREFIX={prefix}", f"COPY={copy}", "sh", "-c", script, "sh", *args]


def sqlite_task(base: Path) -> tuple[str, str]:
    """A template and inputs whose result is ~DATA_MB of incompressible Parquet."""
    import sqlite3

    db = base / "rows.db"
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE t AS WITH RECURSIVE s(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM s WHERE i < ?) "
            "SELECT i AS id, randomblob(1024) AS payload FROM s",
            (DATA_MB * 1024,),
        )
    conn.close()
    custom = {"uri": str(db), "query_template": "SELECT id, payload FROM t"}
    template = make_template("sqlite", {}, {"results": DATASET}, custom)
    task = put(str(base / "task.pb"), template.SerializeToString())
    return task, put(str(base / "inputs.pb"), encode_inputs({}, {}))


@pytest.mark.parametrize("path", ["adbc", "sqlite3"])
def test_sqlite_result_larger_than_the_raw_output_disk(tmp_path, path):
    run = FullRun(tmp_path)
    task, inputs = sqlite_task(tmp_path)
    if path == "sqlite3":  # the same query through the sqlite3 path (a datetime input keeps the fast path out)
        custom = {
            "uri": str(tmp_path / "rows.db"),
            "query_template": "SELECT id, payload FROM t WHERE {{ .inputs.d }} IS NOT NULL",
        }
        types = {"d": types_pb2.LiteralType(simple=types_pb2.DATETIME)}
        task = put(
            str(tmp_path / "task.pb"), make_template("sqlite", types, {"results": DATASET}, custom).SerializeToString()
        )
        import datetime

        inputs = put(
            str(tmp_path / "inputs.pb"), encode_inputs({"d": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)}, types)
        )
    prefix = str(tmp_path / "out")
    proc = run.run(execute_args(inputs, prefix, task, None, "--raw-output-data-prefix", str(run.small / "raw")))
    record(f"sqlite ({path}) raw prefix", run, prefix, proc)


def test_http_body_larger_than_the_raw_output_disk(tmp_path):
    run = FullRun(tmp_path)
    with httptesting.running() as server:
        custom = {
            "url": f"{server.base}/big?n={DATA_MB * 1024 * 1024}",
            "body_output": "body",
            "max_body_bytes": 64 * 1024 * 1024,
        }
        task = put(str(tmp_path / "task.pb"), make_template("http", {}, {"body": FILE}, custom).SerializeToString())
        inputs = put(str(tmp_path / "inputs.pb"), encode_inputs({}, {}))
        prefix = str(tmp_path / "out")
        args = execute_args(inputs, prefix, task, None, "--raw-output-data-prefix", str(run.small / "raw"))
        proc = run.run(args, TASKBOX_HTTP_ALLOW="127.0.0.1/32")
    record("http raw prefix", run, prefix, proc)


def test_output_prefix_on_the_full_disk(tmp_path):
    """No raw prefix: the data goes under ``<prefix>/data`` on the same small disk as the commit file."""
    run = FullRun(tmp_path)
    task, inputs = sqlite_task(tmp_path)
    prefix, copy = str(run.small / "out"), tmp_path / "prefix-copy"
    proc = run.run(copied_out(execute_args(inputs, prefix, task), prefix, copy))
    record("output prefix (data under it)", run, str(copy), proc, keep=str(run.small / "out" / "error.pb"))


def test_output_prefix_with_no_room_at_all(tmp_path):
    """Not even ``error.pb`` fits: exit 1, the reason on stderr, no commit file, nothing half-written."""
    run = FullRun(tmp_path)
    template = make_template(
        "echo",
        {"x": types_pb2.LiteralType(simple=types_pb2.STRING)},
        {"x": types_pb2.LiteralType(simple=types_pb2.STRING)},
    )
    task = put(str(tmp_path / "task.pb"), template.SerializeToString())
    inputs = put(
        str(tmp_path / "inputs.pb"),
        encode_inputs({"x": "hello"}, {"x": types_pb2.LiteralType(simple=types_pb2.STRING)}),
    )
    prefix, copy = str(run.small / "out"), tmp_path / "prefix-copy"
    proc = run.run(copied_out(execute_args(inputs, prefix, task), prefix, copy), fill_kb=TMPFS_MB * 1024)
    files = commit_files(str(copy))
    left = run.left_on_tmpfs() + run.left_in_scratch()
    expected = (
        proc.returncode == 1
        and "could not write the error document" in proc.stderr
        and "no space left" in proc.stderr.lower()
    )
    verdict = ERROR if expected and not files and not left else LOST
    detail = f"exit {proc.returncode}, commit files {sorted(files)}, left {left}"
    LEDGER.record("disk full / output prefix with no room", verdict, faults=1, detail=detail)
    print(f"\noutput prefix with no room: {detail}; stderr: {proc.stderr.strip().splitlines()[-1:]}")
    assert verdict != LOST, f"{detail}\nstderr:\n{proc.stderr[-3000:]}"
