"""Kill tests at chosen phases: SIGTERM and SIGKILL during download, execution, upload and commit, then a rerun.

Why: Kubernetes stops pods with SIGTERM and, after the grace period, SIGKILL; a node can also vanish
(SIGKILL without warning), and a restarted pod reruns the *same* attempt into the *same* output prefix.
Propeller reads ``error.pb`` first, so a stale ``error.pb`` beside a rerun's ``outputs.pb`` would fail an
attempt that succeeded, and a partial ``outputs.pb`` (or one referencing a half-written table) would be a
wrong answer. Each test stops the real ``taskbox execute`` (the ``sqlite`` task of
tests/reliability/killrun.py, on moto or on Azurite behind the fault proxy) in one phase and reruns it.
S3 is stopped in every phase below; Azure Blob Storage (issue 21) while ``inputs.pb`` downloads, while the
Parquet file uploads and at the commit, and inside a commit made of blocks.

Phases are reached deterministically: the proxy stalls the GET of ``inputs.pb`` or of the database
(download), the PUT of the Parquet file under the raw output prefix (upload) or of ``outputs.pb``
(commit); a slow query is caught by its log line (execution). A 14 MB table is uploaded in 5 MiB parts
(a start-up hook lowers the part size in the CLI) and stopped while part 2 is in flight. On Azure a
start-up hook makes every upload over 64 bytes go as blocks, so ``outputs.pb`` is committed by a Put Block
List, held by the proxy when the signal lands.

Invariants (besides killrun's, for every rerun):
    * After SIGTERM: exit code 143 and ``error.pb`` alone with ``SYSTEM:Terminated``, RECOVERABLE; at the
      commit (SIGTERM does not interrupt a commit) ``outputs.pb`` alone with a clean run's outputs. The
      run removes its scratch directory; a stalled download or upload does not hold up the exit.
    * A commit whose PUT never answers still ends at 143 once the grace period is over.
    * SIGTERM aborts a multipart upload it cuts short.
    * Azure: a kill at the Put Block List of ``outputs.pb`` leaves it whole or absent, never partial: after
      SIGTERM the commit completes (``outputs.pb`` alone); after SIGKILL the listing under the prefix is
      empty although the blocks were staged (uncommitted blocks are invisible), and the rerun's commit
      leaves no staged block under the prefix.

What a killed run leaves that a rerun does not clean up, by design: a Parquet file in the killed run's
own random folder under the raw output prefix (each run writes a fresh ``<raw>/<32 hex>/00000`` and the
rerun's ``outputs.pb`` references only its own; Flyte's raw prefix is per attempt); after SIGKILL, its
scratch directory under ``$TMPDIR`` and, if it was uploading in parts, its unfinished multipart upload
(invisible and never referenced, but billed until the bucket's AbortIncompleteMultipartUpload rule). On
Azure, blocks a killed upload staged (after either signal: there is no abort) until the service discards
them, a week later; they are never listed nor read.
"""

from __future__ import annotations

import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from faultproxy import FailFirst, Stall
from reliability import stores
from reliability.killrun import (  # noqa: F401 - azure_task, healthy, s3_task are fixtures
    TERMINATED,
    WAIT_S,
    Scenario,
    Started,
    azure_task,
    bucket_and_key,
    check_killed_state,
    equals_reference,
    healthy,
    objects_under,
    remote_scenario,
    remote_task,
    rerun,
    s3_task,
    scratch_dirs,
    start,
    terminated,
    unfinished_uploads,
)
from reliability.ledger import ERROR, LEDGER, LOST, OUTPUTS, judge
from taskbox import storage

pytestmark = [pytest.mark.servers, pytest.mark.timeout(120)]

# Several hundred ms of CPU inside SQLite, so a signal sent when the query starts lands while it runs.
SLOW_QUERY = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {{ .inputs.max_id }} * 5000) "
    "SELECT x % 7 AS k, count(*) AS n FROM c GROUP BY k ORDER BY k"
)


#: The slow query (600,000 recursive rows) on S3, with its clean run done.
s3_slow_task = pytest.fixture(remote_task("s3", SLOW_QUERY, 120), scope="module", name="s3_slow_task")
AZURE_BLOCK_BYTES = 64  # outputs.pb (about 110 bytes) goes as two blocks on the Azure blocks scenario
#: The fast query on Azure with uploads over 64 bytes in blocks (outputs.pb, error.pb, the Parquet file).
azure_blocks_task = pytest.fixture(
    remote_task("azure", block_bytes=AZURE_BLOCK_BYTES), scope="module", name="azure_blocks_task"
)


