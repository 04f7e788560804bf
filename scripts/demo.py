"""``make demo``: run a real SQLite query through ``taskbox execute`` on local storage and print the result.

It builds the bundled database (scripts/demo/shop.sql), writes a TaskTemplate and an inputs.pb the way
Flyte's propeller would, runs the entrypoint exactly as a container would (the installed ``taskbox``
console script with Flyte's container args), then decodes the committed ``outputs.pb`` and reads the
Parquet table it points to. Everything lands in ``demo-out/``; ``taskbox inspect`` shows any .pb file.
"""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

from taskbox.authoring import SQLiteTask
from taskbox.literals import ConversionContext, StructuredDataset, literal_map_to_python, python_to_literal_map

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "demo-out"

QUERY = """
SELECT c.name, c.country, count(o.id) AS orders, round(sum(o.total), 2) AS spent
FROM customers AS c JOIN orders AS o ON o.customer_id = c.id
WHERE o.placed >= {{ .inputs.since }}
GROUP BY c.id
HAVING spent >= {{ .inputs.min_spent }}
ORDER BY spent DESC
"""


def main() -> int:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    database = OUT / "shop.db"
    with sqlite3.connect(database) as db:
        db.executescript((ROOT / "scripts" / "demo" / "shop.sql").read_text())
    db.close()

    task = SQLiteTask("demo.top_customers", QUERY, uri=str(database), inputs={"since": str, "min_spent": float})
    template = task.to_template()
    (OUT / "task.pb").write_bytes(template.SerializeToString())
    ctx = ConversionContext(raw_output_prefix=str(OUT / "raw"), working_dir=str(OUT))
    inputs = {name: var.type for name, var in template.interface.inputs.variables.items()}
    values = {"since": "2026-10-10", "min_spent": 100.0}
    (OUT / "inputs.pb").write_bytes(python_to_literal_map(values, inputs, ctx).SerializeToString())

    args = [
        str(Path(sys.executable).with_name("taskbox")),
        "execute",
        "--inputs",
        str(OUT / "inputs.pb"),
        "--output-prefix",
        str(OUT / "outputs"),
        "--raw-output-data-prefix",
        str(OUT / "raw"),
        "--resolver",
        "taskbox.template",
        "--",
        str(OUT / "task.pb"),
        "sqlite",
    ]
    print("$ " + " ".join(args[1:]).replace(str(ROOT) + "/", ""))
    proc = subprocess.run(args, check=False)
    if proc.returncode != 0 or not (OUT / "outputs" / "outputs.pb").exists():
        print(
            f"demo failed (exit {proc.returncode}); see {OUT / 'outputs'} (taskbox inspect error.pb)", file=sys.stderr
        )
        return 1
    from flyteidl.core import literals_pb2

    committed = literals_pb2.LiteralMap()
    committed.ParseFromString((OUT / "outputs" / "outputs.pb").read_bytes())
    outputs = {name: var.type for name, var in template.interface.outputs.variables.items()}
    results: StructuredDataset = literal_map_to_python(committed, outputs, ctx)["results"]
    table = results.to_arrow()
    print(f"\ninputs: {values}")
    print(f"outputs.pb -> results = StructuredDataset({results.uri.replace(str(ROOT) + '/', '')}, parquet)")
    print(f"\n{' | '.join(table.column_names)}")
    for row in table.to_pylist():
        print(" | ".join(str(v) for v in row.values()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
