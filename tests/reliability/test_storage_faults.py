"""Every executor run through the fault proxy at 10% and 30% fault rates: right outputs, or a recoverable error.

Why: object stores answer 503 SlowDown and 500 InternalError, reset connections, cut bodies short and
stall, and a task must never turn that into wrong or missing results (issue 8). Each test here runs the
real entrypoint CLI as a subprocess with the template, the inputs, the data it reads (SQLite database,
code bundle) and its outputs on one store, S3 (``s3://``, moto) or Azure Blob Storage (``abfs://``,
Azurite; issue 21), its traffic sent to a :class:`faultproxy.FaultProxy` in front of the server
(``AWS_ENDPOINT_URL``; the connection string's ``BlobEndpoint``) whose :class:`faultproxy.RandomFaults`
rule hits a seeded fraction of the requests with a fault drawn from the store's mix: its service errors
(S3: 503 SlowDown, 500 InternalError; Azure: 503 ServerBusy, 500 InternalError, 500 OperationTimedOut),
a reset, a truncated body (a response cut short; a request body cut on the way up), a 0.5-1 s stall. A
fault-free run through a proxy gives the reference. What is the store's own lives in
tests/reliability/stores.py; everything else here is the same code for both.

On Azure every upload over 8 KiB goes as blocks of 8 KiB (512 KiB for the ``http`` body; a start-up
hook; 4 MiB in production), so the Put Block / Put Block List path meets the faults too: the ``echo``
task's ``outputs.pb`` and the ``sqlite`` task's Parquet file are committed from two or more blocks.

Executors: ``echo``; ``sqlite`` (the database file in the store); ``sql`` (PostgreSQL on loopback, not
proxied: its results table goes to the store); ``http`` (a loopback server, not proxied: the 1.5 MB body
becomes a File output uploaded to the store); a ``@taskbox.task`` function from a code bundle run by
``taskbox fast-execute`` (the bundle itself is downloaded through the proxy; the function writes a File
output). S3 runs all five; Azure ``echo``, ``sqlite`` and the ``@task`` bundle (all five with
``TASKBOX_SOAK=1``).

Modes (:data:`MODES`; each run has a proxy and a seed of its own, a few runs go at a time):
    * 10% and 30% of all requests, default retries: runs end with the right outputs unless a retry
      budget runs out.
    * 80% of the reads of the run's data (inputs, database, bundle, template), one retry: most runs must
      end with a recoverable SYSTEM ``error.pb``.
    * Every PUT of ``outputs.pb`` cut on its way up or landing with its answer lost, one retry: the run
      must end with ``error.pb`` alone, although an ``outputs.pb`` may have reached the store.

Invariants checked on every run and recorded in the ledger (tests/reliability/ledger.py) under
``storage faults <mode> / <executor>`` (S3) and ``storage faults <mode> / <executor> on azure``:
    * The run ends (bounded by a timeout: a hang is a failure).
    * The prefix holds ``outputs.pb`` alone, with outputs equal to the reference by value (tables row by
      row, files byte for byte), or ``error.pb`` alone with a RECOVERABLE SYSTEM error. Anything else
      (both files, neither, other outputs, another error class) is ``lost`` and fails the test.
    * Nothing else is listed under the output prefix.
    * S3: no multipart upload is left open under the run's prefix. Azure has no such abort: blocks staged
      by a write that never committed stay invisible until the service discards them (a week); the
      detail of the run names them, and none may be left under the output prefix of a run that
      committed ``outputs.pb``.

Scale: 3 seeds per executor at 10% and 30% in ``make test`` (2 in the other modes): 50 faulty runs on S3,
30 on Azure; 12 (and 6) seeds with ``TASKBOX_SOAK=1``.
"""

from __future__ import annotations

import http.client
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flyteidl.core import errors_pb2, execution_pb2, types_pb2

TESTS = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(TESTS / "sql"))
sys.path.insert(0, str(TESTS / "http"))

import httptesting  # noqa: E402
import sqltesting  # noqa: E402
from sqltesting import DATASET  # noqa: E402

from faultproxy import AZURE_FAULTS, FAULTS, FaultProxy, ProxyRequest, RandomFaults  # noqa: E402
from helpers import (  # noqa: E402
    TASKBOX,
    encode_inputs,
    execute_args,
    list_of,
    make_template,
    map_of,
    put,
    read_outputs,
    simple,
    subprocess_env,
)
from reliability import stores  # noqa: E402
from reliability.ledger import LEDGER, LOST, OUTPUTS, SOAK, judge  # noqa: E402
from taskbox import storage  # noqa: E402
from taskbox.bundles import upload_bundle  # noqa: E402
from taskhelpers import SAMPLE_PROJECT, encode, read_outputs_by_hints, sample_tasks, substitute  # noqa: E402

