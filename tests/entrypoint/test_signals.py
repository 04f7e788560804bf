"""The SIGTERM guard in-process: when ``Terminated`` is raised, and when it is held back.

Why: ``Terminated`` is raised asynchronously, wherever the main thread happens to be. Raised inside an
import it leaves a half-initialised package in ``sys.modules`` and the commit that follows can no longer
import what it needs (found by tests/reliability/test_kill_rerun.py: a SIGTERM while s3fs was being
imported left aiohttp broken, so ``error.pb`` could not be written).
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from taskbox.entrypoint.signals import TerminationGuard
from taskbox.errors import Terminated

SLOW_MODULE = """
import sys
import time

sys.modules["{probe}"].importing.set()
time.sleep(0.5)
DONE = True
"""


@pytest.fixture
def guard(monkeypatch: pytest.MonkeyPatch) -> Iterator[TerminationGuard]:
    """An installed guard whose watchdog cannot end the test process; the old handler comes back after."""
    monkeypatch.setenv("TASKBOX_TERM_GRACE_S", "3600")
    previous = signal.getsignal(signal.SIGTERM)
    guard = TerminationGuard()
    guard.install()
    yield guard
    signal.signal(signal.SIGTERM, previous)
    if guard._watchdog is not None:
        guard._watchdog.cancel()


def sigterm_when(event: threading.Event) -> threading.Thread:
    """Send SIGTERM to the main thread once ``event`` is set."""
    main = threading.main_thread().ident

    def send() -> None:
        if event.wait(timeout=30):
            signal.pthread_kill(main, signal.SIGTERM)

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    return thread


def test_sigterm_raises_terminated_in_the_task(guard: TerminationGuard) -> None:
    running = threading.Event()
    cancelled = threading.Event()
    sender = sigterm_when(running)

    def task() -> None:
        running.set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            time.sleep(0.01)

    with pytest.raises(Terminated):
        guard.run(task, cancelled)
    sender.join(timeout=30)
    assert guard.received and cancelled.is_set()


def test_sigterm_during_an_import_waits_until_the_import_is_done(
    guard: TerminationGuard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"taskbox_slow_import_{id(tmp_path)}"
    probe = f"{name}_probe"
    (tmp_path / f"{name}.py").write_text(SLOW_MODULE.format(probe=probe))
    monkeypatch.syspath_prepend(str(tmp_path))
    holder = type(sys)(probe)
    holder.importing = threading.Event()
    monkeypatch.setitem(sys.modules, probe, holder)
    cancelled = threading.Event()
    sender = sigterm_when(holder.importing)

    def task() -> None:
        __import__(name)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the re-sent signal lands here, after the import
            time.sleep(0.01)

    try:
        with pytest.raises(Terminated):
            guard.run(task, cancelled)
        sender.join(timeout=30)
        assert cancelled.is_set(), "the executor's cancelled event is set at once, even during an import"
        assert getattr(sys.modules.get(name), "DONE", False), "the import was cut short"
    finally:
        sys.modules.pop(name, None)


def test_sigterm_outside_the_task_is_only_recorded(guard: TerminationGuard) -> None:
    signal.pthread_kill(threading.main_thread().ident, signal.SIGTERM)
    time.sleep(0.05)  # the handler runs at the next bytecode; nothing is raised outside run()
    assert guard.received
    with pytest.raises(Terminated):
        guard.run(lambda: None)


def test_sigterm_during_a_sqlite_statement_is_terminated_not_a_timeout(guard: TerminationGuard, tmp_path: Path) -> None:
    """The handler may raise inside SQLite's progress callback, where sqlite3 swallows the exception."""
    import sqlite3

    from taskbox.sql.sqlite import open_read_only

    db = tmp_path / "empty.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    conn.close()
    ro = open_read_only(str(db))
    cancelled = threading.Event()
    running = threading.Event()
    sender = sigterm_when(running)
    endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT count(*) FROM c"

    def task() -> None:
        with ro.deadline(3600, cancelled):
            running.set()
            ro.conn.execute(endless).fetchall()

    try:
        with pytest.raises(Terminated):
            guard.run(task, cancelled)
    finally:
        sender.join(timeout=30)
        ro.close()


def test_sigterm_while_a_sqlite_statement_is_prepared_is_terminated_not_a_denial(
    guard: TerminationGuard, tmp_path: Path
) -> None:
    """Raised inside the authorizer, the handler's exception becomes sqlite3's "not authorized".

    Without the cancelled event as the trace, a SIGTERM would end as a USER read-only violation
    (seen once in CI: the signal arrived while the statement was still being prepared).
    """
    import sqlite3

    from taskbox.sql import sqlite as tb_sqlite

    db = tmp_path / "t.db"
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE t (x INTEGER)")
    conn.close()
    ro = tb_sqlite.open_read_only(str(db))
    cancelled = threading.Event()
    sent: list[int] = []

    def authorizer(*args: object) -> int:
        if not sent:
            sent.append(1)
            signal.raise_signal(signal.SIGTERM)  # the handler runs here, inside SQLite's callback
        return tb_sqlite._authorizer(*args)  # type: ignore[arg-type]

    ro.conn.set_authorizer(authorizer)

    def task() -> None:
        with ro.deadline(3600, cancelled):
            ro.conn.execute("SELECT x FROM t").fetchall()

    try:
        with pytest.raises(Terminated):
            guard.run(task, cancelled)
    finally:
        ro.close()
    assert sent and cancelled.is_set()