@dataclass(frozen=True)
class Phase:
    """A point of the run reached deterministically: a stalled request, or the query's log line.

    Attributes:
        name: For families and ids.
        method: The stalled request's method (``None``: the phase is the query, caught by its log line).
        path: The stalled request's key, relative to the scenario's base (or to the output prefix).
        in_prefix: ``path`` is relative to the output prefix.
        slow: Run the slow query (the phase is the query itself).
        query: The stalled request's query string (``comp=blocklist``: Azure's Put Block List).
    """

    name: str
    method: str | None = None
    path: str = ""
    in_prefix: bool = False
    slow: bool = False
    query: str = ""

    def stall(self, scenario: Scenario, prefix: str) -> tuple[FailFirst, Stall] | None:
        """The proxy rule that holds this phase's request, and its stall (``None`` for the query phase)."""
        if self.method is None:
            return None
        stall = Stall(after_bytes=1)
        _, key = bucket_and_key(storage.join(prefix if self.in_prefix else scenario.base, self.path))
        path = f"{key}?{self.query}" if self.query else key
        return FailFirst(1, stall, method=self.method, path_contains=path), stall


PHASES = [
    Phase("download inputs.pb", "GET", "inputs.pb"),
    Phase("download database", "GET", "db/items.db"),
    Phase("execution", slow=True),
    Phase("upload", "PUT", "raw/"),
    Phase("commit", "PUT", "outputs.pb", in_prefix=True),
]
#: (store, phase): every phase on S3; on Azure the reads, the upload (one Put Blob) and the commit (one Put Blob).
STORE_PHASES = [("s3", phase) for phase in PHASES] + [
    ("azure", phase) for phase in PHASES if phase.name in ("download inputs.pb", "upload", "commit")
]
PHASE_IDS = [f"{store}-{phase.name.replace(' ', '-')}" for store, phase in STORE_PHASES]


def stop_at(phase: Phase, scenario: Scenario, prefix: str, pod: Path, sig: int) -> tuple[int, Started]:
    """Start the task, wait until it is in ``phase``, send ``sig``; return the exit code once it ended.

    A stalled request is released once the process has exited, except the commit's after SIGTERM: the
    handler does not interrupt a commit, so the commit must be let through.
    """
    fault_proxy = scenario.proxy
    assert fault_proxy is not None, "the phases are reached through the scenario's proxy"
    held = phase.stall(scenario, prefix)
    fault_proxy.rule = held[0] if held else None
    run = start(scenario, prefix, pod)
    if held:
        run.wait_for(held[1].stalled.is_set, f"the {phase.name} request")
    else:
        run.wait_for(lambda: "running query" in run.stderr(), "the query's start")
    run.proc.send_signal(sig)
    if held and phase.in_prefix and sig == signal.SIGTERM:
        time.sleep(0.5)  # let the handler record the signal before the commit may go on
        held[1].release.set()
    code = run.finish()
    if held:
        held[1].release.set()
        assert held[1].finished.wait(WAIT_S), "the proxy never finished the stalled request"
    fault_proxy.rule = None
    return code, run


def phase_task(request: pytest.FixtureRequest, store: str, phase: Phase) -> Scenario:
    """The scenario a phase is reached on: the slow query for the execution, else the fast one."""
    scenario: Scenario = request.getfixturevalue(f"{store}_slow_task" if phase.slow else f"{store}_task")
    return scenario


def family(scenario: Scenario, name: str) -> str:
    """The ledger family of a run on the scenario's store (`` on azure`` appended off S3)."""
    assert scenario.store is not None
    return scenario.store.family(name)


@pytest.mark.parametrize(("store", "phase"), STORE_PHASES, ids=PHASE_IDS)
def test_sigterm_then_rerun(store: str, phase: Phase, healthy, request, tmp_path: Path) -> None:  # noqa: F811
    """SIGTERM: exit 143 and a recoverable Terminated error (at the commit: the outputs); a rerun succeeds."""
    scenario = phase_task(request, store, phase)
    prefix = scenario.prefix("sigterm")
    code, run = stop_at(phase, scenario, prefix, tmp_path, signal.SIGTERM)
    verdict, detail = judge(prefix, outputs_ok=equals_reference(scenario, prefix), error_ok=terminated)
    LEDGER.record(family(scenario, f"SIGTERM / {phase.name}"), verdict, faults=1, detail=detail)
    assert verdict != LOST, f"{detail}\n{run.stderr()}"
    assert code == TERMINATED, run.stderr()
    # Where the signal landed decides which commit is right: the outputs only once they are complete.
    assert verdict == (OUTPUTS if phase.in_prefix else ERROR), run.stderr()
    assert objects_under(scenario, prefix) == {f"{verdict}.pb"}
    assert scratch_dirs(tmp_path) == [], "a terminated run must remove its scratch directory"
    rerun(scenario, prefix, tmp_path, family(scenario, f"SIGTERM+rerun / {phase.name}"))