pytestmark = pytest.mark.servers

SEEDS = tuple(range(12 if SOAK else 3))
FEWER_SEEDS = SEEDS[: 6 if SOAK else 2]  # for the modes whose runs mostly fail fast
RUN_TIMEOUT_S = 150  # one run: the retry budget (60 s) per operation is the only long wait
PARALLEL_RUNS = 3  # runs wait on stalls and backoff more than they compute
INT, STR, FLOAT = simple("INTEGER"), simple("STRING"), simple("FLOAT")
FILE = types_pb2.LiteralType(blob=types_pb2.BlobType(dimensionality=types_pb2.BlobType.SINGLE))
HTTP_BODY_BYTES = 1_500_000  # over the http executor's 1 MiB file threshold: a File output
PG_PASSWORD_ENV = "_FSEC_DB_PASSWORD"
AZURE_BLOCK_CASES = ("echo", "sqlite")  # their outputs.pb / Parquet file go as blocks on Azure


@dataclass
class Case:
    """How to run one executor and read what it produced.

    Attributes:
        args: Builds the command line for a run writing under ``prefix`` (raw data under ``raw``), with
            ``scratch`` a fresh local directory of that run (bundle destination, database cache).
        read: Reads the outputs under a prefix as plain values (tables as rows, files as bytes).
        reads: Text in the request path of the object the run's work depends on (inputs, database,
            bundle): the only requests the "past the retry budget" mode hits.
        env: Extra environment of the child.
        azure_block_bytes: On Azure, uploads over this size go as blocks of it (a start-up hook).
    """

    args: Callable[[str, str, Path], list[str]]
    read: Callable[[str, Path], Any]
    reads: str = "inputs.pb"
    env: dict[str, str] = field(default_factory=dict)
    azure_block_bytes: int = 8 * 1024


@dataclass(frozen=True)
class Mode:
    """A fault mix: rate, kinds and scope of :class:`faultproxy.RandomFaults`, and the child's retry settings.

    Attributes:
        kinds: The fault kinds drawn from (``()``: every kind of the store's mix but those in ``exclude``).
        target: Which requests may be hit: ``"all"``, ``"data reads"`` (those of :attr:`Case.reads`) or
            ``"outputs.pb writes"`` (the PUTs of the commit file: Put Blob, Put Block, Put Block List).
    """

    label: str
    rate: float
    seeds: tuple[int, ...]
    kinds: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    target: str = "all"
    retries: int | None = None

    def rule(self, case: Case, seed: int, store: stores.Store) -> RandomFaults:
        """The proxy's rule for one run on ``store``."""
        scope: dict[str, str] = {}
        if self.target == "data reads":
            scope = {"path_contains": case.reads}
        elif self.target == "outputs.pb writes":
            scope = {"method": "PUT", "path_contains": "/out/outputs.pb"}
        kinds = self.kinds or tuple(kind for kind in store.faults if kind not in self.exclude)
        return RandomFaults(self.rate, seed, kinds, faults=store.faults, **scope)

    @property
    def env(self) -> dict[str, str]:
        """The child's extra environment."""
        return {} if self.retries is None else {"TASKBOX_STORAGE_RETRIES": str(self.retries)}


MODES = (
    Mode("10%", 0.10, SEEDS),
    Mode("30%", 0.30, SEEDS),
    # Most reads of the data fail twice in a row with one retry allowed: runs must end in a recoverable
    # SYSTEM error.pb (or, when a read got through, the right outputs). The commit's requests stay clean.
    # (A stall only slows a request.)
    Mode("80% of data reads, 1 retry", 0.80, FEWER_SEEDS, exclude=("stall",), target="data reads", retries=1),
    # Every PUT of outputs.pb is cut on its way up or lands and loses its answer: the run must end with
    # error.pb alone (the outputs.pb that did land is removed before error.pb is written).
    Mode(
        "all outputs.pb PUTs fail, 1 retry",
        1.0,
        FEWER_SEEDS,
        ("truncated body",),
        target="outputs.pb writes",
        retries=1,
    ),
)


# --------------------------------------------------------------------------------------------------
# The executors
# --------------------------------------------------------------------------------------------------


