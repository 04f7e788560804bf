"""One planted secret, every executor, success and failure: the value must appear nowhere a run leaves text.

Why: issue 8 point 5 and docs/reliability-security.md section 4. A secret leaks through the text of an
exception (a driver echoing its DSN, a server echoing an auth header, a user's f-string) far more often
than through a deliberate log call, so the test does not trust any one code path: it plants one random
value the way Flyte does (``_FSEC_<GROUP>_<KEY>`` for ``taskbox execute`` runs, a file under a temporary
``FLYTE_SECRETS_DEFAULT_DIR`` for ``taskbox run`` runs), drives each executor through the real entrypoint
subprocess, and searches stdout, stderr and every file under the run's directory (``error.pb``,
``outputs.pb``, ``error.json``, ``outputs.json``, per-output files, data files under the raw output
prefix, the scratch ``$TMPDIR``) for the value in its plain, URL-encoded and base64 forms.

What is promised (and therefore checked):
    * Logs (any logger, any library: the filter sits on the handler), error documents and the *literal*
      outputs an executor builds from a response (``http``/``http-job`` JSON pointers, headers, bodies
      as text) never hold a secret value the :class:`taskbox.secrets.SecretStore` handed out.
    * A user ``@task`` that logs the value or puts it in an exception message: masked, whether the value
      came through ``taskbox.current_context().secrets`` or was read past it from the variable or file
      (the secrets a task declares are registered before it runs). What a user function deliberately *returns*
      is its own output and is not rewritten (redaction.py masks logs and error documents; only the
      http executors redact the values they map from a response); that case is not part of the promise
      and not tested as one; nor is text user code writes to stdout/stderr itself (``print``), which
      no filter sees.
    * Not promised: bytes an ``http`` ``body_output`` File carries (the response, byte for byte).

Invariants of the test: the secret is random (a different value per session, 38 characters with ``/``,
``+`` and ``=`` so its URL-encoded and base64 forms differ from the plain one), servers are on
127.0.0.1, every run is judged and recorded in the ledger as ``secrets / <executor>``: OUTPUTS or ERROR
when the run ended as expected and nothing leaked, LOST otherwise.
"""

from __future__ import annotations

import base64
import json
import secrets as pysecrets
import sys
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import pytest
from flyteidl.core import tasks_pb2, types_pb2

from helpers import ROOT, TASKBOX, encode_inputs, execute_args, make_template, put, read_outputs, run, simple
from reliability.ledger import ERROR, LEDGER, LOST, OUTPUTS, judge

for _sub in ("sql", "http"):  # sqltesting, httptesting, jobserver live beside their tests
    if str(ROOT / "tests" / _sub) not in sys.path:
        sys.path.insert(0, str(ROOT / "tests" / _sub))

import httptesting  # noqa: E402
import jobserver  # noqa: E402
import sqltesting  # noqa: E402

from taskhelpers import container_command, write_module  # noqa: E402

pytestmark = pytest.mark.timeout(240)

SECRET = f"Tbx/{pysecrets.token_urlsafe(18)}+{pysecrets.token_hex(4)}="
STR, INT, STRUCT = simple("STRING"), simple("INTEGER"), simple("STRUCT")
DATASET = types_pb2.LiteralType(structured_dataset_type=types_pb2.StructuredDatasetType(format="parquet"))
API = {"group": "api", "key": "token"}
DB = {"group": "db", "key": "password"}
ALLOW = {"TASKBOX_HTTP_ALLOW": "127.0.0.1/32", "TASKBOX_HTTP_BACKOFF_BASE_S": "0.01"}


def leak_forms(value: str, *extra: str) -> dict[str, str]:
    """The forms a secret can take in text: plain, URL-encoded, base64 (standard and URL-safe, unpadded)."""
    raw = value.encode()
    forms = {
        "plain": value,
        "url-encoded": quote(value, safe=""),
        "url-encoded (form)": quote_plus(value),
        "base64": base64.b64encode(raw).decode().rstrip("="),
        "base64 (url-safe)": base64.urlsafe_b64encode(raw).decode().rstrip("="),
    }
    for text in extra:  # e.g. the basic-auth token of "user:<secret>"
        forms[f"base64 of {text!r}"] = base64.b64encode(text.encode()).decode().rstrip("=")
    unique: dict[str, str] = {}
    for name, form in forms.items():  # quote_plus and url-safe base64 often equal their siblings
        if form not in unique.values():
            unique[name] = form
    return unique


