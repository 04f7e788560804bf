"""Throwaway PostgreSQL and MariaDB servers from Debian's packages, on 127.0.0.1 and a free port.

Why: the ``sql`` executor's guarantees (read-only transactions, statement timeouts, server-side cursors,
error classification) are properties of real servers and real drivers; they are tested against the
servers Debian ships (``postgresql`` 15, ``mariadb-server`` 10.11), each started in a temporary
directory for the test session and removed afterwards. The benchmark (bench/sql.py) uses the same code.

Invariants:
    * Servers listen on 127.0.0.1 only (plus a unix socket in their temporary directory), on a port
      picked free at start; nothing binds the wildcard address.
    * Both servers refuse to run as root: when the tests run as root, the servers run as ``nobody``
      and their directories are owned by it.
    * Missing binaries are a failure with the install hint (``make system-deps``), never a skip.
    * Each server has a superuser (``postgres`` / ``root``, reached through the unix socket) and an
      application user ``taskbox`` with the password :data:`PASSWORD`, over TCP.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from servers import free_port  # tests/servers.py (tests/ is on sys.path)

HOST = "127.0.0.1"
USER = "taskbox"
PASSWORD = "tbx-Secret-pw-31337"
DATABASE = "taskbox"
INSTALL_HINT = "run `make system-deps` (apt-get install postgresql mariadb-server)"
START_TIMEOUT_S = 60.0


class ServerMissing(RuntimeError):
    """The server's binaries are not installed."""


def _run_as() -> tuple[str | None, int, int]:
    """(user name to run servers as, uid, gid): ``nobody`` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None, os.getuid(), os.getgid()
    entry = pwd.getpwnam("nobody")
    return "nobody", entry.pw_uid, entry.pw_gid


def _workdir(prefix: str, uid: int, gid: int) -> Path:
    path = Path(tempfile.mkdtemp(prefix=prefix))
    os.chmod(path, 0o755)
    if os.geteuid() == 0:
        os.chown(path, uid, gid)
    return path


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _wait_for_port(port: int, proc: subprocess.Popen[bytes] | None, log: Path, what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}:\n{_tail(log)}")
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.settimeout(0.5)
            if s.connect_ex((HOST, port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on {HOST}:{port} within {START_TIMEOUT_S:.0f} s:\n{_tail(log)}")


# ----------------------------------------------------------------------------------------- PostgreSQL


def postgres_bin() -> Path:
    """The directory of PostgreSQL's server binaries (15 preferred)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: (not p.startswith("/usr/lib/postgresql/15/"), p)
    )
    if not candidates:
        raise ServerMissing(f"PostgreSQL's initdb is not installed: {INSTALL_HINT}")
    return Path(candidates[0]).parent


