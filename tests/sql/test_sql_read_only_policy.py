"""Which ``sql`` runs are read-only (issue 18 item 7), on real PostgreSQL 15 and MariaDB 10.11.

A template flytekit's ``SQLAlchemyTask`` serialized (flytekit's executor class, only flytekit's ``custom``
fields) commits, as under flytekit; every other template stays read-only unless it sets ``read_only: false``;
``TASKBOX_SQL_READ_ONLY`` in the container (the image) makes every run read-only, and a template cannot lift
it through its own ``container.env``.
"""

from __future__ import annotations

import uuid

import pytest
import sqltesting
from flytekit_golden import SECRET_ENV, create_parity_tables, load, notes, run_golden, server_uri, with_custom
from google.protobuf.json_format import MessageToDict

from helpers import commit_files, make_template, read_error
from taskbox.authoring import TaskFailed, run_template
from taskbox.errors import ConfigError
from taskbox.executors.sql import SQLConfig, is_flytekit_template, read_only_mode

SETTING = "TASKBOX_SQL_READ_ONLY"
ENV = {SECRET_ENV: sqltesting.servers_module().PASSWORD}
INSERT = load("sqlalchemy_insert.pb")


def config(template) -> SQLConfig:
    return SQLConfig.model_validate(MessageToDict(template.custom))


def with_env(template, **env: str):
    copy = with_custom(template)
    for key, value in env.items():
        copy.container.env.add(key=key, value=value)
    return copy


def taskbox_template(template, **custom):
    """The same query and fields as a template taskbox's own tools make (taskbox's executor, no flytekit args)."""
    fields = {**MessageToDict(template.custom), **custom}
    types = {n: v.type for n, v in template.interface.inputs.variables.items()}
    return make_template("sqlalchemy", types, {}, fields)


# ------------------------------------------------------------------------------------ the rule, without a server


def test_flytekits_sqlalchemy_template_is_recognised_by_its_fields():
    assert is_flytekit_template(INSERT)
    assert is_flytekit_template(load("sqlalchemy_task.pb"))
    assert not is_flytekit_template(None)
    assert not is_flytekit_template(with_custom(INSERT, read_only=True))  # a taskbox field: taskbox's rules
    assert not is_flytekit_template(with_custom(INSERT, timeout_seconds=5))
    assert not is_flytekit_template(taskbox_template(INSERT))  # taskbox's executor, not flytekit's
    other = with_custom(INSERT)
    other.type = "sqlite"
    assert not is_flytekit_template(other)
    renamed = with_custom(INSERT)
    renamed.container.args[-1] = "taskbox.flytekit.executors.SQLExecutor"
    assert not is_flytekit_template(renamed)


@pytest.mark.parametrize(
    ("template", "environ", "read_only", "words"),
    [
        (INSERT, {}, False, "flytekit's SQLAlchemyTask commits"),
        (INSERT, {SETTING: "1"}, True, f"{SETTING} is set"),
        (INSERT, {SETTING: "no"}, False, "commits"),
        (with_custom(INSERT, read_only=True), {}, True, "read_only: true"),
        (with_custom(INSERT, read_only=False), {SETTING: "true"}, True, f"{SETTING} is set"),
        (taskbox_template(INSERT), {}, True, "read-only is the default"),
        (taskbox_template(INSERT, read_only=False), {}, False, "read_only: false"),
        (with_env(INSERT, **{SETTING: "on"}), {SETTING: "on"}, True, f"{SETTING} is set"),
    ],
)
def test_read_only_mode(template, environ, read_only, words):
    got, why = read_only_mode(config(template), template, environ)
    assert got is read_only and words in why


@pytest.mark.parametrize("value", ["0", "false", "", "maybe"])
def test_a_template_cannot_lift_the_images_setting(value):
    template = with_env(INSERT, **{SETTING: value})
    with pytest.raises(ConfigError, match=f"container env sets {SETTING}"):
        read_only_mode(config(template), template, {SETTING: value})


# ------------------------------------------------------------------------------------ on the servers


@pytest.fixture(scope="module", params=["postgres", "mariadb"])
def srv(request):
    return sqltesting.server(request.param)


@pytest.fixture
def empty_notes(srv):
    create_parity_tables(srv)
    return srv


def refused(template, tmp_path, code="USER:ReadOnlyViolation", **env: str) -> str:
    proc, prefix = run_golden(template, "sqlalchemy_insert_inputs.pb", tmp_path / uuid.uuid4().hex[:8], **ENV, **env)
    assert proc.returncode == 0 and commit_files(prefix) == {"error.pb"}, proc.stderr[-3000:]
    error = read_error(prefix)
    assert error.code == code, error.message
    return error.message


@pytest.mark.servers
def test_flytekit_insert_commits_unless_the_image_opts_into_read_only(empty_notes, tmp_path):
    srv = empty_notes
    template = with_custom(INSERT, uri=server_uri(srv))
    message = refused(template, tmp_path, **{SETTING: "1"})
    assert "Insert" in message and SETTING in message
    assert notes(srv) == []
    proc, prefix = run_golden(template, "sqlalchemy_insert_inputs.pb", tmp_path / "commits", **ENV, **{SETTING: "0"})
    assert proc.returncode == 0 and commit_files(prefix) == {"outputs.pb"}, proc.stderr[-3000:]
    assert notes(srv) == [(1, "by O'Brien")]


@pytest.mark.servers
def test_flytekit_insert_is_refused_when_the_template_opts_into_read_only(empty_notes, tmp_path):
    srv = empty_notes
    message = refused(with_custom(INSERT, uri=server_uri(srv), read_only=True), tmp_path)
    assert "read_only: true" in message
    in_env = with_env(with_custom(INSERT, uri=server_uri(srv)), **{SETTING: "yes"})
    message = refused(in_env, tmp_path, **{SETTING: "yes"})
    assert SETTING in message
    assert notes(srv) == []


@pytest.mark.servers
def test_template_env_cannot_lift_the_images_read_only(empty_notes, tmp_path):
    srv = empty_notes
    # In a pod, the template's env replaces the image's value: the process sees the template's.
    template = with_env(with_custom(INSERT, uri=server_uri(srv)), **{SETTING: "0"})
    message = refused(template, tmp_path, code="USER:InvalidConfig", **{SETTING: "0"})
    assert f"container env sets {SETTING}='0'" in message
    assert notes(srv) == []


@pytest.mark.servers
def test_taskbox_own_sql_task_stays_read_only_by_default(empty_notes, tmp_path, monkeypatch):
    srv = empty_notes
    monkeypatch.setenv(SECRET_ENV, ENV[SECRET_ENV])
    values = {"x": 5, "who": "taskbox"}

    def run(template):
        return run_template(template, values, workdir=str(tmp_path / uuid.uuid4().hex[:8]))

    own = taskbox_template(INSERT, uri=server_uri(srv))
    with pytest.raises(TaskFailed) as info:
        run(own)
    assert info.value.code == "USER:ReadOnlyViolation" and "read_only: false" in str(info.value)
    monkeypatch.setenv(SETTING, "1")
    with pytest.raises(TaskFailed) as info:
        run(taskbox_template(INSERT, uri=server_uri(srv), read_only=False))
    assert info.value.code == "USER:ReadOnlyViolation" and SETTING in str(info.value)
    assert notes(srv) == []
    monkeypatch.delenv(SETTING)
    assert run(taskbox_template(INSERT, uri=server_uri(srv), read_only=False)) == {}
    assert notes(srv) == [(5, "by taskbox")]
