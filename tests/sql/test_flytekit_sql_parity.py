"""flytekit parity of SQL templates (issue 18 items 5-7): each golden template made by flytekit 1.16.31 runs
through ``taskbox execute`` and through flytekit's own executor (``pyflyte-execute`` from .venv-flytekit), on
real PostgreSQL 15, MariaDB 10.11 and SQLite, and flytekit reads both outputs back.

* Item 5: nullable integer and boolean columns keep their types in taskbox's Parquet (int64/bool with
  nulls; flytekit's pandas writes doubles), and every reader gets the intended values.
* Item 6: placeholders inside string literals run (the literal becomes a concatenation with a bound
  value), with flytekit's results for ordinary values and without its breakage or injection otherwise.
* Item 7: a flytekit ``SQLAlchemyTask`` without outputs that INSERTs commits, as under flytekit (opting
  into read-only is tested in test_sql_read_only_policy.py).
"""

from __future__ import annotations

import math

import pytest
import sqltesting
from flytekit_golden import (
    MANIFEST,
    NULLABLE,
    PEOPLE,
    SECRET_ENV,
    create_parity_tables,
    load,
    make_parity_sqlite,
    notes,
    read_nullable,
    read_with_flytekit,
    run_golden,
    server_uri,
    with_custom,
)

from helpers import commit_files, read_error

pytestmark = pytest.mark.servers

ENV = {SECRET_ENV: sqltesting.servers_module().PASSWORD}
BIG = 2**53 + 1


@pytest.fixture(scope="module", params=["postgres", "mariadb"])
def srv(request):
    server = sqltesting.server(request.param)
    create_parity_tables(server)
    return server


def on(srv, name: str):
    return with_custom(load(name), uri=server_uri(srv))


def both(template, inputs, tmp_path, flytekit_python, **env):
    """Run on taskbox and on flytekit; both must succeed. Returns the two output prefixes."""
    proc, ours = run_golden(template, inputs, tmp_path / "taskbox", **{**ENV, **env})
    assert proc.returncode == 0 and commit_files(ours) == {"outputs.pb"}, proc.stderr[-3000:]
    proc, theirs = run_golden(template, inputs, tmp_path / "flytekit", flytekit_python=flytekit_python, **ENV)
    assert proc.returncode == 0 and commit_files(theirs) == {"outputs.pb"}, proc.stderr[-3000:]
    return ours, theirs


def flytekit_fails(template, inputs, tmp_path, flytekit_python) -> str:
    """Run on flytekit, expecting its pasted SQL to fail; return its error message."""
    proc, prefix = run_golden(template, inputs, tmp_path / "flytekit", flytekit_python=flytekit_python, **ENV)
    assert commit_files(prefix) != {"outputs.pb"}, "flytekit ran the query"
    return read_error(prefix).message if commit_files(prefix) == {"error.pb"} else proc.stderr


def same_values(got: list, want: list) -> bool:
    """Equal, with NaN equal to NaN (and never to None or a number)."""
    if len(got) != len(want):
        return False
    for g, w in zip(got, want, strict=True):
        if isinstance(w, float) and math.isnan(w):
            if not (isinstance(g, float) and math.isnan(g)):
                return False
        elif g != w or type(g) is not type(w):
            return False
    return True


# ------------------------------------------------------------------------------------ item 5: nullable columns


