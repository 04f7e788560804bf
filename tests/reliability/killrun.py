"""What the kill tests share: the task, starting and stopping the real CLI, judging what a kill left, reruns.

Why: tests/reliability/test_kill_rerun.py (signals at chosen phases) and test_kill_random.py (signals at
random points, and local storage) stop the same ``taskbox execute`` run and hold it to the same rules;
this module is those rules, once. The task is the ``sqlite`` executor with a StructuredDataset output,
so a run downloads ``inputs.pb`` and a database, runs a query, uploads a Parquet file under the raw output
prefix and commits ``outputs.pb``: every phase a kill can hit. It runs on local storage and on the remote
stores of tests/reliability/stores.py (moto's S3, Azurite), each behind a fault proxy of its scenario.

Invariants (checked by :func:`check_killed_state` and :func:`rerun`):
    * A killed run leaves exactly one of: ``outputs.pb`` whose table equals a clean run's, ``error.pb``
      alone (``SYSTEM:Terminated``, RECOVERABLE), or nothing.
    * A rerun of the same command into the same prefix, with storage healthy, exits 0 and leaves
      ``outputs.pb`` alone under the prefix (no stale ``error.pb``, no other object), its table equal to
      a clean run's in rows and in Parquet bytes, and no unfinished upload under the base (but those a
      kill left, which nothing in the process can abort: an S3 multipart upload after SIGKILL, blocks staged
      on an Azure blob after either signal), and none at all under the output prefix.

A "pod" is a directory holding a run's ``$TMPDIR`` and database cache; a killed run and its rerun share
one, as a restarted container shares its ``emptyDir``.

Fixtures (import them into a test module by name): ``s3_task`` and ``azure_task`` (module: the fast query
on moto / on Azurite, clean run done; the CLI reaches the store through the scenario's fault proxy,
``Scenario.proxy``, the test itself directly), ``healthy`` (every scenario's proxy with no rule before and
after a test), ``local_task`` (module: the same query under a ``file://`` base).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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
from reliability import stores
from reliability.ledger import LEDGER, LOST, judge, recoverable_system
from reliability.stores import bucket_and_key
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
        store: The remote store ``base`` is on (for listings), ``None`` on local storage.
        proxy: The fault proxy the runs reach the store through (``None`` on local storage).
        env: Environment of every run (the way to the proxy on a remote store).
        read: Reads a committed prefix's outputs into something comparable (:func:`table_of`).
        reference: What ``read`` gave for the clean run.
        clean_s: Wall time of the clean run (random points are fractions of it).
    """

    base: str
    task: str
    inputs: str
    raw: str
    env: dict[str, str]
    store: stores.Store | None = None
    proxy: FaultProxy | None = None
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
    base: str,
    template: Any,
    inputs: bytes,
    pod: Path,
    *,
    env: dict[str, str] | None = None,
    store: stores.Store | None = None,
    proxy: FaultProxy | None = None,
    read: Callable[[str], Any] | None = None,
) -> Scenario:
    """Store the template and the inputs under ``base``, then run the task once cleanly as the reference."""
    task = put(storage.join(base, "task.pb"), template.SerializeToString())
    inputs_uri = put(storage.join(base, "inputs.pb"), inputs)
    scenario = Scenario(base, task, inputs_uri, storage.join(base, "raw"), dict(env or {}), store, proxy)
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


_PROXIES: list[FaultProxy] = []  # the scenarios' proxies, for the ``healthy`` fixture


