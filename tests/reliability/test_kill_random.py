"""Kill tests at random points (S3 and ``file://``) and inside a local commit, then a rerun.

Why: the phases of tests/reliability/test_kill_rerun.py are where we *think* a kill matters; a signal
can land anywhere else too (interpreter start-up, imports, the literal engine, between the data upload
and the commit, after the commit). Each example sends the signal a seeded fraction (0 to 0.9) of a clean
run's wall time after the start, so the points spread over the whole run on any machine; the examples
are derandomised (fixed seeds) and bounded: per signal 1 on S3 and 2 on local storage in ``make test``,
20 each with ``TASKBOX_SOAK=1``.

Invariants (besides tests/reliability/killrun.py's, for every rerun):
    * The outcome fits where the signal landed: finished first (a clean run's outputs); SIGTERM handled
      (exit 143 and ``error.pb`` with ``SYSTEM:Terminated``, or ``outputs.pb`` once the outputs were
      complete); killed (SIGKILL, or SIGTERM while Python's handler is not in place: before it is
      installed at interpreter start-up, or after finalisation restored the default once the run had
      committed; any allowed state, and in the SIGTERM case nothing or the finished run's outputs).
    * On local storage (``file://``) a commit is a temp file beside ``outputs.pb``, fsynced and renamed
      (``storage.local.write_bytes``). A run stopped inside it (caught by polling for the temp file while
      the ``echo`` task writes a 48 MB ``outputs.pb``) never leaves a partial ``outputs.pb``: after SIGTERM
      the commit completes (exit 143), after SIGKILL only ``.outputs.pb.<pid>.tmp`` is left. The rerun
      leaves nothing beside ``outputs.pb`` but that temp file: it does not remove another process's temp
      files, and since it is not a commit file neither Flyte nor taskbox ever reads it. It is litter, as
      large as the outputs, until the directory goes.
"""

from __future__ import annotations

import os
import random
import signal
import time
from pathlib import Path

import pytest

from helpers import encode_inputs, make_template, read_outputs, simple
from reliability.killrun import (  # noqa: F401 - healthy, local_task, s3_task are fixtures
    TERMINATED,
    Scenario,
    check_killed_state,
    equals_reference,
    healthy,
    local_path,
    local_task,
    make_scenario,
    never,
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
ECHO_TYPES = {"text": simple("STRING")}


def fraction_for(sig: signal.Signals, example: int, where: str) -> float:
    """The seeded point of ``example``, as a fraction of a clean run's wall time."""
    return random.Random(f"taskbox-kill-{where}-{sig.name}-{example}").uniform(0.0, 0.9)


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
            # Python's handler is not installed yet (interpreter start-up) or no longer (finalisation
            # restores the default after the commit): nothing, or the outputs of a run that had finished.
            assert state == "nothing" or (state == OUTPUTS and "committed" in run.stderr()), state
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


@pytest.fixture(scope="module")
def local_big_echo(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """The ``echo`` task returning a 48 MB string on local storage: its ``outputs.pb`` takes a while to write."""
    tmp = tmp_path_factory.mktemp("local-echo")
    text = os.urandom(24 * 2**20).hex()
    template = make_template("echo", ECHO_TYPES, ECHO_TYPES)
    return make_scenario(
        (tmp / "store").as_uri(),
        template,
        encode_inputs({"text": text}, ECHO_TYPES),
        tmp / "clean-pod",
        read=lambda prefix: read_outputs(prefix, ECHO_TYPES)["text"],
    )


@pytest.mark.parametrize("sig", SIGNALS, ids=[s.name for s in SIGNALS])
def test_kill_during_a_local_commit(sig, local_big_echo: Scenario, tmp_path: Path) -> None:
    """The signal lands while ``outputs.pb`` is being written (its temp file exists, the rename has not run).

    SIGTERM does not interrupt a commit: ``outputs.pb`` is completed and renamed, exit 143. SIGKILL leaves
    the temp file and never a partial ``outputs.pb``; the rerun commits beside it and leaves it there.
    """
    scenario = local_big_echo
    prefix = scenario.prefix(f"local-commit-{sig.name.lower()}")
    directory = Path(local_path(prefix))
    run = start(scenario, prefix, tmp_path)
    run.wait_for(lambda: any(directory.glob(".outputs.pb.*.tmp")), "the commit's temp file", poll_s=0.001)
    run.proc.send_signal(sig)
    code = run.finish()
    temp_files = frozenset(p.name for p in directory.glob(".*.tmp"))
    if sig == signal.SIGTERM:
        verdict, detail = judge(prefix, outputs_ok=equals_reference(scenario, prefix), error_ok=terminated)
        LEDGER.record("SIGTERM / local commit", verdict, faults=1, detail=detail)
        assert verdict == OUTPUTS and code == TERMINATED, f"{detail}\n{run.stderr()}"
        assert temp_files == frozenset()
    else:
        assert code == -signal.SIGKILL, run.stderr()
        assert check_killed_state(scenario, prefix) in ("nothing", OUTPUTS)
        assert temp_files <= {f".outputs.pb.{run.proc.pid}.tmp"}
    rerun(scenario, prefix, tmp_path, f"{sig.name}+rerun / local commit", litter=temp_files)