@dataclass
class PostgresServer:
    """A running throwaway PostgreSQL cluster."""

    port: int
    root: Path
    bin: Path
    user_name: str | None
    socket_dir: Path = field(init=False)

    def __post_init__(self) -> None:
        self.socket_dir = self.root / "sock"

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the application database, without the password."""
        return f"postgresql+psycopg://{USER}@{HOST}:{self.port}/{DATABASE}"

    def admin(self, dbname: str = DATABASE) -> Any:
        """A psycopg connection as the superuser, over the unix socket (autocommit)."""
        import psycopg

        return psycopg.connect(
            host=str(self.socket_dir), port=self.port, user="postgres", dbname=dbname, autocommit=True
        )

    def stop(self) -> None:
        """Stop the server and delete its files."""
        subprocess.run(
            [str(self.bin / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate", "-w", "stop"],
            user=self.user_name,
            capture_output=True,
            check=False,
            timeout=60,
        )
        shutil.rmtree(self.root, ignore_errors=True)


def start_postgres() -> PostgresServer:
    """initdb + pg_ctl start on 127.0.0.1; create the ``taskbox`` user and database."""
    bindir = postgres_bin()
    user_name, uid, gid = _run_as()
    root = _workdir("taskbox-pg-", uid, gid)
    data, sock, log = root / "data", root / "sock", root / "server.log"
    for d in (sock,):
        d.mkdir()
        if os.geteuid() == 0:
            os.chown(d, uid, gid)
    env = dict(os.environ, LC_ALL="C.UTF-8", LANG="C.UTF-8")
    init = subprocess.run(
        [
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        user=user_name,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
        cwd=root,
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr[-2000:]}")
    port = free_port()
    options = (
        f"-c listen_addresses={HOST} -p {port} -k {sock} -c fsync=off -c full_page_writes=off -c max_connections=50"
    )
    started = subprocess.run(
        [str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", "60", "start"],
        user=user_name,
        capture_output=True,
        text=True,
        env=env,
        timeout=90,
        check=False,
        cwd=root,
    )
    server = PostgresServer(port, root, bindir, user_name)
    if started.returncode != 0:
        message = f"pg_ctl start failed: {started.stderr[-1000:]}\n{_tail(log)}"
        server.stop()
        raise RuntimeError(message)
    _wait_for_port(port, None, log, "PostgreSQL")
    with server.admin("postgres") as conn:
        from psycopg import sql

        conn.execute(sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(USER), sql.Literal(PASSWORD)))
        conn.execute(sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(DATABASE), sql.Identifier(USER)))
    return server


# ----------------------------------------------------------------------------------------- MariaDB


def mariadb_bin() -> tuple[Path, Path]:
    """(mariadb-install-db, mariadbd)."""
    install = shutil.which("mariadb-install-db") or "/usr/bin/mariadb-install-db"
    daemon = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
    if not (os.access(install, os.X_OK) and os.access(daemon, os.X_OK)):
        raise ServerMissing(f"MariaDB's mariadb-install-db/mariadbd are not installed: {INSTALL_HINT}")
    return Path(install), Path(daemon)


@dataclass
class MariaDBServer:
    """A running throwaway MariaDB server."""

    port: int
    root: Path
    process: subprocess.Popen[bytes]

    @property
    def socket_path(self) -> str:
        """The server's unix socket."""
        return str(self.root / "mysqld.sock")

    @property
    def url(self) -> str:
        """SQLAlchemy URL of the application database, without the password."""
        return f"mariadb+pymysql://{USER}@{HOST}:{self.port}/{DATABASE}"

    def admin(self, database: str | None = DATABASE) -> Any:
        """A PyMySQL connection as root over the unix socket (autocommit)."""
        import pymysql

        return pymysql.connect(unix_socket=self.socket_path, user="root", database=database, autocommit=True)

    def stop(self) -> None:
        """Stop the server and delete its files."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        shutil.rmtree(self.root, ignore_errors=True)


def start_mariadb() -> MariaDBServer:
    """mariadb-install-db + mariadbd on 127.0.0.1; create the ``taskbox`` user and database."""
    install, daemon = mariadb_bin()
    user_name, uid, gid = _run_as()
    root = _workdir("taskbox-mariadb-", uid, gid)
    data, log = root / "data", root / "server.log"
    user_args = [f"--user={user_name}"] if user_name else []
    init = subprocess.run(
        [
            str(install),
            "--no-defaults",
            f"--datadir={data}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            "--skip-name-resolve",
            *user_args,
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
        cwd=root,
    )
    if init.returncode != 0:
        shutil.rmtree(root, ignore_errors=True)
        raise RuntimeError(f"mariadb-install-db failed: {init.stdout[-1000:]}{init.stderr[-2000:]}")
    port = free_port()
    with open(log, "wb") as log_fh:
        process = subprocess.Popen(
            [
                str(daemon),
                "--no-defaults",
                f"--datadir={data}",
                f"--socket={root / 'mysqld.sock'}",
                f"--port={port}",
                f"--bind-address={HOST}",
                f"--pid-file={root / 'mysqld.pid'}",
                "--skip-name-resolve",
                "--skip-log-bin",
                "--innodb-buffer-pool-size=64M",
                "--innodb-flush-log-at-trx-commit=0",
                "--max-connections=50",
                *user_args,
            ],
            stdout=log_fh,
            stderr=subprocess.STDOUT,
            cwd=root,
        )
    server = MariaDBServer(port, root, process)
    try:
        _wait_for_port(port, process, log, "MariaDB")
        with server.admin(None) as conn, conn.cursor() as cur:
            cur.execute(f"CREATE DATABASE `{DATABASE}`")
            for host in (HOST, "localhost"):
                cur.execute(f"CREATE USER '{USER}'@'{host}' IDENTIFIED BY %s", (PASSWORD,))
                cur.execute(f"GRANT ALL PRIVILEGES ON `{DATABASE}`.* TO '{USER}'@'{host}'")
    except BaseException:
        server.stop()
        raise
    return server


# ----------------------------------------------------------------------------------------- sharing

_running: dict[str, Any] = {}


def shared(kind: str) -> Any:
    """The process's one server of ``kind`` (``"postgres"`` / ``"mariadb"``), started on first use.

    Test modules that load this file (by path, under one module name) share the servers; they stop at
    interpreter exit.
    """
    server = _running.get(kind)
    if server is None:
        import atexit

        server = start_postgres() if kind == "postgres" else start_mariadb()
        _running[kind] = server
        atexit.register(server.stop)
    return server