@contextmanager
def remote_scenario(
    store: stores.Store, tmp: Path, query: str, max_id: int, *, db: Path | None = None, **env: str
) -> Iterator[Scenario]:
    """The task with everything in ``store`` (a fresh base in the session bucket), behind a fault proxy of its own.

    Args:
        store: The remote store.
        tmp: Scratch directory (the database file, the clean run's pod).
        query: The query template.
        max_id: The input.
        db: The database file (default: the ``items`` tables of tests/sql/sqltesting.py).
        **env: More environment for every run.

    Yields:
        The scenario, clean run done; the proxy stops when the block ends.
    """
    base = store.uri(f"kill-rerun-{uuid.uuid4().hex[:8]}")
    db = db or Path(sqltesting.make_sqlite(tmp / "items.db"))
    db_uri = put(storage.join(base, "db", "items.db"), db.read_bytes())
    with FaultProxy(store.endpoint) as proxy:
        _PROXIES.append(proxy)
        try:
            options = {"env": {**store.child_env(proxy.endpoint), **env}, "store": store, "proxy": proxy}
            yield make_sqlite_scenario(base, db_uri, query, max_id, tmp / "clean-pod", **options)
        finally:
            _PROXIES.remove(proxy)


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
    if scenario.store is None:
        root = Path(local_path(prefix))
        return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()} if root.exists() else set()
    return scenario.store.objects_under(prefix)


def unfinished_uploads(scenario: Scenario) -> list[str]:
    """Keys under the scenario's base with an upload neither committed nor aborted (tests/reliability/stores.py)."""
    assert scenario.store is not None, "local storage has no uploads"
    return sorted(scenario.store.unfinished(scenario.base))


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
        stale_uploads: Keys of uploads a kill left unfinished (nothing can abort those: an S3 multipart
            upload after SIGKILL, blocks staged on an Azure blob).
    """
    run = start(scenario, prefix, pod)
    code = run.finish()
    verdict, detail = judge(prefix, outputs_ok=equals_reference(scenario, prefix), error_ok=never)
    LEDGER.record(family, verdict, faults=faults, detail=detail)
    assert verdict != LOST, f"{detail}\n{run.stderr()}"
    assert code == 0, run.stderr()
    left = objects_under(scenario, prefix) - {"outputs.pb"}
    assert left <= litter, f"beside outputs.pb: {sorted(left)}"
    if scenario.store is not None:
        left_open = set(unfinished_uploads(scenario))
        assert left_open <= stale_uploads, f"unfinished uploads: {sorted(left_open - stale_uploads)}"
        _, key = bucket_and_key(prefix)
        under_prefix = sorted(k for k in left_open if k.startswith(key.rstrip("/") + "/"))
        assert not under_prefix, f"unfinished uploads under the committed prefix: {under_prefix}"


def scratch_dirs(pod: Path) -> list[str]:
    """The runs' scratch directories still under the pod's ``$TMPDIR``."""
    return sorted(p.name for p in (pod / "tmp").glob("taskbox-*"))


# --------------------------------------------------------------------------------------------------
# Fixtures
# --------------------------------------------------------------------------------------------------


@pytest.fixture
def healthy() -> Iterator[None]:
    """Every scenario's proxy with no rule before and after the test."""
    for proxy in _PROXIES:
        proxy.rule = None
    yield
    for proxy in _PROXIES:
        proxy.rule = None


def remote_task(store_name: str, query: str = FAST_QUERY, max_id: int = 600, block_bytes: int | None = None) -> Any:
    """A module fixture: the query on the store ``store_name`` behind a proxy of its own, clean run done.

    ``block_bytes``: uploads in parts or blocks of this size (:meth:`stores.Store.hook_env`).
    """

    def task(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
        store = stores.get(request, store_name)
        tmp = tmp_path_factory.mktemp(f"{store_name}-task")
        env = store.hook_env(tmp / "hook", block_bytes) if block_bytes else {}
        with remote_scenario(store, tmp, query, max_id, **env) as scenario:
            yield scenario

    return task


#: The fast query (600 rows) on S3 and on Azure Blob Storage (Azurite).
s3_task = pytest.fixture(remote_task("s3"), scope="module", name="s3_task")
azure_task = pytest.fixture(remote_task("azure"), scope="module", name="azure_task")


@pytest.fixture(scope="module")
def local_task(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """The fast query with everything under a ``file://`` base, with its clean run done."""
    tmp = tmp_path_factory.mktemp("local")
    db = sqltesting.make_sqlite(tmp / "items.db")
    return make_sqlite_scenario((tmp / "store").as_uri(), db, FAST_QUERY, 600, tmp / "clean-pod")
