"""Sample ``@taskbox.task`` functions, one per behaviour the runtime must show.

Each is run by the tests through the real ``taskbox execute`` (and, bundled, ``taskbox fast-execute``)
with ``--resolver taskbox.function -- task-module sample_tasks.tasks task-name <name>``:

* :func:`add` — sync, ints, a default (output ``o0``).
* :func:`greet` — ``async def`` (output ``o0``).
* :func:`write_invoice` — a dataclass input, a :class:`taskbox.File` output.
* :func:`fail` — raises ``ValueError`` (USER error, non-recoverable).
* :func:`flaky` — raises ``taskbox.RecoverableError`` (USER error, recoverable).
* :func:`resumable_sum` — checkpoints its progress; a retry resumes (named outputs).
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from dataclasses import dataclass
from typing import NamedTuple

import taskbox


@taskbox.task
def add(a: int, b: int = 1) -> int:
    """Return ``a + b`` (``b`` defaults to 1)."""
    return a + b


@taskbox.task
async def greet(name: str, delay_s: float = 0.0) -> str:
    """Await ``delay_s`` seconds on the event loop, then return ``"hello, <name>"``."""
    await asyncio.sleep(delay_s)
    return f"hello, {name}"


@dataclass
class Order:
    """One order line."""

    item: str
    quantity: int
    unit_price: float


@taskbox.task
def write_invoice(order: Order, currency: str = "EUR") -> taskbox.File:
    """Write a one-line text invoice for ``order`` and return it as a file.

    The file reads ``"<quantity> x <item> = <total with 2 decimals> <currency>\\n"``.
    """
    path = os.path.join(tempfile.mkdtemp(prefix="invoice-"), "invoice.txt")
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"{order.quantity} x {order.item} = {order.quantity * order.unit_price:.2f} {currency}\n")
    return taskbox.File(path)


@taskbox.task
def fail(message: str) -> int:
    """Always raise ``ValueError(message)``: a non-recoverable USER error."""
    raise ValueError(message)


@taskbox.task(retries=2)
def flaky(message: str) -> int:
    """Always raise ``taskbox.RecoverableError(message)`` caused by a ``ConnectionError``: Flyte retries it."""
    try:
        raise ConnectionError("upstream reset the connection")
    except ConnectionError as exc:
        raise taskbox.RecoverableError(message) from exc


class Progress(NamedTuple):
    """What :func:`resumable_sum` returns."""

    total: int
    resumed_from: int


@taskbox.task(retries=1)
def resumable_sum(n: int, fail_at: int = -1) -> Progress:
    """Sum ``0 .. n-1`` one step at a time, checkpointing ``[next_step, total]`` as JSON after each step.

    An attempt that finds no previous checkpoint raises ``taskbox.RecoverableError`` when it reaches
    step ``fail_at`` (a simulated eviction); the retry reads the checkpoint and resumes there.

    Returns:
        ``total`` (the sum) and ``resumed_from`` (the step this attempt started at: 0 on a fresh start).
    """
    checkpoint = taskbox.current_context().checkpoint
    saved = checkpoint.read()
    step, total = json.loads(saved) if saved else (0, 0)
    resumed_from = step
    while step < n:
        if saved is None and step == fail_at:
            raise taskbox.RecoverableError(f"simulated failure at step {step}")
        total += step
        step += 1
        checkpoint.write(json.dumps([step, total]).encode())
    return Progress(total, resumed_from)
