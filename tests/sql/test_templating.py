"""The query-template compiler: placeholders become binds, values never become SQL text."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskbox.sql.errors import SqlRejected
from taskbox.sql.templating import compile_template, sqlglot_dialect

INJECTIONS = [
    "x' OR '1'='1",
    "1; DROP TABLE items",
    "1 UNION SELECT s FROM secrets",
    ":name",
    "' || :x || '",
    "--",
    "/*",
    "é’ OR ’1’=’1",
]


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def render(
    template: str, values: dict, *, dialect: str | None = "postgres", style: str = "sqlalchemy", identifiers=None
):
    compiled = compile_template(template, list(values), dialect=dialect, identifiers=identifiers)
    return compiled.render(values, quote=quote, style=style)


@pytest.mark.parametrize("value", INJECTIONS)
@pytest.mark.parametrize("style", ["sqlalchemy", "sqlite"])
def test_values_are_bound_never_spliced(value, style):
    template = "SELECT * FROM items WHERE name = '{{ .inputs.name }}' AND id > {{.inputs.n}}"
    sql, params = render(
        template, {"name": value, "n": value}, style=style, dialect="sqlite" if style == "sqlite" else "postgres"
    )
    assert sql == "SELECT * FROM items WHERE name = :name AND id > :n"
    assert params == {"name": value, "n": value}


def test_flytekit_placeholder_syntax_is_case_insensitive_with_optional_spaces():
    sql, params = render("SELECT {{.inputs.a}}, {{ .Inputs.b }}, {{   .INPUTS.c}}", {"a": 1, "b": 2, "c": 3})
    assert sql == "SELECT :a, :b, :c"
    assert params == {"a": 1, "b": 2, "c": 3}


def test_same_input_twice_binds_one_parameter():
    sql, params = render("SELECT * FROM t WHERE a = {{ .inputs.x }} OR b = '{{ .inputs.x }}'", {"x": "v"})
    assert sql == "SELECT * FROM t WHERE a = :x OR b = :x"
    assert params == {"x": "v"}


def test_colon_words_inside_literals_and_comments_are_escaped_for_text():
    sql, _ = render("SELECT ':name', x::int FROM t -- :other\nWHERE a = {{ .inputs.a }}", {"a": 1})
    assert sql == "SELECT '\\:name', x::int FROM t -- \\:other\nWHERE a = :a"


def test_sqlalchemy_text_sends_literal_colons_unchanged():
    from sqlalchemy import create_engine, text

    sql, params = render("SELECT ':name' AS a, {{ .inputs.v }} AS b", {"v": "x' OR '1'='1"}, dialect="sqlite")
    engine = create_engine("sqlite://")
    with engine.connect() as conn:
        assert conn.execute(text(sql), params).one() == (":name", "x' OR '1'='1")


def test_cast_after_a_placeholder_keeps_the_bind_readable():
    sql, _ = render("SELECT {{ .inputs.limit }}::int", {"limit": 3})
    assert sql == "SELECT :limit ::int"


def test_list_values_expand():
    sql, params = render(
        "SELECT * FROM t WHERE id IN {{ .inputs.ids }}", {"ids": [1, 2, 3]}, dialect="sqlite", style="sqlite"
    )
    assert sql == "SELECT * FROM t WHERE id IN (:ids_0, :ids_1, :ids_2)"
    assert params == {"ids_0": 1, "ids_1": 2, "ids_2": 3}
    sql, params = render("SELECT * FROM t WHERE id IN {{ .inputs.ids }}", {"ids": [1, 2]}, dialect="mysql")
    assert sql == "SELECT * FROM t WHERE id IN :ids" and params == {"ids": [1, 2]}  # expanding in text()


def test_unknown_placeholder_is_an_error_like_flytekit():
    with pytest.raises(SqlRejected, match=r"Variable other in Query \(part of \{\{ \.inputs\.other \}\}\) not found"):
        compile_template("SELECT {{ .inputs.other }}", ["x"], dialect=None)


def test_unused_input_is_an_error_like_flytekit():
    with pytest.raises(SqlRejected, match="Extra Inputs have no matches in query template - missing {'y'}"):
        compile_template("SELECT {{ .inputs.x }}", ["x", "y"], dialect=None)


def test_near_miss_placeholder_is_named():
    with pytest.raises(SqlRejected, match="looks like a placeholder"):
        compile_template("SELECT {{ inputs.x }}", [], dialect=None)


def test_placeholder_inside_a_larger_literal_is_bound_as_text():
    # More in test_quoted_placeholders.py.
    sql, params = render("SELECT * FROM t WHERE name LIKE '%{{ .inputs.q }}%'", {"q": 5}, dialect="postgres")
    assert sql == "SELECT * FROM t WHERE name LIKE ('%' || :q || '%')" and params == {"q": "5"}


def test_placeholder_inside_a_comment_is_rejected():
    with pytest.raises(SqlRejected, match="inside a SQL comment"):
        compile_template("SELECT 1 /* {{ .inputs.q }} */", ["q"], dialect="postgres")


@pytest.mark.parametrize(
    "template",
    ["SELECT 1; DROP TABLE items", "SELECT 1; SELECT 2;", "SELECT {{ .inputs.x }}; DELETE FROM t"],
)
def test_one_statement_only(template):
    with pytest.raises(SqlRejected, match="more than one statement"):
        compile_template(template, ["x"] if "inputs" in template else [], dialect="postgres")


def test_trailing_semicolon_is_dropped():
    sql, _ = render("SELECT {{ .inputs.x }} ; ", {"x": 1})
    assert sql == "SELECT :x"


def test_collapsed_comment_swallowing_the_where_clause_is_rejected():
    collapsed = "SELECT id, name FROM items -- every row below the limit WHERE id <= {{ .inputs.max_id }}"
    with pytest.raises(SqlRejected, match="single line.*comments out the rest of the query"):
        compile_template(collapsed, ["max_id"], dialect="sqlite")
    with pytest.raises(SqlRejected, match="comments out the rest"):
        compile_template("SELECT * FROM items -- active only WHERE flag = 1", [], dialect="sqlite")


def test_collapsed_templates_without_swallowing_comments_are_accepted():
    sql, _ = render("SELECT id FROM items /* all */ WHERE id > {{ .inputs.n }} ORDER BY id", {"n": 1}, dialect="sqlite")
    assert sql == "SELECT id FROM items /* all */ WHERE id > :n ORDER BY id"
    assert render("SELECT 1 -- trailing note", {}, dialect="sqlite")[0] == "SELECT 1 -- trailing note"


def test_multiline_comments_are_fine():
    sql, _ = render("SELECT id -- the id\nFROM items WHERE id = {{ .inputs.n }}", {"n": 1})
    assert sql == "SELECT id -- the id\nFROM items WHERE id = :n"


def test_identifiers_come_only_from_the_allow_list_and_are_quoted():
    template = "SELECT * FROM {{ .inputs.table }} WHERE id = {{ .inputs.id }}"
    ids = {"table": ["items", "Sales.Q1"]}
    assert render(template, {"table": "items", "id": 1}, identifiers=ids)[0] == 'SELECT * FROM "items" WHERE id = :id'
    assert (
        render(template, {"table": "Sales.Q1", "id": 1}, identifiers=ids)[0]
        == 'SELECT * FROM "Sales"."Q1" WHERE id = :id'
    )
    with pytest.raises(SqlRejected, match="allow-listed"):
        render(template, {"table": "items; DROP TABLE items", "id": 1}, identifiers=ids)


def test_identifier_inputs_must_be_declared_and_unquoted():
    with pytest.raises(SqlRejected, match="not an input"):
        compile_template("SELECT 1", [], dialect=None, identifiers={"t": ["a"]})
    with pytest.raises(SqlRejected, match="without quotes"):
        compile_template("SELECT * FROM '{{ .inputs.t }}'", ["t"], dialect="postgres", identifiers={"t": ["a"]})


def test_values_that_cannot_be_bound_are_rejected():
    with pytest.raises(SqlRejected, match="cannot be bound"):
        render("SELECT {{ .inputs.x }}", {"x": {"a": 1}})
    with pytest.raises(SqlRejected, match="nested list"):
        render("SELECT {{ .inputs.x }}", {"x": [[1]]})


@pytest.mark.parametrize(
    ("template", "kind"),
    [
        ("SELECT 1", "read"),
        ("WITH a AS (SELECT 1) SELECT * FROM a", "read"),
        ("SELECT 1 UNION SELECT 2", "read"),
        ("DELETE FROM t", "write"),
        ("INSERT INTO t VALUES (1)", "write"),
        ("WITH d AS (DELETE FROM t RETURNING *) SELECT * FROM d", "write"),
        ("SELECT * FROM t FOR UPDATE", "write"),
        ("DROP TABLE t", "write"),
        ("CREATE TABLE x AS SELECT 1", "write"),
    ],
)
def test_statement_classification(template, kind):
    assert compile_template(template, [], dialect="postgres").kind == kind


def test_template_is_tokenized_per_dialect():
    # MySQL reads "..." as a string literal (a whole-literal placeholder), PostgreSQL as an identifier.
    assert render('SELECT "{{ .inputs.x }}"', {"x": 1}, dialect="mysql")[0] == "SELECT :x"
    with pytest.raises(SqlRejected, match="quoted identifier"):
        render('SELECT "{{ .inputs.x }}"', {"x": 1}, dialect="postgres")
    with pytest.raises(SqlRejected, match="comments out the rest"):
        compile_template("SELECT 1 # WHERE a = 1", [], dialect="mysql")


def test_sqlglot_dialect_names():
    assert sqlglot_dialect("postgresql") == "postgres"
    assert sqlglot_dialect("mariadb") == "mysql"
    assert sqlglot_dialect("somethingelse") is None


def test_unreadable_template_is_rejected():
    with pytest.raises(SqlRejected, match="cannot be read as SQL"):
        compile_template("SELECT 'unterminated", [], dialect="postgres")
    with pytest.raises(SqlRejected, match="NUL"):
        compile_template("SELECT 1\x00", [], dialect="postgres")
    with pytest.raises(SqlRejected, match="backslash"):
        compile_template("SELECT 'a\\:b'", [], dialect="postgres")


@settings(max_examples=200, deadline=None)
@given(value=st.text(min_size=1, max_size=40), dialect=st.sampled_from(["postgres", "mysql", "sqlite", None]))
def test_property_compiled_sql_never_contains_the_value(value, dialect):
    template = "SELECT * FROM items WHERE name = '{{ .inputs.v }}' OR id = {{ .inputs.v }}"
    for style in ("sqlalchemy", "sqlite"):
        sql, params = render(template, {"v": value}, dialect=dialect, style=style)
        assert sql == "SELECT * FROM items WHERE name = :v OR id = :v"
        assert params == {"v": value}


# ----------------------------------------------------------------------------- what the server will run


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("SELECT * FROM items /*!50000 INTO OUTFILE '/tmp/x' */", "INTO OUTFILE"),
        ("SELECT * FROM items /*!INTO DUMPFILE '/tmp/x'*/", "INTO DUMPFILE"),
        ("SELECT * FROM items /*! INTO OUTFILE '/tmp/x' */", "INTO OUTFILE"),
        ("SELECT * FROM items /*M!100000 INTO OUTFILE '/tmp/x' */", "INTO OUTFILE"),
        ("SELECT 1 /*!50000 , LOAD_FILE('/etc/passwd') */", "LOAD_FILE()"),
        ("SELECT * FROM items INTO OUTFILE '/tmp/x'", "INTO OUTFILE"),
        ("SELECT * FROM items\n-- note\n INTO\n/* c */ DUMPFILE '/tmp/x'", "INTO DUMPFILE"),
        ("LOAD DATA INFILE '/etc/passwd' INTO TABLE t", "LOAD"),
    ],
)
def test_mysql_executable_comments_are_classified_as_code(query, named):
    compiled = compile_template(query, [], dialect="mysql")
    assert compiled.kind == "write"
    assert named in compiled.hazard


@pytest.mark.parametrize(
    "query",
    [
        "SELECT '/*! INTO OUTFILE ''/tmp/x'' */' AS a",  # inside a literal: text, not code
        "SELECT 1 -- /*! INTO OUTFILE '/tmp/x' */",  # inside a line comment: MySQL skips it too
        "SELECT 1 /* INTO OUTFILE '/tmp/x' */",  # a plain comment
        "SELECT /*! STRAIGHT_JOIN */ id FROM items",  # an executable comment that only reads
        "SELECT lo_export, load_file FROM t",  # names, not calls
        "SELECT 'lo_export(1, ''/x'')' AS s",
        "SELECT id FROM items INTO @v",  # a user variable, no file
    ],
)
def test_harmless_lookalikes_are_not_hazards(query):
    assert compile_template(query, [], dialect="mysql").hazard == ""


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("SELECT lo_export(1, '/tmp/x')", "lo_export()"),
        ("SELECT pg_catalog.LO_EXPORT(1, '/tmp/x')", "LO_EXPORT()"),
        ("SELECT \"lo_export\"(1, '/tmp/x')", "lo_export()"),
        ("SELECT lo_import('/etc/passwd')", "lo_import()"),
        ("SELECT pg_read_file('/etc/passwd')", "pg_read_file()"),
        ("SELECT * FROM pg_ls_dir('.')", "pg_ls_dir()"),
        ("SELECT dblink_exec('dbname=x', 'DELETE FROM items')", "dblink_exec()"),
        ("SELECT query_to_xml('select 1', true, true, '')", "query_to_xml()"),
        ("SELECT pg_terminate_backend(1)", "pg_terminate_backend()"),
        ("SELECT pg_reload_conf()", "pg_reload_conf()"),
        ("COPY (SELECT 1) TO PROGRAM 'id'", "COPY"),
        ("COPY items TO '/tmp/x'", "COPY"),
        ("DO $$ BEGIN PERFORM lo_export(1, '/tmp/x'); END $$", "DO"),
        ("LOAD 'plpgsql'", "LOAD"),
        ("SELECT * FROM items WHERE id = (SELECT pg_file_write('x', 'y', false))", "pg_file_write()"),
    ],
)
def test_postgres_server_side_file_and_program_functions_are_hazards(query, named):
    compiled = compile_template(query, [], dialect="postgres")
    assert compiled.kind == "write"
    assert named in compiled.hazard


@pytest.mark.parametrize("query", ["VACUUM INTO '/tmp/copy.db'", "VACUUM", "ATTACH 'x.db' AS x KEY 'k'"])
def test_sqlite_statements_that_create_files_are_hazards(query):
    compiled = compile_template(query, [], dialect="sqlite")
    assert compiled.kind == "write" and compiled.hazard


def test_an_allowed_identifier_that_names_a_hazardous_function_is_a_hazard():
    compiled = compile_template(
        "SELECT {{ .inputs.fn }}(1, '/tmp/x')", ["fn"], dialect="postgres", identifiers={"fn": ["pg_catalog.lo_export"]}
    )
    assert compiled.kind == "write" and "lo_export()" in compiled.hazard


def test_reads_stay_reads():
    compiled = compile_template("SELECT id FROM items WHERE id IN {{ .inputs.ids }}", ["ids"], dialect="postgres")
    assert (compiled.kind, compiled.hazard) == ("read", "")


# ----------------------------------------------------------------------------- list inputs of any length


@pytest.mark.parametrize(("style", "marker"), [("pyformat", "%(ids)s"), ("sqlalchemy", ":ids")])
def test_postgres_in_list_binds_one_array(style, marker):
    ids = list(range(100_000))
    sql, params = render("SELECT * FROM t WHERE id IN {{ .inputs.ids }}", {"ids": ids}, style=style)
    assert sql == f"SELECT * FROM t WHERE id = ANY({marker})" and params == {"ids": ids}
    sql, params = render("SELECT * FROM t WHERE id NOT\nIN {{ .inputs.ids }}", {"ids": [1]}, style=style)
    assert sql == f"SELECT * FROM t WHERE id <> ALL({marker})" and params == {"ids": [1]}


def test_postgres_in_with_a_scalar_or_other_dialects_keep_their_rendering():
    sql, params = render("SELECT * FROM t WHERE id IN {{ .inputs.x }}", {"x": 3}, style="pyformat")
    assert sql == "SELECT * FROM t WHERE id IN %(x)s" and params == {"x": 3}
    sql, params = render(
        "SELECT * FROM t WHERE id NOT IN {{ .inputs.ids }}", {"ids": [1, 2]}, dialect="mysql", style="pyformat"
    )
    assert sql == "SELECT * FROM t WHERE id NOT IN (%(ids_0)s, %(ids_1)s)"


def test_sqlalchemy_clause_expands_only_lists_not_bound_as_arrays():
    compiled = compile_template(
        "SELECT * FROM t WHERE id IN {{ .inputs.ids }} AND (a, b) IN (VALUES {{ .inputs.row }})",
        ["ids", "row"],
        dialect="postgres",
    )
    clause, params = compiled.sqlalchemy_clause({"ids": [1, 2], "row": [3, 4]}, quote=quote)
    assert clause._bindparams["row"].expanding and not clause._bindparams["ids"].expanding
    assert params == {"ids": [1, 2], "row": [3, 4]}


@pytest.mark.parametrize(
    ("dialect", "style", "limit"),
    [
        ("postgres", "pyformat", 65_535),
        ("postgres", "sqlalchemy", 65_535),
        ("sqlite", "sqlite", 32_766),
        (None, "sqlalchemy", 65_535),
    ],
)
def test_expanded_lists_past_the_driver_limit_are_refused_before_sending(dialect, style, limit):
    from taskbox.sql.errors import BindLimitExceeded

    compiled = compile_template(
        "SELECT * FROM t WHERE x = {{ .inputs.a }} OR (id, 0) IN (VALUES {{ .inputs.ids }})",
        ["a", "ids"],
        dialect=dialect,
    )
    compiled.render({"a": 1, "ids": list(range(limit - 1))}, quote=quote, style=style)  # exactly the limit
    with pytest.raises(BindLimitExceeded, match=str(limit)) as info:
        compiled.render({"a": 1, "ids": list(range(limit))}, quote=quote, style=style)
    assert info.value.code == "USER:InvalidInput"


def test_sqlite_in_list_past_the_limit_is_refused_and_mysql_has_none():
    from taskbox.sql.errors import BindLimitExceeded

    template = "SELECT * FROM t WHERE id IN {{ .inputs.ids }}"
    with pytest.raises(BindLimitExceeded, match="32766"):
        render(template, {"ids": list(range(40_000))}, dialect="sqlite", style="sqlite")
    sql, params = render(template, {"ids": list(range(100_000))}, dialect="mysql", style="pyformat")
    assert len(params) == 100_000  # PyMySQL interpolates on the client: no parameter count limit
