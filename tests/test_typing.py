"""``py.typed`` is honest: a user's ``@taskbox.task`` functions type-check as the plain functions would.

mypy (pinned in pyproject's ``lint`` extra) checks a small user module with ``--strict``: calls with the
right argument types pass, each call marked ``# wrong`` must be reported on its line, and nothing else.
"""

from __future__ import annotations

import os
import re
import textwrap

import pytest
from mypy import api as mypy_api

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

USER_MODULE = textwrap.dedent(
    """
    import datetime

    import taskbox
    from taskbox import task


    @taskbox.task
    def add(a: int, b: int = 1) -> int:
        return a + b


    @taskbox.task(retries=2, requests={"cpu": "1"}, timeout=datetime.timedelta(minutes=5))
    def greet(name: str) -> str:
        return f"hello {name}"


    @task
    async def halve(x: float) -> float:
        return x / 2


    def square(x: int) -> int:
        return x * x


    squared = task(square, name="square")

    total: int = add(1, 2)
    total = add(1)
    total = add(a=1, b=2)
    text: str = greet("world")
    text = greet(name="world")
    later = halve(3.0)
    four: int = squared(2)
    print(add.name, add.inputs, greet.retries, halve.is_async, squared.template)
    handle: taskbox.File = taskbox.File("/tmp/x")

    add("one", 2)  # wrong
    add(1, b="two")  # wrong
    add(1, 2, 3)  # wrong
    add(c=1)  # wrong
    number: int = greet("world")  # wrong
    greet(3)  # wrong
    squared("2")  # wrong
    halve("x")  # wrong
    """
)


@pytest.fixture(scope="module")
def mypy_report(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, set[int]]:
    work = tmp_path_factory.mktemp("typing")
    module = work / "user_tasks.py"
    module.write_text(USER_MODULE)
    config = work / "mypy.ini"
    config.write_text("[mypy]\n")  # not the project's settings: a user's strict run
    wrong = {n for n, line in enumerate(USER_MODULE.splitlines(), 1) if line.endswith("# wrong")}
    stdout, stderr, _ = mypy_api.run(
        [
            "--strict",
            "--config-file",
            str(config),
            # a cache of its own beside make typecheck's: warm after the first run, never shared with other options
            "--cache-dir",
            os.path.join(ROOT, ".mypy_cache", "test_typing"),
            "--no-error-summary",
            "--hide-error-context",
            str(module),
        ]
    )
    assert not stderr, stderr
    return stdout, wrong


def test_wrong_calls_are_flagged_and_right_ones_accepted(mypy_report: tuple[str, set[int]]) -> None:
    report, wrong = mypy_report
    errors = {}
    for line in report.splitlines():
        match = re.search(r"user_tasks\.py:(\d+): error: (.*)$", line)
        if match:
            errors.setdefault(int(match.group(1)), []).append(match.group(2))
    assert set(errors) == wrong, report
    # the decorated object is the typed task, not the ``object`` that taskbox's lazy __getattr__ returns
    assert "not callable" not in report
