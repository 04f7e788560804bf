"""What the kill tests share: the task, starting and stopping the real CLI, judging what a kill left, reruns.

Why: tests/reliability/test_kill_rerun.py (signals at chosen phases) and test_kill_random.py (signals at
random points, and local storage) stop the same ``taskbox execute`` run and hold it to the same rules;
this module is those rules, once. The task is the ``sqlite`` executor with a StructuredDataset output,
so a run downloads ``inputs.pb`` and a database, runs a query, uploads a Parquet file under the raw output
prefix and commits ``outputs.pb``: every phase a kill can hit.

Invariants (checked by :func:`check_killed_state` and :func:`rerun`):
    * A killed run leaves exactly one of: ``outputs.pb`` whose table equals a clean run's, ``error.pb``
      alone (``SYSTEM:Terminated``, RECOVERABLE), or nothing.
    * A rerun of the same command into the same prefix, with storage healthy, exits 0 and leaves
      ``outputs.pb`` alone under the prefix (no stale ``error.pb``, no other object), its table equal to
      a clean run's in rows and in Parquet bytes, and no unfinished multipart upload under the base (but
      one a SIGKILL left, which nothing in the process can abort).

A "pod" is a directory holding a run's ``$TMPDIR`` and database cache; a killed run and its rerun share
one, as a restarted container shares its ``emptyDir``.

Fixtures (import them into a test module by name): ``proxy`` (module: the fault proxy in front of moto;
the CLI reaches S3 through it, the test itself directly), ``healthy`` (the proxy with no rule before and
after a test), ``s3_task`` (module: the fast query on S3, clean run done), ``local_task`` (module: the
same under a ``file://`` base).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flyteidl.core import errors_pb2

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "sql"))

import sqltesting
from sqltesting import DATASET, simple

from faultproxy import FaultProxy
from helpers import commit_files, encode_inputs, execute_args, make_template, put, read_outputs, subprocess_env
from reliability.ledger import LEDGER, LOST, judge, recoverable_system
from taskbox import storage
from taskbox.storage.local import to_path as local_path

INPUT_TYPES = {"max_id": simple("INTEGER")}
OUTPUT_TYPES = {"results": DATASET}
PARQUET_FILE = "00000"  # the file a table output writes inside its folder (taskbox.sql.results)
FAST_QUERY = "SELECT id, name, score FROM items WHERE id <= {{ .inputs.max_id }} ORDER BY id"
WAIT_S = 60.0  # bound on every wait for a phase or an exit
TERMINATED = 128 + signal.SIGTERM


def terminated(error: errors_pb2.ContainerError) -> bool:
    """The error document SIGTERM must produce: ``SYSTEM:Terminated``, SYSTEM origin, RECOVERABLE."""
    return recoverable_system(error) and error.code == "SYSTEM:Terminated"


def never(error: errors_pb2.ContainerError) -> bool:
    """``error_ok`` for runs with healthy storage and no signal: any error document is a failure."""
    return False


def bucket_and_key(uri: str) -> tuple[str, str]:
    """``s3://bucket/a/b`` -> ``("bucket", "a/b")``."""
    bucket, _, key = uri.split("://", 1)[1].partition("/")
    return bucket, key


# --------------------------------------------------------------------------------------------------
# The task and its clean run
# --------------------------------------------------------------------------------------------------


@dataclass
class Reference:
    """What a clean run produced: the table's rows and the bytes of its Parquet file."""

    rows: list[dict[str, Any]]
    parquet: bytes


@dataclass
class Scenario:
    """One task (template, inputs) stored under ``base``, and its clean run's outputs.

    Attributes:
        s3: The moto server when ``base`` is on S3 (for listings), else ``None``.
        env: Environment of every run (the proxy's endpoint on S3).
        read: Reads a committed prefix's outputs into something comparable (:func:`table_of`).
        reference: What ``read`` gave for the clean run.
        clean_s: Wall time of the clean run (random points are fractions of it).
    """

    base: str
    task: str
    inputs: str
    raw: str
    env: dict[str, str]
    s3: Any = None
    read: Callable[[str], Any] = lambda prefix: table_of(prefix)
    reference: Any = None
    runs: int = 0
    clean_s: float = 0.0

    def prefix(self, name: str) -> str:
        """A fresh output prefix under the scenario's base."""
        return storage.join(self.base, "out", f"{name}-{uuid.uuid4().hex[:8]}")

    def args(self, prefix: str) -> list[str]:
        """The container args of the task, as propeller would fill them in, for ``prefix``."""
        return execute_args(self.inputs, prefix, self.task, None, "--raw-output-data-prefix", self.raw)