def _file_texts(path: Path) -> list[str]:
    """The texts to search in a file: its bytes (as latin-1, so every byte maps) and, for Parquet, its rows."""
    data = path.read_bytes()
    texts = [data.decode("latin-1")]
    if data[:4] == b"PAR1":  # compressed pages: search the decoded values too
        import pyarrow.parquet as pq

        texts.append(repr(pq.read_table(path).to_pylist()))
    return texts


def find_leaks(forms: dict[str, str], streams: dict[str, str], root: Path) -> list[str]:
    """Where any form of the secret appears: ``"<stream or file>: <form>"`` for each hit."""
    hits = [f"{name}: {form}" for name, text in streams.items() for form, v in forms.items() if v in text]
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        for text in _file_texts(path):
            hits.extend(f"{path.relative_to(root)}: {form}" for form, v in forms.items() if v in text)
    return sorted(set(hits))


def test_the_scan_finds_every_form(tmp_path):
    """The control: a leak in each form, in a stream, a plain file and a compressed Parquet column, is found."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    forms = leak_forms(SECRET)
    assert len(forms) >= 3  # plain, URL-encoded and base64 differ (the secret holds "/", "+" and "=")
    for form, value in forms.items():
        (tmp_path / "f.txt").write_text(f"x{value}x")
        pq.write_table(pa.table({"c": [f"row {value}"] * 100}), tmp_path / "t.parquet", compression="zstd")
        assert find_leaks(forms, {"stderr": f"..{value}.."}, tmp_path) == [
            f"f.txt: {form}",
            f"stderr: {form}",
            f"t.parquet: {form}",
        ]


@dataclass
class Case:
    """One run of one executor.

    Attributes:
        family: Ledger family suffix (the executor).
        template: The task template (its ``type`` picks the executor).
        values: Input values.
        types: Input types (for ``inputs.pb``).
        expect: ``OUTPUTS`` or ``ERROR``.
        check: For OUTPUTS, a predicate on the read outputs; for ERROR, on the error document.
        env: More environment for the subprocess.
        command: For user tasks: builds ``taskbox execute`` args from (inputs, prefix, raw); default:
            the template resolver.
        pythonpath: Extra ``PYTHONPATH`` entries (user modules).
        extra_forms: Texts whose base64 would also reveal the secret (basic auth's ``user:<secret>``).
    """

    family: str
    template: tasks_pb2.TaskTemplate
    values: dict[str, Any] = field(default_factory=dict)
    types: dict[str, types_pb2.LiteralType] = field(default_factory=dict)
    expect: str = OUTPUTS
    check: Callable[[Any], bool] = lambda _: True
    env: dict[str, str] = field(default_factory=dict)
    command: Callable[[str, str, str], list[str]] | None = None
    pythonpath: list[str] = field(default_factory=list)
    extra_forms: tuple[str, ...] = ()


def plant(entry: str, base: Path) -> dict[str, str]:
    """The secret as Flyte injects it: env vars for ``execute`` runs, files for ``run`` runs."""
    if entry == "execute":
        return {"_FSEC_API_TOKEN": SECRET, "_FSEC_DB_PASSWORD": SECRET}
    directory = base / "secrets"
    for ref in (API, DB):
        (directory / ref["group"]).mkdir(parents=True, exist_ok=True)
        (directory / ref["group"] / ref["key"]).write_text(SECRET + "\n")
    return {"FLYTE_SECRETS_DEFAULT_DIR": str(directory)}


def drive(case: Case, tmp_path: Path, entry: str) -> None:
    """Run ``case`` through ``taskbox execute`` or ``taskbox run``, scan everything it left, judge, record."""
    base = tmp_path / f"{case.family}-{entry}-{case.expect}-{uuid.uuid4().hex[:6]}"
    work, given = base / "run", base / "given"  # ``given`` holds what the test wrote (and the secret files)
    (work / "tmp").mkdir(parents=True)
    given.mkdir()
    prefix, raw = str(work / "out"), str(work / "raw")
    env = {**plant(entry, given), "TMPDIR": str(work / "tmp"), "TASKBOX_LOG_LEVEL": "DEBUG", **case.env}
    if case.pythonpath:
        env["PYTHONPATH"] = ":".join(case.pythonpath)
    task = put(str(given / "task.pb"), case.template.SerializeToString())
    if entry == "execute":
        inputs = put(str(given / "inputs.pb"), encode_inputs(case.values, case.types))
        args = (
            case.command(inputs, prefix, raw)
            if case.command
            else execute_args(inputs, prefix, task, None, "--raw-output-data-prefix", raw)
        )
    else:
        args = [TASKBOX, "run", "--template", task, "--inputs", json.dumps(case.values), "--outputs", prefix]
        args += ["--raw-output-prefix", raw, "--log-level", "DEBUG"]
    proc = run(args, timeout=90, **env)
    leaks = find_leaks(leak_forms(SECRET, *case.extra_forms), {"stdout": proc.stdout, "stderr": proc.stderr}, work)
    outputs = {k: v.type for k, v in case.template.interface.outputs.variables.items()}
    verdict, detail = judge(
        prefix,
        outputs_ok=lambda: case.expect == OUTPUTS and case.check(read_outputs(prefix, outputs)),
        error_ok=lambda error: case.expect == ERROR and case.check(error),
    )
    if verdict != LOST and verdict != case.expect:
        verdict, detail = LOST, f"{prefix}: expected {case.expect}, got {verdict}"
    if leaks:
        verdict, detail = LOST, f"{prefix}: the secret appears in {leaks}"
    LEDGER.record(f"secrets / {case.family}", verdict, faults=int(case.expect == ERROR), detail=detail)
    assert verdict != LOST, f"{detail}\nstderr:\n{proc.stderr[-3000:]}"
    left = [p.name for p in (work / "tmp").iterdir() if not p.name.startswith("taskbox-cache")]  # the cache may stay
    assert not left, f"scratch files left in $TMPDIR: {left}"


def drive_both(case: Case, tmp_path: Path) -> None:
    """The same case through both entrypoints."""
    for entry in ("execute", "run"):
        drive(case, tmp_path, entry)


def code_is(*codes: str) -> Callable[[Any], bool]:
    return lambda error: error.code in codes


# --------------------------------------------------------------------------------------- echo, sqlite


def test_echo(tmp_path):
    types = {"x": STR}
    drive_both(
        Case("echo", make_template("echo", types, types), {"x": "hello"}, types, check=lambda o: o == {"x": "hello"}),
        tmp_path,
    )
    bad = make_template("echo", types, {"y": STR})  # outputs that do not match the inputs
    drive_both(
        Case("echo", bad, {"x": "hello"}, types, ERROR, code_is("USER:InvalidOutput", "USER:InvalidTemplate")), tmp_path
    )


def test_sqlite(tmp_path):
    db = sqltesting.make_sqlite(tmp_path / "items.db", rows=50)
    ok = make_template("sqlite", {}, {"results": DATASET}, {"uri": db, "query_template": "SELECT * FROM items"})
    drive_both(Case("sqlite", ok, check=lambda o: o["results"].to_arrow().num_rows == 50), tmp_path)
    bad = make_template("sqlite", {}, {"n": INT}, {"uri": db, "query_template": "SELECT nope FROM items"})
    drive_both(Case("sqlite", bad, expect=ERROR, check=code_is("USER:QueryFailed")), tmp_path)


# --------------------------------------------------------------------------------------- sql


def leaker_url(srv: Any, name: str) -> str:
    """Create (once per server) a login ``name`` whose password is the secret; return its URL."""
    from sqlalchemy.engine import make_url

    mod = sqltesting.servers_module()
    if not getattr(srv, f"_leaker_{name}", False):
        if isinstance(srv, mod.PostgresServer):
            from psycopg import sql

            with srv.admin() as conn:
                conn.execute(
                    sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(sql.Identifier(name), sql.Literal(SECRET))
                )
        else:
            with srv.admin(None) as conn, conn.cursor() as cur:
                for host in ("127.0.0.1", "localhost"):
                    cur.execute(f"CREATE USER '{name}'@'{host}' IDENTIFIED BY %s", (SECRET,))
                    cur.execute(f"GRANT SELECT ON `{mod.DATABASE}`.* TO '{name}'@'{host}'")
        setattr(srv, f"_leaker_{name}", True)
    return make_url(srv.url).set(username=name).render_as_string(hide_password=False)


@pytest.mark.parametrize("kind", ["postgres", "mariadb"])
def test_sql(tmp_path, kind):
    srv = sqltesting.server(kind)
    url = leaker_url(srv, f"leaker_{uuid.uuid4().hex[:8]}")
    outputs = {"who": STR, "n": INT}

    def tpl(uri: str, query: str) -> tasks_pb2.TaskTemplate:
        custom = {"uri": uri, "query_template": query, "secret_connect_args": {"password": DB}}
        return make_template("sqlalchemy", {}, outputs, custom)

    family = f"sql {kind}"
    ok = tpl(url, "SELECT current_user AS who, 7 AS n")
    drive_both(Case(family, ok, check=lambda o: o["n"] == 7 and o["who"].startswith("leaker_")), tmp_path)
    wrong_password = tpl(srv.url, "SELECT 1 AS who, 7 AS n")  # the user ``taskbox`` has another password
    drive_both(Case(family, wrong_password, expect=ERROR, check=code_is("USER:QueryFailed")), tmp_path)
    query_error = tpl(url, "SELECT nope AS who, 7 AS n FROM no_such_table")
    drive_both(Case(family, query_error, expect=ERROR, check=code_is("USER:QueryFailed")), tmp_path)


# --------------------------------------------------------------------------------------- http, http-job


@pytest.fixture
def web():
    with httptesting.running() as srv:
        yield srv


@pytest.fixture
def other_web():
    with httptesting.running() as srv:
        yield srv


def http_case(url: str, expect: str = OUTPUTS, check: Callable[[Any], bool] = lambda _: True, **custom: Any) -> Case:
    """An ``http`` run that sends the secret as a bearer token and as ``X-Api-Key``."""
    custom = {"url": url, "auth": {"type": "bearer", "token": API}, "secret_headers": {"X-Api-Key": API}, **custom}
    custom.setdefault("retry", {"max_attempts": 2})
    outputs = {"headers": STRUCT, "body": STR} if expect == OUTPUTS else {}
    if expect == OUTPUTS:
        custom.setdefault("outputs", {"headers": "/headers"})
        custom.setdefault("body_output", "body")
    return Case("http", make_template("http", {}, outputs, custom), expect=expect, check=check, env=ALLOW)


def masked(outputs: dict[str, Any]) -> bool:
    """The echoed credentials came back masked, and the request did carry them."""
    headers = outputs["headers"]
    return headers.get("authorization") == "Bearer ***" and headers.get("x-api-key") == "***"


def test_http(tmp_path, web, other_web):
    drive_both(http_case(web.base + "/echo", check=masked), tmp_path)
    assert web.requests[-1]["headers"]["Authorization"] == f"Bearer {SECRET}"  # the secret did travel
    drive_both(http_case(web.base + "/status/401", ERROR, code_is("USER:HTTPStatus")), tmp_path)  # body echoes headers
    drive_both(http_case(web.base + "/redirect?to=/echo", check=masked, follow_redirects=True), tmp_path)
    cross = http_case(f"{web.base}/redirect?to={other_web.base}/echo", follow_redirects=True,
                      check=lambda o: "x-api-key" not in o["headers"])  # fmt: skip
    drive_both(cross, tmp_path)
    drive_both(http_case(web.base + "/redirect?to=/echo", ERROR, code_is("USER:HTTPStatus")), tmp_path)  # not followed
    basic = http_case(web.base + "/echo", auth={"type": "basic", "username": "u", "password": API},
                      check=lambda o: o["headers"]["authorization"] == "Basic ***")  # fmt: skip
    basic.extra_forms = (f"u:{SECRET}",)
    drive_both(basic, tmp_path)


def test_http_job(tmp_path):
    with jobserver.running() as jobs:

        def case(spec: dict[str, Any], expect: str, check: Callable[[Any], bool], outputs: dict[str, Any]) -> Case:
            custom = {
                "submit": {"url": jobs.base + "/jobs", "json_body": spec},
                "job_fields": {"id": "/job/id"},
                "status_url": jobs.base + "/jobs/{{ .job.id }}",
                "cancel_url": jobs.base + "/jobs/{{ .job.id }}",
                "message_pointer": "/message",
                "secret_headers": {"Authorization": {**API, "prefix": "Bearer "}},
                "poll_interval_seconds": 0.05,
                "max_poll_interval_seconds": 0.2,
                "outputs": {name: "/result/echo" for name in outputs},
            }
            return Case(
                "http-job", make_template("http-job", {}, outputs, custom), expect=expect, check=check, env=ALLOW
            )

        # The service echoes the token it was sent into its result and its failure message (as careless ones do).
        echoed = {"polls": 1, "result": {"echo": f"token={SECRET}"}}
        drive_both(case(echoed, OUTPUTS, lambda o: o == {"token": "token=***"}, {"token": STR}), tmp_path)
        failed = {"polls": 1, "outcome": "failed", "message": f"bad token {SECRET}"}
        drive_both(case(failed, ERROR, code_is("USER:JobFailed"), {}), tmp_path)
        assert jobs.submissions[0]["headers"]["Authorization"] == f"Bearer {SECRET}"


# --------------------------------------------------------------------------------------- user @task

USER_MODULE = '''
import logging
import os

import taskbox

log = logging.getLogger("user.code")


@taskbox.task(secrets=[("api", "token")])
def use_token(fail: bool) -> int:
    """Log the token, and put it in an exception message when asked to fail."""
    token = taskbox.current_context().secrets.get("api", "token")
    log.warning("calling the API with token %s", token)
    if fail:
        raise PermissionError(f"the API refused token {token!r}")
    return len(token)


@taskbox.task(secrets=[("api", "token")])
def read_raw(fail: bool) -> int:
    """The same, reading the secret where Flyte put it, past taskbox's accessor (code written for bare pods)."""
    token = os.environ.get("_FSEC_API_TOKEN")
    if token is None:
        with open(os.path.join(os.environ["FLYTE_SECRETS_DEFAULT_DIR"], "api", "token")) as fh:
            token = fh.read().strip()
    log.warning("calling the API with token %s", token)
    if fail:
        raise PermissionError(f"the API refused token {token!r}")
    return len(token)
'''


def test_user_task(tmp_path):
    import importlib

    name = f"leaky_tasks_{uuid.uuid4().hex[:8]}"
    code_dir = tmp_path / "code"
    code_dir.mkdir()
    write_module(code_dir, name, USER_MODULE)
    sys.path.insert(0, str(code_dir))
    try:
        module = importlib.import_module(name)
    finally:
        sys.path.remove(str(code_dir))
    for task in (module.use_token, module.read_raw):
        template = task.template(image="example/none:1")

        def command(inputs: str, prefix: str, raw: str, task: Any = task) -> list[str]:
            return container_command(task, input=inputs, outputPrefix=prefix, rawOutputDataPrefix=raw)

        types = {"fail": simple("BOOLEAN")}
        common = {"types": types, "command": command, "pythonpath": [str(code_dir), str(ROOT / "tests" / "plugins")]}
        ok = Case("user task", template, {"fail": False}, check=lambda o: o == {"o0": len(SECRET)}, **common)
        drive_both(ok, tmp_path)
        failing = Case(
            "user task", template, {"fail": True}, expect=ERROR, check=code_is("USER:PermissionError"), **common
        )
        drive_both(failing, tmp_path)
