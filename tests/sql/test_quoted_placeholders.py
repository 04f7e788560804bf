"""Placeholders inside string literals (issue 18 item 6): the literal becomes a concatenation with a bound value.

Compiled SQL per dialect first, then the same templates run by the ``sql`` executor on real PostgreSQL 15 and
MariaDB 10.11 and by the ``sqlite`` executor, each compared with what the statement flytekit would paste gives
on the same database (for values flytekit can paste), and with the value's own text for the values it cannot
(quotes, injections, markers).
"""

from __future__ import annotations

import datetime as dt
import enum
import re
import sqlite3
import uuid

import pytest
import sqltesting
from sqltesting import optional, simple

from helpers import make_template
from taskbox.authoring import run_template
from taskbox.sql.compiled_cache import compile_cached
from taskbox.sql.errors import SqlRejected
from taskbox.sql.templating import PLACEHOLDER, compile_template

STR, INT, FLOAT, BOOL = simple("STRING"), simple("INTEGER"), simple("FLOAT"), simple("BOOLEAN")
DATETIME, DURATION = simple("DATETIME"), simple("DURATION")
SECRET_ENV = "_FSEC_DB_PASSWORD"


def quote(name: str) -> str:
    return '"' + name + '"'


def render(template: str, values: dict, dialect: str | None = "postgres", style: str = "sqlalchemy"):
    names = list(dict.fromkeys(m.group(1) for m in PLACEHOLDER.finditer(template)))
    return compile_template(template, names, dialect=dialect).render(values, quote=quote, style=style)


# ------------------------------------------------------------------------------------ compiled SQL


@pytest.mark.parametrize(
    ("dialect", "template", "sql"),
    [
        ("postgres", "SELECT 1 WHERE name LIKE '%{{ .inputs.w }}%'", "SELECT 1 WHERE name LIKE ('%' || :w || '%')"),
        ("mysql", "SELECT 1 WHERE name LIKE '%{{ .inputs.w }}%'", "SELECT 1 WHERE name LIKE CONCAT('%', :w, '%')"),
        ("tsql", "SELECT 1 WHERE name LIKE '%{{ .inputs.w }}%'", "SELECT 1 WHERE name LIKE CONCAT('%', :w, '%')"),
        (None, "SELECT 1 WHERE name LIKE '%{{ .inputs.w }}%'", "SELECT 1 WHERE name LIKE ('%' || :w || '%')"),
        ("postgres", "SELECT '{{ .inputs.w }}%'", "SELECT (:w || '%')"),  # start
        ("postgres", "SELECT '%{{ .inputs.w }}'", "SELECT ('%' || :w)"),  # end
        ("postgres", "SELECT '{{ .inputs.a }}-{{.inputs.b}}{{ .inputs.a }}'", "SELECT (:a || '-' || :b || :a)"),
        ("postgres", "SELECT 'it''s {{ .inputs.w }} ''q'''", "SELECT ('it''s ' || :w || ' ''q''')"),
        ("postgres", "SELECT '1{{ .inputs.w }}'::int", "SELECT ('1' || :w)::int"),
        ("postgres", "SELECT E'a\\'b{{ .inputs.w }}'", "SELECT (E'a\\'b' || :w)"),
        ("postgres", "SELECT 'back\\{{ .inputs.w }}'", "SELECT ('back\\' || :w)"),  # standard strings
        ("postgres", "SELECT $q$it's {{ .inputs.w }}$q$", "SELECT ($q$it's $q$ || :w)"),
        ("postgres", "SELECT N'{{ .inputs.w }}'", "SELECT :w"),
        ("postgres", "SELECT N'n {{ .inputs.w }}'", "SELECT ('n ' || :w)"),  # N'' is char(n) here
        ("postgres", "SELECT INTERVAL '{{ .inputs.w }} days'", "SELECT CAST((:w || ' days') AS INTERVAL)"),
        ("postgres", "SELECT DATE '{{ .inputs.w }}'", "SELECT CAST(:w AS DATE)"),
        ("postgres", "SELECT jsonb '[{{ .inputs.w }}]'", "SELECT CAST(('[' || :w || ']') AS jsonb)"),
        (
            "postgres",
            "SELECT TIMESTAMP WITH TIME ZONE '2024-{{ .inputs.w }}'",
            "SELECT CAST(('2024-' || :w) AS TIMESTAMP WITH TIME ZONE)",
        ),
        ("postgres", "SELECT now() AT TIME ZONE 'Etc/{{ .inputs.w }}'", "SELECT now() AT TIME ZONE ('Etc/' || :w)"),
        ("mysql", "SELECT 'a\\'b{{ .inputs.w }}'", "SELECT CONCAT('a\\'b', :w)"),
        ("mysql", "SELECT '\\\\{{ .inputs.w }}'", "SELECT CONCAT('\\\\', :w)"),
        ("mysql", 'SELECT "dq {{ .inputs.w }}"', 'SELECT CONCAT("dq ", :w)'),  # a string on MySQL
        ("mysql", "SELECT N'n{{ .inputs.w }}'", "SELECT CONCAT(N'n', :w)"),
        ("mysql", "SELECT _utf8mb4'u{{ .inputs.w }}'", "SELECT CONVERT(CONCAT('u', :w) USING utf8mb4)"),
        ("mysql", "SELECT DATE '2024-{{ .inputs.w }}'", "SELECT CAST(CONCAT('2024-', :w) AS DATE)"),
        ("mysql", "SELECT TIMESTAMP '2024-{{ .inputs.w }}'", "SELECT CAST(CONCAT('2024-', :w) AS DATETIME)"),
        ("mysql", "SELECT INTERVAL '{{ .inputs.w }}0' DAY", "SELECT INTERVAL CONCAT(:w, '0') DAY"),
        ("mysql", "SELECT 1 # it's\n, 'x{{ .inputs.w }}'", "SELECT 1 # it's\n, CONCAT('x', :w)"),
        ("sqlite", "SELECT 'x{{ .inputs.w }}' /* it's */", "SELECT ('x' || :w) /* it's */"),
        ("postgres", "/* it's */ SELECT 'x{{ .inputs.w }}' -- don't\n", "/* it's */ SELECT ('x' || :w) -- don't\n"),
        ("postgres", "SELECT '{{ .inputs.w }}'", "SELECT :w"),  # a whole literal binds the typed value
    ],
)
def test_literal_becomes_a_concatenation(dialect, template, sql):
    got, params = render(template, {name: "v" for name in ("w", "a", "b")}, dialect)
    assert got == sql
    assert set(params.values()) == {"v"}


