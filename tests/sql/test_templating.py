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
    sql, params = render("SELECT * FROM t WHERE id IN {{ .inputs.ids }}", {"ids": [1, 2]})
    assert sql == "SELECT * FROM t WHERE id IN :ids" and params == {"ids": [1, 2]}


def test_unknown_placeholder_is_an_error_like_flytekit():
    with pytest.raises(SqlRejected, match=r"Variable other in Query \(part of \{\{ \.inputs\.other \}\}\) not found"):
        compile_template("SELECT {{ .inputs.other }}", ["x"], dialect=None)


def test_unused_input_is_an_error_like_flytekit():
    with pytest.raises(SqlRejected, match="Extra Inputs have no matches in query template - missing {'y'}"):
        compile_template("SELECT {{ .inputs.x }}", ["x", "y"], dialect=None)


def test_near_miss_placeholder_is_named():
    with pytest.raises(SqlRejected, match="looks like a placeholder"):
        compile_template("SELECT {{ inputs.x }}", [], dialect=None)


def test_placeholder_inside_a_larger_literal_is_rejected_with_advice():
    with pytest.raises(SqlRejected, match="must be the whole literal"):
        compile_template("SELECT * FROM t WHERE name LIKE '%{{ .inputs.q }}%'", ["q"], dialect="postgres")


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