def table_of(prefix: str) -> Reference:
    """Read the committed table: rows through the literal engine, bytes of its Parquet file."""
    dataset = read_outputs(prefix, OUTPUT_TYPES)["results"]
    return Reference(dataset.to_arrow().to_pylist(), storage.read_bytes(storage.join(dataset.uri, PARQUET_FILE)))


def make_scenario(
    base: str, template: Any, inputs: bytes, pod: Path, *, env=None, s3=None, read: Callable[[str], Any] | None = None
) -> Scenario:
    """Store the template and the inputs under ``base``, then run the task once cleanly as the reference."""
    task = put(storage.join(base, "task.pb"), template.SerializeToString())
    scenario = Scenario(base, task, put(storage.join(base, "inputs.pb"), inputs), storage.join(base, "raw"), {}, s3)
    scenario.env.update(env or {})
    if read is not None:
        scenario.read = read
    prefix = scenario.prefix("clean")
    began = time.monotonic()
    run = start(scenario, prefix, pod)
    code = run.finish()
    scenario.clean_s = time.monotonic() - began
    assert code == 0 and commit_files(prefix) == {"outputs.pb"}, run.stderr()
    scenario.reference = scenario.read(prefix)
    return scenario


def make_sqlite_scenario(base: str, db_uri: str, query: str, max_id: int, pod: Path, **options: Any) -> Scenario:
    """The ``sqlite`` task: ``query`` over ``db_uri`` with input ``max_id``, a table as its output."""
    template = make_template("sqlite", INPUT_TYPES, OUTPUT_TYPES, {"query_template": query, "uri": db_uri})
    scenario = make_scenario(base, template, encode_inputs({"max_id": max_id}, INPUT_TYPES), pod, **options)
    assert scenario.reference.rows, "the clean run returned no rows"
    return scenario


def make_s3_scenario(
    s3_server: Any, proxy: FaultProxy, tmp: Path, query: str, max_id: int, *, db: Path | None = None, **env: str
) -> Scenario:
    """The task with everything on moto (a fresh base in the session bucket), reached through ``proxy``.

    Args:
        s3_server: The session's moto.
        proxy: The fault proxy the CLI goes through.
        tmp: Scratch directory (the database file, the clean run's pod).
        query: The query template.
        max_id: The input.
        db: The database file (default: the ``items`` tables of tests/sql/sqltesting.py).
        **env: More environment for every run.
    """
    base = s3_server.uri(f"kill-rerun-{uuid.uuid4().hex[:8]}")
    db = db or Path(sqltesting.make_sqlite(tmp / "items.db"))
    db_uri = put(storage.join(base, "db", "items.db"), db.read_bytes())
    env = {"AWS_ENDPOINT_URL": proxy.endpoint, **env}
    return make_sqlite_scenario(base, db_uri, query, max_id, tmp / "clean-pod", env=env, s3=s3_server)


# --------------------------------------------------------------------------------------------------
# Running the CLI
# --------------------------------------------------------------------------------------------------


@dataclass
class Started:
    """A ``taskbox execute`` subprocess whose stderr goes to a file (read while it runs)."""

    proc: subprocess.Popen[bytes]
    log: Path

    def stderr(self, tail: int = 3000) -> str:
        """The end of what the run wrote to stderr so far."""
        return self.log.read_text(errors="replace")[-tail:]

    def wait_for(self, condition: Callable[[], bool], what: str, poll_s: float = 0.01) -> None:
        """Wait until ``condition()`` holds; fail if the process exits first or after :data:`WAIT_S`."""
        deadline = time.monotonic() + WAIT_S
        while not condition():
            if self.proc.poll() is not None:
                pytest.fail(f"the run exited ({self.proc.returncode}) before {what}:\n{self.stderr()}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {what} within {WAIT_S:.0f} s:\n{self.stderr()}")
            time.sleep(poll_s)

    def finish(self) -> int:
        """Wait for the exit (bounded) and return the exit code."""
        try:
            return self.proc.wait(timeout=WAIT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"the run did not exit within {WAIT_S:.0f} s:\n{self.stderr()}")


def start(scenario: Scenario, prefix: str, pod: Path, **extra_env: str) -> Started:
    """Start the task into ``prefix`` in the pod directory ``pod`` (``extra_env`` for this run only)."""
    scenario.runs += 1
    (pod / "tmp").mkdir(parents=True, exist_ok=True)
    log = pod / f"run-{scenario.runs}.log"
    env = {**scenario.env, "TMPDIR": str(pod / "tmp"), "TASKBOX_CACHE_DIR": str(pod / "cache"), **extra_env}
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            scenario.args(prefix),
            stdout=subprocess.DEVNULL,
            stderr=fh,
            stdin=subprocess.DEVNULL,
            env=subprocess_env(**env),
        )
    return Started(proc, log)


