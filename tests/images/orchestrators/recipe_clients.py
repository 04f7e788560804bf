"""What the orchestrator tests share: the recipes of docs/recipes.md, the shop data, the clients' venvs.

Each orchestrator's client (KFP, Airflow, Dagster, Prefect, hera) lives in a venv of its own,
``.venv-<name>`` at the top of the repository, made by ``scripts/orchestrator-venvs.sh`` (``make
orchestrator-venvs``, which ``make test`` runs first). A test runs a small driver script in that venv; the
driver executes the recipe's code block exactly as the page shows it and prints what came back as one JSON
line, which the test (in taskbox's own venv) checks.

Invariants:
    * The recipe text is the code that runs: drivers get the block from :func:`recipe`, never a copy.
    * The images are referenced as the docs name them (:func:`documented_reference`): the test tags the
      image it built under that reference, so no client ever pulls (no registry is reachable here).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
RECIPES = ROOT / "docs" / "recipes.md"
SCRIPT = ROOT / "scripts" / "orchestrator-venvs.sh"
#: What the recipes' query answers on :func:`make_shop` data with ``min_amount = 10``.
EXPECTED = {"n": 3, "total": 172.5}
ORDERS = [(1, "ann", 5.0), (2, "bob", 10.0), (3, "cy", 12.5), (4, "di", 150.0), (5, "ed", 3.0)]
_BLOCK = re.compile(r"<!-- recipe: ([\w-]+) -->\n```(\w+)\n(.*?)\n```", re.DOTALL)
_RESULT_PREFIX = "RECIPE-RESULT "


def recipes() -> dict[str, tuple[str, str]]:
    """Every ``<!-- recipe: NAME -->`` block of docs/recipes.md: ``{name: (language, code)}``."""
    return {name: (lang, body) for name, lang, body in _BLOCK.findall(RECIPES.read_text())}


def recipe(name: str) -> str:
    """The code of the recipe block ``name`` (fails the test when the page has none)."""
    blocks = recipes()
    if name not in blocks:
        raise AssertionError(f"docs/recipes.md has no <!-- recipe: {name} --> block (has: {sorted(blocks)})")
    return blocks[name][1]


def documented_reference(variant: str = "sqlite") -> str:
    """The image reference the docs tell users to use: the catalog's, for the installed taskbox."""
    from taskbox import __version__
    from taskbox.images.catalog import load_catalog

    return load_catalog().reference(variant, __version__)


def tag_as_documented(docker_client: Any, built: str, variant: str = "sqlite") -> str:
    """Tag the image the tests built (``built``) under :func:`documented_reference`; return the reference."""
    reference = documented_reference(variant)
    repository, _, tag = reference.rpartition(":")
    docker_client.images.get(built).tag(repository, tag)
    return reference


def make_shop(root: Path) -> Path:
    """``root/data/shop.db`` (the orders table) and ``root/config/query.json`` (the recipe's config).

    Folders and files are world-readable: the images run as uid 65532, the tests as root, and pytest's
    temporary folders are private to their owner.
    """
    data, config = root / "data", root / "config"
    for folder in (root, data, config):
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o755)
    db = data / "shop.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, amount REAL)")
    conn.executemany("INSERT INTO orders VALUES (?, ?, ?)", ORDERS)
    conn.commit()
    conn.close()
    db.chmod(0o644)
    query = config / "query.json"
    query.write_text(recipe("config"))
    query.chmod(0o644)
    return root


def hold_lock(db: Path) -> sqlite3.Connection:
    """A writer in the middle of a transaction: ``db`` stays locked (and has a journal) until it ends.

    taskbox's sqlite executor waits for the lock, then fails with ``SYSTEM:TransactionConflict`` (exit 75):
    an honest recoverable failure for the retry tests.
    """
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN EXCLUSIVE")
    conn.execute("INSERT INTO orders (customer, amount) VALUES ('pending', 1000)")
    return conn


@contextlib.contextmanager
def broken_query(shop: Path) -> Iterator[None]:
    """The recipe's query names a table that does not exist (a user error, exit 1) inside the block."""
    config = shop / "config" / "query.json"
    good = config.read_text()
    config.write_text(good.replace("FROM orders", "FROM no_such_table"))
    try:
        yield
    finally:
        config.write_text(good)


def client_python(name: str) -> Path:
    """The Python of the client venv ``.venv-<name>``, made by scripts/orchestrator-venvs.sh when missing.

    Fails the test (never skips) with the command that installs it when it cannot be made.
    """
    python = ROOT / f".venv-{name}" / "bin" / "python"
    if not (python.parent.parent / ".installed").exists():
        proc = subprocess.run([str(SCRIPT), name], capture_output=True, text=True, timeout=1800)
        if proc.returncode != 0 or not python.exists():
            raise AssertionError(
                f"the {name} client venv is missing and could not be made: run `make orchestrator-venvs` "
                f"(scripts/orchestrator-venvs.sh {name})\n{(proc.stdout + proc.stderr)[-3000:]}"
            )
    return python


def run_driver(
    name: str,
    driver: Path,
    *args: str,
    env: dict[str, str] | None = None,
    timeout: float = 600,
    cwd: Path | None = None,
) -> tuple[Any, subprocess.CompletedProcess[str]]:
    """Run ``driver`` in the ``name`` client venv; return the value it printed with :func:`emit`, and the process.

    The driver's environment is this process's plus ``env``, with ``PYTHONPATH`` set to this folder (so
    drivers import this module to read recipes) and never taskbox's sources.
    """
    full_env = {**os.environ, **(env or {}), "PYTHONPATH": str(Path(__file__).parent)}
    proc = subprocess.run(
        [str(client_python(name)), str(driver), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=str(cwd) if cwd else None,
    )
    results = [line[len(_RESULT_PREFIX) :] for line in proc.stdout.splitlines() if line.startswith(_RESULT_PREFIX)]
    if proc.returncode != 0 or not results:
        raise AssertionError(
            f"{driver.name} in .venv-{name} failed (exit {proc.returncode})\n"
            f"--- stdout\n{proc.stdout[-6000:]}\n--- stderr\n{proc.stderr[-6000:]}"
        )
    return json.loads(results[-1]), proc


def emit(value: Any) -> None:
    """Print ``value`` for :func:`run_driver` (called by drivers, in the client's venv)."""
    print(_RESULT_PREFIX + json.dumps(value, default=str), flush=True)
    sys.stdout.flush()
