"""The reliability suite's ledger: every run under faults, kills or hostile input is judged and counted.

Why: issue 8 asks for figures, not only green tests. Each test of ``tests/reliability`` judges the prefix a
run left behind with :func:`judge` and records the verdict in :data:`LEDGER`; ``tests/conftest.py`` prints
the table at the end of the session (``pytest_terminal_summary``) and, when ``TASKBOX_RELIABILITY_SUMMARY``
names a file, writes it there as JSON. Under pytest-xdist (``make test``) each worker counts in its own
ledger and the controller prints the merged table once (:meth:`Ledger.export` / :meth:`Ledger.merge`).

Invariant: a verdict is one of three. ``outputs`` (only ``outputs.pb`` is committed and the outputs equal a
fault-free run's), ``error`` (only ``error.pb`` is committed and it is the expected kind of error), or
``lost`` (anything else: both commit files, neither after a finished run, outputs that differ, a wrong
error class, a crash without an error document). Tests assert that ``lost`` never happens; the ledger
only counts, so that the summary shows how many runs each promise was checked on.

Long variants: ``TASKBOX_SOAK=1`` (``make soak``) and ``TASKBOX_FUZZ_SECONDS`` (``make fuzz``) scale the
same tests up; :data:`SOAK` and :data:`FUZZ_SECONDS` are read here so every test scales the same way.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from flyteidl.core import errors_pb2, execution_pb2

from helpers import commit_files, read_error

SOAK = os.environ.get("TASKBOX_SOAK", "") == "1"
FUZZ_SECONDS = float(os.environ.get("TASKBOX_FUZZ_SECONDS", "0") or 0)

OUTPUTS = "outputs"
ERROR = "error"
LOST = "lost"


@dataclass
class Row:
    """Counts for one family of runs (for example ``storage faults 30% / sqlite``)."""

    faults: int = 0
    runs: int = 0
    outputs: int = 0
    errors: int = 0
    lost: int = 0


class Ledger:
    """Thread-safe counters by family, in first-recorded order."""

    def __init__(self) -> None:
        self._rows: dict[str, Row] = {}
        self._lock = threading.Lock()
        self.lost_details: list[str] = []

    def record(self, family: str, verdict: str, *, faults: int = 0, detail: str = "") -> None:
        """Count one run of ``family`` with its ``verdict`` and the number of faults injected into it."""
        if verdict not in (OUTPUTS, ERROR, LOST):
            raise ValueError(f"unknown verdict {verdict!r}")
        with self._lock:
            row = self._rows.setdefault(family, Row())
            row.runs += 1
            row.faults += faults
            if verdict == OUTPUTS:
                row.outputs += 1
            elif verdict == ERROR:
                row.errors += 1
            else:
                row.lost += 1
                self.lost_details.append(f"{family}: {detail}")

    def rows(self) -> dict[str, Row]:
        """A copy of the counters."""
        with self._lock:
            return {name: Row(**asdict(row)) for name, row in self._rows.items()}

    def table(self) -> str:
        """The summary as a fixed-width text table (empty string when nothing was recorded)."""
        rows = self.rows()
        if not rows:
            return ""
        total = Row()
        for row in rows.values():
            for name in ("faults", "runs", "outputs", "errors", "lost"):
                setattr(total, name, getattr(total, name) + getattr(row, name))
        header = ("family", "faults injected", "runs", "correct outputs", "correct error doc", "lost/corrupted")
        lines = [(name, r.faults, r.runs, r.outputs, r.errors, r.lost) for name, r in rows.items()]
        lines.append(("total", total.faults, total.runs, total.outputs, total.errors, total.lost))
        width = max(len(header[0]), *(len(str(line[0])) for line in lines))
        fmt = "{:<" + str(width) + "}  {:>15}  {:>6}  {:>15}  {:>17}  {:>14}"
        out = [fmt.format(*header), fmt.format("-" * width, *("-" * n for n in (15, 6, 15, 17, 14)))]
        out.extend(fmt.format(*line) for line in lines)
        return "\n".join(out)

    def export(self) -> dict[str, Any]:
        """The counters and lost details as plain data (JSON-able; what :meth:`write_json` writes).

        Under pytest-xdist each worker process has its own ledger: ``tests/conftest.py`` ships each
        worker's export to the controller, which :meth:`merge` s them into one table.
        """
        with self._lock:
            families = {name: asdict(row) for name, row in self._rows.items()}
            return {"families": families, "lost": list(self.lost_details)}

    def merge(self, data: dict[str, Any]) -> None:
        """Add the counters of another ledger's :meth:`export` (a family seen first keeps its place)."""
        with self._lock:
            for name, counts in data.get("families", {}).items():
                row = self._rows.setdefault(name, Row())
                for field in ("faults", "runs", "outputs", "errors", "lost"):
                    setattr(row, field, getattr(row, field) + int(counts.get(field, 0)))
            self.lost_details.extend(data.get("lost", []))

    def write_json(self, path: str) -> None:
        """Write the counters (and the details of any lost run) to ``path``."""
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(self.export(), fh, indent=2)


LEDGER = Ledger()


def recoverable_system(error: errors_pb2.ContainerError) -> bool:
    """The error class a transient platform failure must produce: SYSTEM and RECOVERABLE."""
    return error.kind == errors_pb2.ContainerError.RECOVERABLE and error.origin == execution_pb2.ExecutionError.SYSTEM


def judge(
    prefix: str,
    *,
    outputs_ok: Callable[[], bool],
    error_ok: Callable[[errors_pb2.ContainerError], bool] = recoverable_system,
) -> tuple[str, str]:
    """Judge what a finished (or killed and not rerun) run left under ``prefix``.

    Args:
        prefix: The run's output prefix (local path or URI).
        outputs_ok: Called only when ``outputs.pb`` alone is committed; True when the outputs equal a
            fault-free run's (compare values, and the bytes of every file or table they reference).
        error_ok: Called only when ``error.pb`` alone is committed; True when it is the expected kind.

    Returns:
        ``(verdict, detail)``: the verdict (:data:`OUTPUTS`, :data:`ERROR` or :data:`LOST`) and a short
        explanation for the lost case (empty otherwise).
    """
    files = commit_files(prefix)
    if files == {"outputs.pb"}:
        return (OUTPUTS, "") if outputs_ok() else (LOST, f"{prefix}: outputs differ from the fault-free run")
    if files == {"error.pb"}:
        error = read_error(prefix)
        if error_ok(error):
            return ERROR, ""
        return LOST, f"{prefix}: unexpected error document {error.code}: {error.message[:300]}"
    return LOST, f"{prefix}: commit files {sorted(files) or 'none'}"