# --------------------------------------------------------------------------------------------------
# Judging
# --------------------------------------------------------------------------------------------------


def equals_reference(scenario: Scenario, prefix: str) -> Callable[[], bool]:
    """``outputs_ok`` for :func:`judge`: the committed outputs equal the clean run's (a table: rows and bytes)."""
    return lambda: scenario.read(prefix) == scenario.reference


def objects_under(scenario: Scenario, prefix: str) -> set[str]:
    """Every object (or file, hidden ones included) under ``prefix``, as paths relative to it."""
    if scenario.s3 is None:
        root = Path(local_path(prefix))
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()
    bucket, key = bucket_and_key(prefix)
    listing = scenario.s3.client().list_objects_v2(Bucket=bucket, Prefix=key.rstrip("/") + "/")
    return {item["Key"][len(key.rstrip("/")) + 1 :] for item in listing.get("Contents", [])}


def unfinished_uploads(scenario: Scenario) -> list[str]:
    """Keys of multipart uploads under the scenario's base that were neither completed nor aborted."""
    bucket, key = bucket_and_key(scenario.base)
    listing = scenario.s3.client().list_multipart_uploads(Bucket=bucket, Prefix=key)
    return [upload["Key"] for upload in listing.get("Uploads", [])]


def check_killed_state(scenario: Scenario, prefix: str) -> str:
    """Assert a killed run left an allowed state; return ``"outputs"``, ``"error"`` or ``"nothing"``."""
    if not commit_files(prefix):
        return "nothing"
    verdict, detail = judge(prefix, outputs_ok=equals_reference(scenario, prefix), error_ok=terminated)
    assert verdict != LOST, f"state after the kill: {detail}"
    return verdict


def rerun(
    scenario: Scenario,
    prefix: str,
    pod: Path,
    family: str,
    *,
    faults: int = 1,
    litter: frozenset[str] = frozenset(),
    stale_uploads: frozenset[str] = frozenset(),
) -> None:
    """Rerun the same command into the same prefix with storage healthy; judge and record it.

    Args:
        scenario: The task.
        prefix: The killed run's output prefix.
        pod: The killed run's pod directory.
        family: The ledger family.
        faults: Faults injected into the killed run.
        litter: Files the killed run may have left beside the commit (a local writer's temp files).
        stale_uploads: Keys of multipart uploads a SIGKILL left unfinished (nothing can abort those).
    """
    run = start(scenario, prefix, pod)
    code = run.finish()
    verdict, detail = judge(prefix, outputs_ok=equals_reference(scenario, prefix), error_ok=never)
    LEDGER.record(family, verdict, faults=faults, detail=detail)
    assert verdict != LOST, f"{detail}\n{run.stderr()}"
    assert code == 0, run.stderr()
    left = objects_under(scenario, prefix) - {"outputs.pb"}
    assert left <= litter, f"beside outputs.pb: {sorted(left)}"
    if scenario.s3 is not None:
        left_open = set(unfinished_uploads(scenario))
        assert left_open <= stale_uploads, f"unfinished multipart uploads: {sorted(left_open - stale_uploads)}"


def scratch_dirs(pod: Path) -> list[str]:
    """The runs' scratch directories still under the pod's ``$TMPDIR``."""
    return sorted(p.name for p in (pod / "tmp").glob("taskbox-*"))


# --------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxy(s3_server: Any) -> Iterator[FaultProxy]:
    """The fault proxy in front of moto; the CLI reaches S3 through it, the test itself directly."""
    with FaultProxy(s3_server.endpoint) as fault_proxy:
        yield fault_proxy


@pytest.fixture
def healthy(proxy: FaultProxy) -> Iterator[FaultProxy]:
    """The proxy with no rule before and after the test."""
    proxy.rule = None
    yield proxy
    proxy.rule = None


@pytest.fixture(scope="module")
def s3_task(s3_server: Any, proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """The fast query (600 rows) on S3, with its clean run done."""
    return make_s3_scenario(s3_server, proxy, tmp_path_factory.mktemp("s3-fast"), FAST_QUERY, 600)


@pytest.fixture(scope="module")
def local_task(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """The fast query with everything under a ``file://`` base, with its clean run done."""
    tmp = tmp_path_factory.mktemp("local")
    db = sqltesting.make_sqlite(tmp / "items.db")
    return make_sqlite_scenario((tmp / "store").as_uri(), db, FAST_QUERY, 600, tmp / "clean-pod")