@pytest.mark.parametrize(("store", "phase"), STORE_PHASES, ids=PHASE_IDS)
def test_sigkill_then_rerun(store: str, phase: Phase, healthy, request, tmp_path: Path) -> None:  # noqa: F811
    """SIGKILL (a lost node, an expired grace period): whatever it left, a rerun into the prefix succeeds."""
    scenario = phase_task(request, store, phase)
    prefix = scenario.prefix("sigkill")
    code, run = stop_at(phase, scenario, prefix, tmp_path, signal.SIGKILL)
    assert code == -signal.SIGKILL, run.stderr()
    check_killed_state(scenario, prefix)
    rerun(scenario, prefix, tmp_path, family(scenario, f"SIGKILL+rerun / {phase.name}"))


def either(*rules: FailFirst) -> Callable[[Any], Any]:
    """A proxy rule applying the first of ``rules`` that matches a request."""
    return lambda request: next((action for rule in rules if (action := rule(request)) is not None), None)


@pytest.mark.parametrize("commit_file", ["outputs.pb", "error.pb"])
def test_sigterm_while_the_commit_hangs(commit_file: str, healthy, s3_task: Scenario, tmp_path) -> None:  # noqa: F811
    """The commit's PUT never answers: the watchdog still ends the run with 143 after the grace period.

    ``error.pb``: SIGTERM lands while ``inputs.pb`` downloads, and the error document's PUT hangs.
    ``outputs.pb``: SIGTERM lands while ``outputs.pb`` is being written (the commit is not interrupted).
    The held PUT is released only after the process is gone; whether it then lands (its body was sent
    whole) or not, the prefix holds one valid commit or nothing, and a rerun succeeds. Only the rerun is
    recorded: "nothing" is a legitimate state after a forced exit, but not a verdict of a finished run.
    """
    prefix = s3_task.prefix("hung")
    commit_rule, hung = Phase("commit", "PUT", commit_file, in_prefix=True).stall(s3_task, prefix)
    first, rules = hung, [commit_rule]
    if commit_file == "error.pb":
        inputs_rule, first = PHASES[0].stall(s3_task, prefix)
        rules.insert(0, inputs_rule)
    proxy = s3_task.proxy
    assert proxy is not None
    proxy.rule = either(*rules)
    run = start(s3_task, prefix, tmp_path, TASKBOX_TERM_GRACE_S="1")
    run.wait_for(first.stalled.is_set, "the stalled request")
    run.proc.send_signal(signal.SIGTERM)
    code = run.finish()
    for stall in {id(s): s for s in (first, hung)}.values():
        stall.release.set()
        assert stall.finished.wait(WAIT_S), "the proxy never finished the stalled request"
    proxy.rule = None
    assert code == TERMINATED, run.stderr()
    assert hung.stalled.is_set(), f"the {commit_file} PUT was never attempted:\n{run.stderr()}"
    check_killed_state(s3_task, prefix)
    rerun(s3_task, prefix, tmp_path, f"SIGTERM, {commit_file} PUT hung +rerun", faults=2)


# --------------------------------------------------------------------------------------------------
# A multipart upload cut short
# --------------------------------------------------------------------------------------------------

PART_MIB = 5  # the S3 minimum part size
BIG_QUERY = "SELECT id, payload FROM blobs WHERE id <= {{ .inputs.max_id }} ORDER BY id"


