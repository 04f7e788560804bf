"""The ledger merges per-worker counts: under pytest-xdist the controller prints one table of every worker's runs."""

from __future__ import annotations

import json

from reliability.ledger import ERROR, LOST, OUTPUTS, Ledger


def _worker(records: list[tuple[str, str, int]]) -> Ledger:
    ledger = Ledger()
    for family, verdict, faults in records:
        ledger.record(family, verdict, faults=faults, detail=f"{family} detail")
    return ledger


def test_merged_exports_count_like_one_ledger_that_saw_every_run(tmp_path):
    first = [("storage / sqlite", OUTPUTS, 2), ("storage / http", ERROR, 1)]
    second = [("storage / http", OUTPUTS, 3), ("kill / upload", LOST, 0), ("storage / sqlite", ERROR, 1)]
    controller = Ledger()
    for records in (first, second):
        controller.merge(json.loads(json.dumps(_worker(records).export())))  # as xdist ships it
    single = _worker(first + second)

    assert controller.rows() == single.rows()
    assert controller.table() == single.table()
    assert controller.lost_details == ["kill / upload: kill / upload detail"]
    path = tmp_path / "summary.json"
    controller.write_json(str(path))
    assert json.loads(path.read_text()) == single.export()


def test_merging_an_empty_export_changes_nothing():
    ledger = _worker([("hostile SQL", ERROR, 1)])
    before = ledger.export()
    ledger.merge(Ledger().export())
    assert ledger.export() == before