def _template_run(base: str, template: Any, inputs: bytes) -> Callable[[str, str, Path], list[str]]:
    """Put the template and inputs in the store (straight to the server); return the ``taskbox execute`` builder."""
    task = put(storage.join(base, "task.pb"), template.SerializeToString())
    inputs_uri = put(storage.join(base, "inputs.pb"), inputs)
    return lambda prefix, raw, scratch: execute_args(inputs_uri, prefix, task, None, "--raw-output-data-prefix", raw)


def _rows(prefix: str, name: str) -> list[dict[str, Any]]:
    return read_outputs(prefix, {name: DATASET})[name].to_arrow().to_pylist()


@contextmanager
def echo_case(base: str, tmp_path: Path) -> Iterator[Case]:
    types = {"n": INT, "s": STR, "xs": list_of(FLOAT), "m": map_of(STR)}
    # outputs.pb is about 12 KB: on Azure, two blocks and a Put Block List (AZURE_BLOCK_BYTES)
    values = {"n": 42, "s": "héllo, wörld", "xs": [0.5, -1.25, 1e300], "m": {"a": "x", "b": "y" * 12_000}}
    args = _template_run(base, make_template("echo", types, types), encode_inputs(values, types))
    yield Case(args, lambda prefix, scratch: read_outputs(prefix, types))


@contextmanager
def sqlite_case(base: str, tmp_path: Path) -> Iterator[Case]:
    db = put(storage.join(base, "db", "items.db"), Path(sqltesting.make_sqlite(tmp_path / "items.db")).read_bytes())
    query = "SELECT id, name, score, created FROM items WHERE id <= {{ .inputs.max_id }} ORDER BY id"
    template = make_template("sqlite", {"max_id": INT}, {"results": DATASET}, {"query_template": query, "uri": db})
    args = _template_run(base, template, encode_inputs({"max_id": 700}, {"max_id": INT}))

    yield Case(args, lambda prefix, scratch: _rows(prefix, "results"), reads="items.db")


@contextmanager
def sql_case(base: str, tmp_path: Path) -> Iterator[Case]:
    server = sqltesting.server("postgres")
    sqltesting.seed(server)
    query = "SELECT id, name, score, created, flag FROM items WHERE id > {{ .inputs.min_id }} ORDER BY id"
    custom = {
        "query_template": query,
        "uri": server.url,
        "secret_connect_args": {"password": {"group": "db", "key": "password"}},
    }
    template = make_template("sqlalchemy", {"min_id": INT}, {"results": DATASET}, custom)
    args = _template_run(base, template, encode_inputs({"min_id": 400}, {"min_id": INT}))
    password = sqltesting.servers_module().PASSWORD
    yield Case(args, lambda prefix, scratch: _rows(prefix, "results"), env={PG_PASSWORD_ENV: password})


@contextmanager
def http_case(base: str, tmp_path: Path) -> Iterator[Case]:
    with httptesting.running() as server:
        custom = {"url": f"{server.base}/big?n={HTTP_BODY_BYTES}", "body_output": "body", "status_output": "status"}
        template = make_template("http", {}, {"body": FILE, "status": INT}, custom)
        args = _template_run(base, template, b"")

        def read(prefix: str, scratch: Path) -> Any:
            out = read_outputs(prefix, {"body": FILE, "status": INT})
            return out["status"], storage.read_bytes(out["body"].uri)

        # Three blocks of 512 KiB on Azure: a write is retried whole, so 190 blocks of 8 KiB would never all
        # get through at 10% (0.9 ** 190), and every run would end in error.pb.
        env = {"TASKBOX_HTTP_ALLOW": "127.0.0.1/32"}
        yield Case(args, read, reads="task.pb", env=env, azure_block_bytes=512 * 1024)


@contextmanager
def task_case(base: str, tmp_path: Path) -> Iterator[Case]:
    tasks = sample_tasks()
    task = tasks.write_invoice
    bundle = upload_bundle(str(SAMPLE_PROJECT), storage.join(base, "bundles"))
    order = tasks.Order(item="fountain pen", quantity=7, unit_price=12.25)
    inputs = put(storage.join(base, "inputs.pb"), encode({"order": order, "currency": "CHF"}, task.inputs, base))

    def run_args(prefix: str, raw: str, scratch: Path) -> list[str]:
        # A fresh destination per run: every run downloads and extracts the bundle through the proxy.
        args = substitute(
            task.container_args(bundle=bundle, dest_dir=str(scratch / "dest")),
            input=inputs,
            outputPrefix=prefix,
            rawOutputDataPrefix=raw,
            checkpointOutputPrefix=storage.join(raw, "_flytecheckpoints"),
            prevCheckpointPrefix='""',
        )
        assert args[0] == "taskbox"
        return [TASKBOX, *args[1:]]

    def read(prefix: str, scratch: Path) -> bytes:
        invoice = read_outputs_by_hints(prefix, task.outputs, str(scratch))["o0"]
        return storage.read_bytes(invoice.uri)

    yield Case(run_args, read, reads="/bundles/")


