"""Kill tests at random points: SIGTERM and SIGKILL at seeded delays after the start, then a rerun.

Why: the phases of tests/reliability/test_kill_rerun.py are where we *think* a kill matters; a signal
can land anywhere else too (interpreter start-up, imports, the literal engine, between the data upload
and the commit, after the commit). Each example sends the signal a seeded fraction (0 to 1.1) of a clean
run's wall time after the start, so the points spread over the whole run on any machine; the examples
are derandomised (fixed seeds) and bounded: per signal 1 on S3 and 2 on local storage in ``make test``,
20 each with ``TASKBOX_SOAK=1``.

Invariants (besides tests/reliability/killrun.py's, for every rerun):
    * The outcome fits where the signal landed: finished first (a clean run's outputs); SIGTERM handled
      (exit 143 and ``error.pb`` with ``SYSTEM:Terminated``, or ``outputs.pb`` once the outputs were
      complete); killed (SIGKILL, or SIGTERM before the handler is installed at interpreter start-up:
      any allowed state, and in the SIGTERM case nothing at all).
    * On local storage (``file://``) a rerun leaves nothing beside ``outputs.pb`` but the temp file of a
      local commit the kill cut short (``.outputs.pb.<pid>.tmp``: ``storage.local.write_bytes`` writes it,
      fsyncs it and renames it, so the final name is never partial). The rerun does not remove another
      process's temp file; it is not a commit file, so neither Flyte nor taskbox ever reads it.
"""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest

from reliability.killrun import (  # noqa: F401 - healthy, local_task, proxy, s3_task are fixtures
    TERMINATED,
    Scenario,
    check_killed_state,
    equals_reference,
    healthy,
    local_path,
    local_task,
    never,
    proxy,
    rerun,
    s3_task,
    start,
    terminated,
)
from reliability.ledger import LEDGER, LOST, OUTPUTS, SOAK, judge

pytestmark = pytest.mark.timeout(120)

EXAMPLES = 20 if SOAK else 2
S3_EXAMPLES = 20 if SOAK else 1  # S3 also has every phase covered deterministically (test_kill_rerun.py)
SIGNALS = [signal.SIGKILL, signal.SIGTERM]


def fraction_for(sig: signal.Signals, example: int, where: str) -> float:
    """The seeded point of ``example``, as a fraction of a clean run's wall time."""
    return random.Random(f"taskbox-kill-{where}-{sig.name}-{example}").uniform(0.0, 1.1)


def kill_at_random(scenario: Scenario, sig: signal.Signals, example: int, pod: Path, where: str) -> None:
    """Send ``sig`` at the example's point, judge what the run left, rerun, judge the rerun."""
    prefix = scenario.prefix(f"random-{sig.name.lower()}")
    run = start(scenario, prefix, pod)
    time.sleep(fraction_for(sig, example, where) * scenario.clean_s)
    sent = run.proc.poll() is None
    if sent:
        run.proc.send_signal(sig)
    code = run.finish()
    family = f"random {sig.name} / {where}"
    if code == 0:  # finished before the signal arrived
        verdict, detail = judge(prefix, outputs_ok=equals_reference(scenario, prefix), error_ok=never)
        LEDGER.record(family, verdict, faults=0, detail=detail)
        assert verdict == OUTPUTS, f"{detail}\n{run.stderr()}"
    elif code == TERMINATED and sig == signal.SIGTERM:
        verdict, detail = judge(prefix, outputs_ok=equals_reference(scenario, prefix), error_ok=terminated)
        LEDGER.record(family, verdict, faults=1, detail=detail)
        assert verdict != LOST, f"{detail}\n{run.stderr()}"
    else:
        assert sent and code == -sig, f"exit code {code}:\n{run.stderr()}"
        state = check_killed_state(scenario, prefix)
        if sig == signal.SIGTERM:
            assert state == "nothing", "SIGTERM ended the process before its handler, yet something was committed"
    litter = frozenset(f".{name}.{run.proc.pid}.tmp" for name in ("outputs.pb", "error.pb"))
    rerun(scenario, prefix, pod, f"random {sig.name}+rerun / {where}", faults=int(sent), litter=litter)


@pytest.mark.servers
@pytest.mark.parametrize("example", range(S3_EXAMPLES))
@pytest.mark.parametrize("sig", SIGNALS, ids=[s.name for s in SIGNALS])
def test_random_kill_then_rerun_on_s3(sig, example, healthy, s3_task: Scenario, tmp_path: Path) -> None:  # noqa: F811
    kill_at_random(s3_task, sig, example, tmp_path, "sqlite s3")


@pytest.mark.parametrize("example", range(EXAMPLES))
@pytest.mark.parametrize("sig", SIGNALS, ids=[s.name for s in SIGNALS])
def test_random_kill_then_rerun_on_local_storage(sig, example, local_task: Scenario, tmp_path: Path) -> None:  # noqa: F811
    kill_at_random(local_task, sig, example, tmp_path, "sqlite file://")


def test_leftover_of_a_killed_local_commit(local_task: Scenario, tmp_path: Path) -> None:  # noqa: F811
    """The temp files a SIGKILL inside a local commit leaves do not disturb the rerun (which may keep them)."""
    prefix = local_task.prefix("leftover")
    directory = Path(local_path(prefix))
    directory.mkdir(parents=True)
    litter = frozenset({".outputs.pb.4194300.tmp", ".error.pb.4194301.tmp"})
    for name in litter:
        (directory / name).write_bytes(b"\x0a\x07partial")
    rerun(local_task, prefix, tmp_path, "SIGKILL in local commit +rerun / sqlite file://", litter=litter)