def test_pyformat_and_sqlite_styles():
    template = "SELECT '100%{{ .inputs.w }}:x'"
    assert render(template, {"w": 1}, "postgres", "pyformat") == ("SELECT ('100%%' || %(w)s || ':x')", {"w": "1"})
    assert render(template, {"w": 1}, "sqlite", "sqlite") == ("SELECT ('100%' || :w || ':x')", {"w": "1"})
    assert render(template, {"w": 1}, "postgres") == ("SELECT ('100%' || :w || '\\:x')", {"w": "1"})


def test_input_bound_both_as_its_type_and_as_text_gets_two_parameters():
    template = "SELECT 'n={{ .inputs.n }}' WHERE id = {{ .inputs.n }} AND x = '{{ .inputs.n_text }}'"
    sql, params = render(template, {"n": 3, "n_text": "t"})
    assert sql == "SELECT ('n=' || :n_text1) WHERE id = :n AND x = :n_text"
    assert params == {"n_text1": "3", "n": 3, "n_text": "t"}


class Color(enum.Enum):
    RED = "red"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (3, "3"),
        (1.0, "1.0"),
        (1e20, "1e+20"),
        (True, "True"),
        (None, "None"),
        ("x' OR '1'='1", "x' OR '1'='1"),
        (dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.UTC), "2024-01-02 03:04:05+00:00"),
        (dt.timedelta(days=1, seconds=5), "1 day, 0:00:05"),
        ([1, 2], "[1, 2]"),
        (Color.RED, "red"),
    ],
)
def test_values_are_bound_as_the_text_flytekit_pastes(value, text):
    sql, params = render("SELECT 'v={{ .inputs.v }}'", {"v": value})
    assert sql == "SELECT ('v=' || :v)" and params == {"v": text}


def test_a_value_that_cannot_be_bound_is_refused_inside_a_literal_too():
    with pytest.raises(SqlRejected, match="cannot be bound"):
        render("SELECT 'v={{ .inputs.v }}'", {"v": {"a": 1}})