@pytest.fixture(scope="module")
def s3_big_task(request, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    """A table of about 14 MB of incompressible text, uploaded in 5 MiB parts; clean run done.

    The parts come from a start-up hook the CLI's interpreter loads (PYTHONPATH), as the storage tests get
    them with monkeypatch (tests/storage/test_storage_remote.py, small_parts).
    """
    store = stores.get(request, "s3")
    tmp = tmp_path_factory.mktemp("s3-big")
    db = tmp / "blobs.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE blobs (id INTEGER PRIMARY KEY, payload TEXT NOT NULL)")
        conn.execute(
            "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 300000) "
            "INSERT INTO blobs SELECT i, lower(hex(randomblob(24))) FROM c"
        )
    conn.close()
    env = store.hook_env(tmp / "hook", PART_MIB * 2**20)
    with remote_scenario(store, tmp, BIG_QUERY, 300_000, db=db, **env) as scenario:
        yield scenario


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_kill_during_a_multipart_upload(sig, healthy, s3_big_task: Scenario, tmp_path: Path) -> None:  # noqa: F811
    """Stopped while part 2 of the table is in flight: SIGTERM aborts the upload; after SIGKILL a rerun succeeds.

    After SIGKILL the killed run's multipart upload stays open (see below): the one promise about
    dangling uploads this suite cannot keep from inside the process.
    """
    scenario = s3_big_task
    prefix = scenario.prefix(f"multipart-{sig.name.lower()}")
    phase = Phase("multipart upload", "PUT", "raw/")
    rule, stall = phase.stall(scenario, prefix)
    proxy = scenario.proxy
    assert proxy is not None
    proxy.rule = lambda request: rule(request) if "partNumber=2" in request.path else None
    run = start(scenario, prefix, tmp_path)
    run.wait_for(stall.stalled.is_set, "part 2 of the upload")
    run.proc.send_signal(sig)
    code = run.finish()
    stall.release.set()
    assert stall.finished.wait(WAIT_S), "the proxy never finished the stalled request"
    proxy.rule = None
    if sig == signal.SIGTERM:
        verdict, detail = judge(prefix, outputs_ok=equals_reference(scenario, prefix), error_ok=terminated)
        LEDGER.record("SIGTERM / multipart upload", verdict, faults=1, detail=detail)
        assert verdict == ERROR and code == TERMINATED, f"{detail}\n{run.stderr()}"
        assert unfinished_uploads(scenario) == [], "SIGTERM must abort the multipart upload it cut short"
        stale = frozenset()
    else:
        assert code == -signal.SIGKILL, run.stderr()
        check_killed_state(scenario, prefix)
        # Nothing runs after SIGKILL, so nothing aborts the upload, and the rerun writes a new random
        # folder: the killed run's upload stays open until the bucket's lifecycle rule
        # (AbortIncompleteMultipartUpload) ends it. It is invisible, never referenced, but billed.
        stale = frozenset(unfinished_uploads(scenario))
        _, raw = bucket_and_key(scenario.raw)
        assert len(stale) == 1 and next(iter(stale)).startswith(raw + "/"), stale
    try:
        rerun(scenario, prefix, tmp_path, f"{sig.name}+rerun / multipart upload", stale_uploads=stale)
    finally:
        abort_uploads(scenario, stale)  # what the lifecycle rule would do; keeps the other tests' checks exact


def abort_uploads(scenario: Scenario, keys: frozenset[str]) -> None:
    """Abort the unfinished multipart uploads of ``keys`` under the scenario's bucket."""
    bucket, base = bucket_and_key(scenario.base)
    assert scenario.store is not None
    client = scenario.store.server.client()
    for upload in client.list_multipart_uploads(Bucket=bucket, Prefix=base).get("Uploads", []):
        if upload["Key"] in keys:
            client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])


# --------------------------------------------------------------------------------------------------
# Azure: a commit made of blocks
# --------------------------------------------------------------------------------------------------

BLOCK_PHASES = [
    Phase("commit in blocks, Put Block", "PUT", "outputs.pb", in_prefix=True, query="comp=block&"),
    Phase("commit in blocks, Put Block List", "PUT", "outputs.pb", in_prefix=True, query="comp=blocklist"),
]


@pytest.mark.parametrize("phase", BLOCK_PHASES, ids=["put-block", "put-block-list"])
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_kill_during_a_commit_in_blocks_on_azure(
    sig,
    phase: Phase,
    healthy,  # noqa: F811
    azure_blocks_task: Scenario,
    tmp_path: Path,
) -> None:
    """The signal lands while the first block of ``outputs.pb``, or the Put Block List that commits them, is held.

    SIGTERM does not interrupt a commit: the held request goes on and ``outputs.pb`` is whole. SIGKILL: a held
    Put Block still lands (its body was sent) but no Put Block List follows, so nothing is listed under the
    prefix although ``outputs.pb`` has staged blocks; a held Put Block List lands whole or not at all. Either
    way ``outputs.pb`` is listed whole or not listed, and the rerun's commit leaves no staged block under it.
    """
    scenario = azure_blocks_task
    prefix = scenario.prefix(f"blocks-{sig.name.lower()}")
    code, run = stop_at(phase, scenario, prefix, tmp_path, sig)
    _, key = bucket_and_key(storage.join(prefix, "outputs.pb"))
    stale = frozenset(unfinished_uploads(scenario))
    if sig == signal.SIGTERM:
        verdict, detail = judge(prefix, outputs_ok=equals_reference(scenario, prefix), error_ok=terminated)
        LEDGER.record(family(scenario, f"SIGTERM / {phase.name}"), verdict, faults=1, detail=detail)
        assert verdict == OUTPUTS and code == TERMINATED, f"{detail}\n{run.stderr()}"
    else:
        assert code == -signal.SIGKILL, run.stderr()
        state = check_killed_state(scenario, prefix)
        assert state in (("nothing",) if "comp=block&" in phase.query else ("nothing", OUTPUTS)), state
        assert objects_under(scenario, prefix) == ({"outputs.pb"} if state == OUTPUTS else set())
        if state == "nothing":
            assert key in stale, f"the staged blocks of outputs.pb: {sorted(stale)}"  # invisible, never listed
    rerun(scenario, prefix, tmp_path, family(scenario, f"{sig.name}+rerun / {phase.name}"), stale_uploads=stale)
