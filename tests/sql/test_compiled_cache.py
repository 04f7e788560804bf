"""The on-disk cache of compiled query templates (taskbox.sql.compiled_cache)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from taskbox.sql import compiled_cache
from taskbox.sql.errors import SqlRejected
from taskbox.sql.templating import compile_template

TEMPLATE = "SELECT * FROM {{ .inputs.tbl }} WHERE id IN {{ .inputs.ids }} AND name = '{{ .inputs.name }}'"
INPUTS = ["tbl", "ids", "name"]
IDENTIFIERS = {"tbl": ["items", "other"]}


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[str]:
    monkeypatch.setenv("TASKBOX_CACHE_DIR", str(tmp_path / "cache"))
    seen: list[str] = []

    def counting(template, inputs, *, dialect, identifiers=None):
        seen.append(template)
        return compile_template(template, inputs, dialect=dialect, identifiers=identifiers)

    monkeypatch.setattr(compiled_cache, "compile_template", counting)
    return seen


def _entries(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "cache" / "sqlite" / "compiled").glob("*.json"))


def test_a_second_compile_reads_the_cache_and_equals_a_fresh_compile(calls: list[str], tmp_path: Path) -> None:
    first = compiled_cache.compile_cached(TEMPLATE, INPUTS, dialect="sqlite", identifiers=IDENTIFIERS)
    second = compiled_cache.compile_cached(TEMPLATE, INPUTS, dialect="sqlite", identifiers=IDENTIFIERS)
    assert len(calls) == 1
    assert second == first == compile_template(TEMPLATE, INPUTS, dialect="sqlite", identifiers=IDENTIFIERS)
    values = {"tbl": "items", "ids": [1, 2], "name": "x"}
    assert second.render(values, quote=str, style="sqlite") == first.render(values, quote=str, style="sqlite")
    (entry,) = _entries(tmp_path)
    assert entry.stat().st_mode & 0o777 == 0o600


def test_another_dialect_or_identifier_list_is_a_miss(calls: list[str]) -> None:
    compiled_cache.compile_cached(TEMPLATE, INPUTS, dialect="sqlite", identifiers=IDENTIFIERS)
    compiled_cache.compile_cached(TEMPLATE, INPUTS, dialect="postgres", identifiers=IDENTIFIERS)
    compiled_cache.compile_cached(TEMPLATE, INPUTS, dialect="sqlite", identifiers={"tbl": ["items"]})
    assert len(calls) == 3


def test_a_rejected_template_is_rejected_every_time(calls: list[str], tmp_path: Path) -> None:
    bad = "SELECT 1; DELETE FROM t WHERE id = {{ .inputs.x }}"
    for _ in range(2):
        with pytest.raises(SqlRejected):
            compiled_cache.compile_cached(bad, ["x"], dialect="sqlite")
    assert len(calls) == 2
    assert _entries(tmp_path) == []


def test_a_write_stays_a_write_when_read_from_the_cache(calls: list[str]) -> None:
    template = "DELETE FROM t WHERE id = {{ .inputs.x }}"
    first = compiled_cache.compile_cached(template, ["x"], dialect="sqlite")
    second = compiled_cache.compile_cached(template, ["x"], dialect="sqlite")
    assert first.kind == second.kind == "write"
    assert len(calls) == 1


@pytest.mark.parametrize("damage", ["mode", "content", "key"])
def test_a_damaged_or_foreign_entry_is_ignored(calls: list[str], tmp_path: Path, damage: str) -> None:
    compiled_cache.compile_cached(TEMPLATE, INPUTS, dialect="sqlite", identifiers=IDENTIFIERS)
    (entry,) = _entries(tmp_path)
    if damage == "mode":
        os.chmod(entry, 0o644)  # writable by the group would be refused as well; readable is enough here
    elif damage == "content":
        entry.write_bytes(b"{not json")
    else:
        entry.write_text(entry.read_text().replace('"key": "', '"key": "0'))
    again = compiled_cache.compile_cached(TEMPLATE, INPUTS, dialect="sqlite", identifiers=IDENTIFIERS)
    assert len(calls) == 2
    assert again == compile_template(TEMPLATE, INPUTS, dialect="sqlite", identifiers=IDENTIFIERS)
