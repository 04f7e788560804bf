"""The console script's quick exit (``cli.console_main``) loses nothing a normal exit keeps.

Each case runs a real interpreter: ``main`` is replaced by a small function (the exit path is what is
under test, not a command), then ``console_main`` ends the process.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from helpers import TASKBOX


def _run(body: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    header = (
        "import atexit, sys, threading, time\n"
        "from pathlib import Path\n"
        "from taskbox.entrypoint import cli\n"
        f"out = Path({str(tmp_path)!r})\n"
        "def main(argv=None):\n"
    )
    script = header + textwrap.indent(textwrap.dedent(body), "    ") + "cli.main = main\ncli.console_main()\n"
    return subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)


def test_exit_code_buffered_output_and_exit_handlers_survive(tmp_path):
    proc = _run(
        """
        import logging
        logging.basicConfig(stream=sys.stderr, level=logging.INFO, format="%(message)s")
        logging.getLogger("t").info("logged last")
        atexit.register(lambda: (out / "atexit").write_text("ran"))
        sys.stdout.write("no newline, still buffered")
        return 3
        """,
        tmp_path,
    )
    assert proc.returncode == 3
    assert proc.stdout == "no newline, still buffered"
    assert "logged last" in proc.stderr
    assert (tmp_path / "atexit").read_text() == "ran"


def test_a_non_daemon_thread_is_waited_for(tmp_path):
    proc = _run(
        """
        def late():
            time.sleep(0.3)
            (out / "thread").write_text("done")
        threading.Thread(target=late).start()
        return 0
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "thread").read_text() == "done"


def test_a_daemon_thread_does_not_hold_the_exit(tmp_path):
    proc = _run(
        """
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
        return 0
        """,
        tmp_path,
    )
    assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize("argv", [["--help"], ["executors"], ["executors", "--json"], ["images"], ["version"]])
def test_a_reader_that_went_away_ends_the_command_quietly(argv):
    """``taskbox executors | head -1``: the write fails with EPIPE; no traceback, SIGPIPE's exit code."""
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before the first write: every write fails
    try:
        proc = subprocess.run([TASKBOX, *argv], stdout=write_end, stderr=subprocess.PIPE, text=True, timeout=60)
    finally:
        os.close(write_end)
    assert proc.returncode == 141, proc.stderr
    assert proc.stderr == ""