def test_more_than_ten_placeholders():
    names = [f"a{i}" for i in range(12)]
    template = "SELECT " + ", ".join(f"'{{{{ .inputs.{n} }}}}x', {{{{ .inputs.{n} }}}}" for n in names)
    sql, params = render(template, {n: i for i, n in enumerate(names)})
    assert sql.startswith("SELECT (:a0_text || 'x'), :a0, (:a1_text || 'x'), :a1,")
    assert params["a11_text"] == "11" and params["a11"] == 11


@pytest.mark.parametrize(
    ("template", "kind"),
    [
        ("SELECT * FROM t WHERE name LIKE '%{{ .inputs.w }}%'", "read"),
        ("INSERT INTO t (body) VALUES ('by {{ .inputs.w }}')", "write"),
        ("UPDATE t SET body = 'x{{ .inputs.w }}'", "write"),
    ],
)
def test_statement_kind_is_unchanged(template, kind):
    assert compile_template(template, ["w"], dialect="postgres").kind == kind


def test_hazards_are_still_named():
    compiled = compile_template("SELECT lo_export(1, '/tmp/{{ .inputs.w }}')", ["w"], dialect="postgres")
    assert compiled.kind == "write" and "lo_export" in compiled.hazard


def test_compiled_cache_keeps_text_parameters(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKBOX_CACHE_DIR", str(tmp_path / "cache"))
    template = "SELECT 'a{{ .inputs.w }}' WHERE id = {{ .inputs.w }}"
    first = compile_cached(template, ["w"], dialect="sqlite")
    second = compile_cached(template, ["w"], dialect="sqlite")
    assert first.render({"w": 1}, quote=quote, style="sqlite") == second.render({"w": 1}, quote=quote, style="sqlite")
    assert second.render({"w": 1}, quote=quote, style="sqlite") == (
        "SELECT ('a' || :w_text) WHERE id = :w",
        {"w_text": "1", "w": 1},
    )


@pytest.mark.parametrize(
    ("dialect", "template", "words"),
    [
        ("mysql", "SELECT 1 AS 'a{{ .inputs.w }}'", "quoted alias"),
        ("postgres", "SELECT INTERVAL '{{ .inputs.w }}' DAY", "Put the unit inside the literal"),
        ("mysql", "SELECT 'a\\{{ .inputs.w }}'", "backslash right before the placeholder"),
        ("postgres", "SELECT E'a\\{{ .inputs.w }}'", "backslash right before the placeholder"),
        ("postgres", "SELECT U&'a{{ .inputs.w }}'", "Unicode escape"),
        ("postgres", "SELECT B'1{{ .inputs.w }}'", "cannot be read as SQL"),  # sqlglot: not bits
        ("postgres", 'SELECT "a{{ .inputs.w }}"', "quoted identifier"),  # double quotes: an identifier here
        ("sqlite", 'SELECT "a{{ .inputs.w }}"', "quoted identifier"),
        ("tsql", "SELECT INTERVAL 'a{{ .inputs.w }}'", "INTERVAL literal"),
        ("postgres", "SELECT 1 /* '{{ .inputs.w }}' */", "inside a SQL comment"),
    ],
)
def test_literals_that_cannot_be_rewritten_are_refused(dialect, template, words):
    with pytest.raises(SqlRejected, match=re.escape(words)):
        compile_template(template, ["w"], dialect=dialect)


def test_identifier_input_inside_a_literal_is_refused():
    with pytest.raises(SqlRejected, match="is an identifier"):
        compile_template("SELECT 'x{{ .inputs.t }}'", ["t"], dialect="postgres", identifiers={"t": ["items"]})


# ------------------------------------------------------------------------------------ on the databases

WHEN = dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC)
TYPES = {"a": STR, "b": STR, "n": INT, "f": FLOAT, "flag": BOOL, "t": DATETIME, "d": DURATION, "o": optional(INT)}
HOSTILE = ["x' OR '1'='1", "O'Brien", "'; DROP TABLE items; --", ":b %(a)s ? $1 %s", "back\\slash \\' \\", "naïve ☃ ''"]