CASES: dict[str, Callable[[str, Path], AbstractContextManager[Case]]] = {
    "echo": echo_case,
    "sqlite": sqlite_case,
    "sql": sql_case,
    "http": http_case,
    "@task bundle": task_case,
}


# --------------------------------------------------------------------------------------------------
# Runs
# --------------------------------------------------------------------------------------------------


def _recoverable_system(error: errors_pb2.ContainerError) -> bool:
    # ledger.recoverable_system reads errors_pb2.ExecutionError, which flyteidl defines in execution_pb2.
    return error.kind == errors_pb2.ContainerError.RECOVERABLE and error.origin == execution_pb2.ExecutionError.SYSTEM


def _run(
    case: Case, store: stores.Store, endpoint: str, prefix: str, raw: str, scratch: Path, **env: str
) -> subprocess.CompletedProcess[str]:
    """One run of the entrypoint CLI with its traffic for ``store`` sent to ``endpoint`` (a proxy)."""
    scratch.mkdir(parents=True)
    # A database cache of its own: every run downloads the database (sqlite) through the proxy.
    env = {**store.child_env(endpoint), "TASKBOX_CACHE_DIR": str(scratch / "cache"), **case.env, **env}
    child_env = subprocess_env(**env)
    return subprocess.run(
        case.args(prefix, raw, scratch),
        cwd=scratch,  # not the repository: a bundled task must come from its bundle
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env=child_env,
    )


@dataclass
class FaultyRun:
    """One run under faults: where it writes, what it met, and the verdict."""

    family: str
    name: str
    mode: Mode
    rule: RandomFaults
    verdict: str = ""
    detail: str = ""


def _faulty_run(
    store: stores.Store, case: Case, reference: Any, run: FaultyRun, base: str, tmp: Path, **env: str
) -> None:
    """Run once through a proxy of its own with ``run.rule``, judge the prefix, check for unfinished uploads."""
    prefix, raw, scratch = storage.join(base, run.name, "out"), storage.join(base, run.name, "raw"), tmp / run.name
    with FaultProxy(store.endpoint, run.rule) as proxy:
        try:
            proc = _run(case, store, proxy.endpoint, prefix, raw, scratch, **env, **run.mode.env)
        except subprocess.TimeoutExpired as exc:
            run.verdict, run.detail = LOST, f"{run.name} {dict(run.rule.injected)}: no end after {exc.timeout} s"
            return
    problems: list[str] = []

    def outputs_ok() -> bool:
        try:
            return case.read(prefix, scratch) == reference
        except Exception as exc:  # noqa: BLE001 - an unreadable output makes the run lost, with the reason
            problems.append(f"outputs unreadable: {exc!r}")
            return False

    run.verdict, detail = judge(prefix, outputs_ok=outputs_ok, error_ok=_recoverable_system)
    if run.verdict != LOST and (listed := store.objects_under(prefix)) != {f"{run.verdict}.pb"}:
        run.verdict, problems = LOST, [*problems, f"listed under the output prefix: {sorted(listed)}"]
    unfinished = sorted(store.unfinished(storage.join(base, run.name)))
    if unfinished:
        # S3: s3fs aborts a failed multipart upload. Azure: staged blocks cannot be aborted (readers never see
        # them), but a commit that succeeded leaves none under the output prefix.
        under_prefix = [key for key in unfinished if f"/{run.name}/out/" in f"/{key}"]
        if store.aborts_unfinished or (run.verdict == OUTPUTS and under_prefix):
            run.verdict = LOST
        problems.append(f"unfinished uploads: {unfinished}")
    stderr = "\n".join(proc.stderr.splitlines()[-15:])
    run.detail = f"{run.name} {dict(run.rule.injected)}: {detail} {' '.join(problems)}\n{stderr}"


#: (store, executor) pairs: S3 runs every executor, Azure three of them (all with TASKBOX_SOAK=1).
STORE_CASES = [("s3", name) for name in CASES] + [
    ("azure", name) for name in (CASES if SOAK else ("echo", "sqlite", "@task bundle"))
]