def test_nullable_integer_and_boolean_columns_read_back_right_everywhere(srv, tmp_path, flytekit_python):
    maria = "mariadb" in server_uri(srv)
    ours, theirs = both(on(srv, "sqlalchemy_nullable.pb"), "empty_inputs.pb", tmp_path, flytekit_python)
    got, flytekits = read_nullable(flytekit_python, ours), read_nullable(flytekit_python, theirs)
    ints = [n for _, n, _ in NULLABLE]
    bools = [b if b is None or not maria else int(b) for _, _, b in NULLABLE]  # MariaDB's BOOLEAN is TINYINT(1)

    # taskbox keeps the database's types: int64 (and bool, or MariaDB's tinyint as int64) with nulls ...
    assert got["pyarrow"]["types"] == {
        "id": "int32" if not maria else "int64",
        "n": "int64",
        "b": "int64" if maria else "bool",
    }
    assert got["pyarrow"]["values"]["n"] == ints and got["pyarrow"]["values"]["b"] == bools
    # ... where flytekit's pandas wrote doubles (and MariaDB's tinyint too).
    assert flytekits["pyarrow"]["types"]["n"] == "double"
    assert flytekits["pyarrow"]["types"]["b"] == ("double" if maria else "bool")

    # pandas with nullable dtypes reads every value exactly, nulls as <NA>.
    nullable = got["pandas_nullable"]
    assert nullable["dtypes"]["n"] == "Int64" and nullable["values"]["n"] == [1, "<NA>", BIG, -7]
    assert nullable["dtypes"]["b"] == ("Int64" if maria else "boolean")
    assert nullable["values"]["b"] == [True if not maria else 1, "<NA>", False if not maria else 0, "<NA>"]

    # flytekit's reader (pandas' default dtypes) gives the DataFrame flytekit's own task gives: float64 with NaN
    # for a nullable integer (exact up to 2**53: BIG is already rounded in flytekit's own output), an object
    # column of True/False/None for a boolean. A null never becomes a value.
    for reader in ("flytekit", "pandas"):
        frame, own = got[reader], flytekits[reader]
        for column in ("id", "n", "b"):
            if column != "id":  # PostgreSQL's integer is int32 in taskbox's Parquet, int64 in flytekit's
                assert frame["dtypes"][column] == own["dtypes"][column], (reader, column)
            assert same_values(frame["values"][column], own["values"][column]), (reader, column)
        assert frame["dtypes"]["n"] == "float64"
        assert same_values(frame["values"]["n"], [1.0, math.nan, float(BIG), -7.0])
        if maria:
            assert same_values(frame["values"]["b"], [1.0, math.nan, 0.0, math.nan])
        else:
            assert frame["dtypes"]["b"] == "object" and frame["values"]["b"] == [True, None, False, None]


def test_nullable_integer_column_from_sqlite_reads_back_right(tmp_path, flytekit_python):
    db = make_parity_sqlite(tmp_path / "nullable.db")
    template = with_custom(load("sqlite3_nullable.pb"), uri=db)
    ours, theirs = both(template, "empty_inputs.pb", tmp_path, flytekit_python)
    got, flytekits = read_nullable(flytekit_python, ours), read_nullable(flytekit_python, theirs)
    assert got["pyarrow"]["types"] == {"id": "int64", "n": "int64", "b": "int64"}
    assert got["pyarrow"]["values"]["n"] == [n for _, n, _ in NULLABLE]
    assert got["pyarrow"]["values"]["b"] == [None if b is None else int(b) for _, _, b in NULLABLE]
    assert flytekits["pyarrow"]["types"]["n"] == "double"
    assert got["pandas_nullable"]["values"]["n"] == [1, "<NA>", BIG, -7]
    for column in ("id", "n", "b"):
        assert got["flytekit"]["dtypes"][column] == flytekits["flytekit"]["dtypes"][column]
        assert same_values(got["flytekit"]["values"][column], flytekits["flytekit"]["values"][column]), column


# ------------------------------------------------------------------------------------ item 6: literals


def test_like_placeholder_gives_flytekits_rows(srv, tmp_path, flytekit_python):
    ours, theirs = both(on(srv, "sqlalchemy_like.pb"), "sqlalchemy_like_inputs.pb", tmp_path, flytekit_python)
    frame = read_with_flytekit(flytekit_python, ours)
    assert frame == read_with_flytekit(flytekit_python, theirs)
    assert frame["rows"] == [[1, "Ann"], [2, "Joanna"], [5, "Brianna"]]


def test_like_placeholder_with_a_quote_runs_where_flytekit_breaks(srv, tmp_path, flytekit_python):
    template = on(srv, "sqlalchemy_like.pb")
    assert "LIKE '%O'B%'" in MANIFEST["flytekit_queries"]["sqlalchemy_like_quote_inputs.pb"]
    flytekit_fails(template, "sqlalchemy_like_quote_inputs.pb", tmp_path, flytekit_python)
    proc, prefix = run_golden(template, "sqlalchemy_like_quote_inputs.pb", tmp_path / "taskbox", **ENV)
    assert proc.returncode == 0 and commit_files(prefix) == {"outputs.pb"}, proc.stderr[-3000:]
    assert read_with_flytekit(flytekit_python, prefix)["rows"] == [[3, "O'Brien"]]