# (expression, values, the text it gives)
COMMON = [
    ("'{{ .inputs.a }}-tail'", {"a": "head"}, "head-tail"),
    ("'head-{{ .inputs.a }}-tail'", {"a": "mid"}, "head-mid-tail"),
    ("'head-{{ .inputs.a }}'", {"a": "end"}, "head-end"),
    ("'{{ .inputs.a }}/{{ .inputs.b }}/{{ .inputs.a }}'", {"a": "x", "b": "y"}, "x/y/x"),
    ("'{{ .inputs.a }}{{ .inputs.b }}'", {"a": "x", "b": "y"}, "xy"),
    ("'it''s {{ .inputs.a }} ''q'''", {"a": "fine"}, "it's fine 'q'"),
    (
        "'n={{ .inputs.n }} f={{ .inputs.f }} b={{ .inputs.flag }} t={{ .inputs.t }} d={{ .inputs.d }}'",
        {"n": 3, "f": 0.1, "flag": False, "t": WHEN, "d": dt.timedelta(microseconds=1500)},
        "n=3 f=0.1 b=False t=2024-01-02 03:04:05.123456+00:00 d=0:00:00.001500",
    ),
    ("'o={{ .inputs.o }}'", {"o": None}, "o=None"),
    ("/* it's */ 'c{{ .inputs.a }}' /* don't */", {"a": "x"}, "cx"),
    *[("'[{{ .inputs.a }}]'", {"a": value}, f"[{value}]") for value in HOSTILE],
    *[("'{{ .inputs.a }}'", {"a": value}, value) for value in HOSTILE],
]
POSTGRES = [
    ("E'tab\\t{{ .inputs.a }}'", {"a": "x"}, "tab\tx"),
    ("$$dollar '{{ .inputs.a }}'$$", {"a": "x"}, "dollar 'x'"),
    ("$q$it's {{ .inputs.a }}$q$", {"a": "x"}, "it's x"),
    ("'back\\slash {{ .inputs.a }}'", {"a": "x"}, "back\\slash x"),
    ("N'n {{ .inputs.a }}'", {"a": "x"}, "n x"),
    ("CAST(INTERVAL '{{ .inputs.n }} days' AS text)", {"n": 3}, "3 days"),
    ("CAST(DATE '2024-01-0{{ .inputs.n }}' AS text)", {"n": 3}, "2024-01-03"),
    ("CAST(('1{{ .inputs.n }}'::int + 1) AS text)", {"n": 3}, "14"),
    (
        "CAST(TIMESTAMP WITH TIME ZONE '2024-01-0{{ .inputs.n }} 10:00+00' AT TIME ZONE 'UTC' AS text)",
        {"n": 3},
        "2024-01-03 10:00:00",
    ),
    ("jsonb '{\"k\": \"{{ .inputs.a }}\"}' ->> 'k'", {"a": "x"}, "x"),
]
MARIADB = [
    ("'tab\\t{{ .inputs.a }}'", {"a": "x"}, "tab\tx"),
    ("'a\\'b {{ .inputs.a }}'", {"a": "x"}, "a'b x"),
    ("'\\\\{{ .inputs.a }}'", {"a": "x"}, "\\x"),
    ('"dq {{ .inputs.a }}"', {"a": "x"}, "dq x"),
    ("N'n {{ .inputs.a }}'", {"a": "x"}, "n x"),
    ("_utf8mb4'u {{ .inputs.a }}'", {"a": "x"}, "u x"),
    ("CAST(DATE '2024-01-0{{ .inputs.n }}' AS CHAR)", {"n": 3}, "2024-01-03"),
    ("CAST(DATE_ADD(DATE '2024-01-01', INTERVAL '{{ .inputs.n }}0' DAY) AS CHAR)", {"n": 3}, "2024-01-31"),
    ("CAST(DATE_ADD(DATE '2024-01-01', INTERVAL '{{ .inputs.n }}' DAY) AS CHAR)", {"n": 3}, "2024-01-04"),
]
PASTABLE = re.compile(r"^[A-Za-z0-9 ._:+-]*$")


def _case_id(case) -> str:
    return re.sub(r"\s+", " ", case[0])[:40] + "|" + ",".join(repr(v)[:12] for v in case[1].values())