@pytest.mark.timeout(900 if SOAK else 280)
@pytest.mark.parametrize(("store_name", "executor"), STORE_CASES, ids=[f"{s}-{e}" for s, e in STORE_CASES])
def test_runs_under_storage_faults_end_correct_or_recoverable(
    store_name: str, executor: str, request: pytest.FixtureRequest, unique_prefix: str, tmp_path: Path
) -> None:
    store = stores.get(request, store_name)
    base = store.uri(unique_prefix)
    with CASES[executor](base, tmp_path) as case:
        env = store.hook_env(tmp_path / "hook", case.azure_block_bytes) if store.name == "azure" else {}
        with FaultProxy(store.endpoint) as proxy:  # the fault-free reference goes the same way
            reference_prefix = storage.join(base, "reference", "out")
            scratch = tmp_path / "reference"
            raw = storage.join(base, "reference", "raw")
            proc = _run(case, store, proxy.endpoint, reference_prefix, raw, scratch, **env)
            assert proc.returncode == 0 and proxy.requests, proc.stderr
            if store.name == "azure" and executor in AZURE_BLOCK_CASES:  # the hook took: a blob made of blocks
                assert any(path.endswith("?comp=blocklist") for _, path in proxy.requests), proxy.requests
        reference = case.read(reference_prefix, scratch)
        runs = [
            FaultyRun(
                store.family(f"storage faults {mode.label} / {executor}"),
                f"mode{number}-seed{seed}",
                mode,
                # Seeds differ per store, executor and mode, so the runs do not all meet the same fault pattern.
                mode.rule(case, zlib.crc32(f"{store.family(executor)}/{mode.label}/{seed}".encode()), store),
            )
            for number, mode in enumerate(MODES)
            for seed in mode.seeds
        ]
        # A few runs at a time, each through its own proxy (so each rule counts the faults of one run).
        with ThreadPoolExecutor(max_workers=PARALLEL_RUNS) as pool:
            for future in [
                pool.submit(_faulty_run, store, case, reference, run, base, tmp_path, **env) for run in runs
            ]:
                future.result()
    for run in runs:
        LEDGER.record(run.family, run.verdict, faults=run.rule.total, detail=run.detail)
    lost = [run.detail for run in runs if run.verdict == LOST]
    assert not lost, "\n\n".join(lost)


# --------------------------------------------------------------------------------------------------
# The proxy itself
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("faults", [FAULTS, AZURE_FAULTS], ids=["s3", "azure"])
def test_random_faults_are_seeded_and_counted(faults: dict[str, Any]) -> None:
    requests = [ProxyRequest(n, "PUT" if n % 3 else "GET", f"/b/k{n}", {"Content-Length": "10"}) for n in range(1, 301)]

    def draw(seed: int) -> tuple[list[Any], RandomFaults]:
        rule = RandomFaults(0.3, seed, faults=faults)
        return [rule(request) for request in requests], rule

    first, rule = draw(7)
    assert draw(7)[0] == first  # the same seed meets the same requests with the same faults
    assert draw(8)[0] != first
    assert rule.total == sum(action is not None for action in first)
    assert 45 <= rule.total <= 135 and set(rule.injected) == set(faults)


def test_proxy_keeps_connections_alive_through_chunked_and_100_continue_bodies(
    s3_server: Any, unique_prefix: str
) -> None:
    key = f"{unique_prefix}/chunked.bin"
    with FaultProxy(s3_server.endpoint) as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", int(proxy.endpoint.rsplit(":", 1)[1]), timeout=30)
        try:
            body = iter([b"abc", b"", b"defg" * 1000])  # sent chunked
            conn.request("PUT", f"/{s3_server.bucket}/{key}", body=body, headers={"Expect": "100-continue"})
            put_answer = conn.getresponse()
            put_answer.read()
            first_socket = conn.sock
            conn.request("HEAD", f"/{s3_server.bucket}/{key}")
            head_answer = conn.getresponse()
            head_answer.read()
            assert conn.sock is first_socket  # both requests on one connection
        finally:
            conn.close()
    assert put_answer.status == 200 and not put_answer.will_close and head_answer.status in (200, 403)
    stored = s3_server.client().get_object(Bucket=s3_server.bucket, Key=key)["Body"].read()
    assert stored == b"abc" + b"defg" * 1000
    assert [method for method, _ in proxy.requests] == ["PUT", "HEAD"]