def test_like_placeholder_injection_is_a_value(srv, tmp_path, flytekit_python):
    template, inputs = on(srv, "sqlalchemy_like.pb"), "sqlalchemy_like_injection_inputs.pb"
    assert "LIKE '%' OR 1=1 OR name LIKE '%'" in MANIFEST["flytekit_queries"][inputs]
    ours, theirs = both(template, inputs, tmp_path, flytekit_python)
    assert len(read_with_flytekit(flytekit_python, theirs)["rows"]) == len(PEOPLE)  # flytekit: injected
    assert read_with_flytekit(flytekit_python, ours)["rows"] == []  # taskbox: no name holds that text


def test_whole_literal_placeholder_binds_a_quote_where_flytekit_breaks(srv, tmp_path, flytekit_python):
    template = on(srv, "sqlalchemy_whole_literal.pb")
    flytekit_fails(template, "sqlalchemy_whole_literal_inputs.pb", tmp_path, flytekit_python)
    proc, prefix = run_golden(template, "sqlalchemy_whole_literal_inputs.pb", tmp_path / "taskbox", **ENV)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_with_flytekit(flytekit_python, prefix)["rows"] == [[3, "O'Brien"]]


def test_typed_values_inside_literals_read_as_flytekit_pastes_them(srv, tmp_path, flytekit_python):
    inputs = "sqlalchemy_typed_literal_inputs.pb"
    ours, theirs = both(on(srv, "sqlalchemy_typed_literal.pb"), inputs, tmp_path, flytekit_python)
    frame = read_with_flytekit(flytekit_python, ours)
    assert frame == read_with_flytekit(flytekit_python, theirs)
    assert frame["rows"] == [[3, "n=3;f=1.5;b=True;t=2024-01-02 03:04:05+00:00;d=1 day, 0:00:05;s=plain", "plain-'3'"]]
    assert frame["rows"][0][1] in MANIFEST["flytekit_queries"][inputs]


def test_sqlite3_task_with_placeholders_inside_literals(tmp_path, flytekit_python):
    db = make_parity_sqlite(tmp_path / "items.db")
    template = with_custom(load("sqlite3_literals.pb"), uri=db)
    ours, theirs = both(template, "sqlite3_literals_inputs.pb", tmp_path / "plain", flytekit_python)
    frame = read_with_flytekit(flytekit_python, ours)
    assert frame == read_with_flytekit(flytekit_python, theirs)
    assert frame["rows"] == [[i, f"name-{i}", "max 50, flag True"] for i in (7, 17, 27, 37, 47)]

    ours, theirs = both(template, "sqlite3_literals_injection_inputs.pb", tmp_path / "injection", flytekit_python)
    assert len(read_with_flytekit(flytekit_python, theirs)["rows"]) > 50  # flytekit: '1'='1' took over
    assert read_with_flytekit(flytekit_python, ours)["rows"] == []


# ------------------------------------------------------------------------------------ item 7: writes


def test_flytekit_insert_commits_as_under_flytekit(srv, tmp_path, flytekit_python):
    create_parity_tables(srv)
    template = on(srv, "sqlalchemy_insert.pb")
    assert not template.interface.outputs.variables  # flytekit's SQLAlchemyTask(output_schema_type=None)
    proc, prefix = run_golden(template, "sqlalchemy_insert_inputs.pb", tmp_path / "taskbox", **ENV)
    assert proc.returncode == 0 and commit_files(prefix) == {"outputs.pb"}, proc.stderr[-3000:]
    assert "read-write" in proc.stderr and "flytekit's SQLAlchemyTask" in proc.stderr
    proc, prefix = run_golden(
        template, "sqlalchemy_insert_flytekit_inputs.pb", tmp_path / "flytekit", flytekit_python=flytekit_python, **ENV
    )
    assert proc.returncode == 0 and commit_files(prefix) == {"outputs.pb"}, proc.stderr[-3000:]
    assert notes(srv) == [(1, "by O'Brien"), (2, "by flytekit")]  # both committed; taskbox bound the quote