def pasted(expression: str, values: dict) -> str | None:
    """The statement flytekit runs (``str(value)`` pasted), or ``None`` when a value would break or inject it."""
    if not all(PASTABLE.match(str(v)) for v in values.values()):
        return None
    return "SELECT " + PLACEHOLDER.sub(lambda m: str(values[m.group(1)]), expression) + " AS v"


def template_for(kind: str, expression: str, values: dict, custom: dict):
    query = f"SELECT {expression} AS v"
    return make_template(kind, {k: TYPES[k] for k in values}, {"v": STR}, {"query_template": query, **custom})


@pytest.fixture(scope="module", params=["postgres", "mariadb"])
def srv(request):
    return sqltesting.server(request.param)


def run_sql(srv, expression, values, tmp_path, monkeypatch):
    monkeypatch.setenv(SECRET_ENV, sqltesting.servers_module().PASSWORD)
    custom = {"uri": srv.url, "secret_connect_args": {"password": {"group": "db", "key": "password"}}}
    template = template_for("sqlalchemy", expression, values, custom)
    return run_template(template, values, workdir=str(tmp_path / uuid.uuid4().hex[:8]))["v"]


def flytekit_sql(srv, sql: str) -> str:
    """Run the statement flytekit would run, the way its executor does (``text()`` on a SQLAlchemy engine)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(srv.url, connect_args={"password": sqltesting.servers_module().PASSWORD})
    try:
        with engine.begin() as conn:
            return str(conn.execute(text(sql)).scalar())
    finally:
        engine.dispose()


def check_on_server(srv, case, tmp_path, monkeypatch) -> None:
    expression, values, want = case
    assert run_sql(srv, expression, values, tmp_path, monkeypatch) == want
    sql = pasted(expression, values)
    if sql is not None:
        assert flytekit_sql(srv, sql) == want


@pytest.mark.servers
@pytest.mark.parametrize("case", COMMON, ids=_case_id)
def test_literal_on_the_server(srv, case, tmp_path, monkeypatch):
    check_on_server(srv, case, tmp_path, monkeypatch)


@pytest.mark.servers
@pytest.mark.parametrize("case", POSTGRES, ids=_case_id)
def test_postgres_literal(postgres_server, case, tmp_path, monkeypatch):
    check_on_server(postgres_server, case, tmp_path, monkeypatch)


@pytest.mark.servers
@pytest.mark.parametrize("case", MARIADB, ids=_case_id)
def test_mariadb_literal(mariadb_server, case, tmp_path, monkeypatch):
    check_on_server(mariadb_server, case, tmp_path, monkeypatch)


@pytest.fixture(scope="module")
def sqlite_db(tmp_path_factory):
    return sqltesting.make_sqlite(tmp_path_factory.mktemp("quoted") / "items.db")


@pytest.mark.parametrize("case", COMMON, ids=_case_id)
def test_literal_in_a_sqlite3_task(sqlite_db, case, tmp_path):
    expression, values, want = case
    template = template_for("sqlite", expression, values, {"uri": sqlite_db})
    assert run_template(template, values, workdir=str(tmp_path / "run"))["v"] == want
    sql = pasted(expression, values)
    if sql is not None:
        with sqlite3.connect(sqlite_db) as conn:
            assert str(conn.execute(sql).fetchone()[0]) == want


@pytest.mark.servers
@pytest.mark.parametrize(("word", "count"), [("e-99", 11), ("x' OR '1'='1", 0), ("%", 1000), ("O'Brien", 0)])
def test_like_with_the_value_in_the_pattern(srv, word, count, tmp_path, monkeypatch):
    sqltesting.seed(srv)
    monkeypatch.setenv(SECRET_ENV, sqltesting.servers_module().PASSWORD)
    custom = {
        "query_template": "SELECT count(*) AS n FROM items WHERE name LIKE '%{{ .inputs.w }}%'",
        "uri": srv.url,
        "secret_connect_args": {"password": {"group": "db", "key": "password"}},
    }
    template = make_template("sqlalchemy", {"w": STR}, {"n": INT}, custom)
    assert run_template(template, {"w": word}, workdir=str(tmp_path / "run"))["n"] == count
    if PASTABLE.match(word) or word == "%":
        assert flytekit_sql(srv, f"SELECT count(*) AS n FROM items WHERE name LIKE '%{word}%'") == str(count)
