"""Cold start of the ``sqlite`` image: flytekit's serialized ``SQLite3Task`` (tests/golden/sql) run from
``docker run`` to exit, beside flytekit's ``pyflyte-execute`` on the same template outside a container.

The container runs the way a pod does: uid 65532, read-only root filesystem, a tmpfs ``/tmp``, host
network; the template's args go after the image's ENTRYPOINT (``taskbox``), starting ``pyflyte-execute``.
Template, inputs, database and outputs live in a folder mounted at ``/work`` (local storage: the
benchmark measures the start, not S3). The image is built on the local base (``make base-image``) once
and reused while its build key is unchanged (``taskbox-bench/sqlite:<key>``).
"""

from __future__ import annotations

import os
import shutil
import sys
import zipfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden" / "sql"
BASE_IMAGE = os.environ.get("TASKBOX_BENCH_BASE_IMAGE", "taskbox-base:bookworm")
MOUNT = Path("/work")
#: The golden inputs ask for ids <= 10 minus an "exclusion" that flytekit pastes into the SQL (where it
#: becomes ``OR '1'='1'``); with 10 rows in the table both sides return all 10.
EXPECTED_ROWS = 10


def _bench_run() -> Any:
    import run

    return run


def sqlite_image() -> str:
    """Build (or reuse) the sqlite image on the local base."""
    from taskbox import __version__
    from taskbox.images import build as sdk
    from taskbox.images.variants import build_variant

    client = sdk.docker_client()
    if not sdk.image_exists(client, BASE_IMAGE):
        raise SystemExit(f"{BASE_IMAGE} is missing: run `make base-image`")
    built = build_variant(
        client,
        "sqlite",
        base_image=BASE_IMAGE,
        version=__version__,
        revision="bench",
        source=ROOT,
        key_tag="taskbox-bench/sqlite",
    )
    return built.tag


def _case(folder: Path, uri_root: Path) -> tuple[Path, list[str]]:
    """Write template (database URI under ``uri_root``), inputs and database; return (folder, args)."""
    from flyteidl.core import tasks_pb2

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import sql as sql_bench

    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o777)  # the container's uid 65532 writes its outputs here
    db = sql_bench.make_sqlite(folder / "items.db", EXPECTED_ROWS)
    with zipfile.ZipFile(folder / "items.db.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.write(db, "items.db")
    template = tasks_pb2.TaskTemplate()
    template.ParseFromString((GOLDEN / "sqlite3_task.pb").read_bytes())
    template.custom.fields["uri"].string_value = str(uri_root / "items.db.zip")
    (folder / "task.pb").write_bytes(template.SerializeToString())
    shutil.copyfile(GOLDEN / "sqlite3_inputs.pb", folder / "inputs.pb")
    values = {
        "{{.input}}": str(uri_root / "inputs.pb"),
        "{{.outputPrefix}}": str(uri_root / "out"),
        "{{.rawOutputDataPrefix}}": str(uri_root / "raw"),
        "{{.taskTemplatePath}}": str(uri_root / "task.pb"),
    }
    return folder, [values.get(a, a) for a in template.container.args]


def _checker(folder: Path):
    import pyarrow.parquet as pq

    def check(stage: str) -> None:
        if stage == "reset":
            shutil.rmtree(folder / "out", ignore_errors=True)
            shutil.rmtree(folder / "raw", ignore_errors=True)
            return
        if (folder / "out" / "error.pb").exists() or not (folder / "out" / "outputs.pb").exists():
            raise SystemExit(f"run under {folder} did not commit outputs.pb")
        rows = sum(pq.ParquetFile(p).metadata.num_rows for p in (folder / "raw").rglob("*") if p.is_file())
        if rows != EXPECTED_ROWS:
            raise SystemExit(f"run under {folder} wrote {rows} rows, expected {EXPECTED_ROWS}")

    return check


def bench_image_cold_start(work: Path, flytekit_venv: Path, runs: int) -> list[Any]:
    """``docker run`` of the sqlite image vs flytekit's ``pyflyte-execute``, on the golden SQLite3Task."""
    run = _bench_run()
    image = sqlite_image()
    docker = shutil.which("docker")
    if docker is None:
        raise SystemExit("docker is missing: run `make docker-engine`")
    folder, args = _case(work / "image", MOUNT)
    argv = [
        docker,
        "run",
        "--rm",
        "--network",
        "host",
        "--read-only",
        "--tmpfs",
        "/tmp",
        "--user",
        "65532:65532",
        "--volume",
        f"{folder}:{MOUNT}",
        image,
        *args,
    ]
    results = [run.measure("sqlite image: docker run to exit", argv, runs, _checker(folder))]
    pyflyte = flytekit_venv / "bin" / "pyflyte-execute"
    if not pyflyte.exists():
        raise SystemExit(f"{pyflyte} is missing: run `make flytekit-venv`")
    fk_folder, fk_args = _case(work / "flytekit", work / "flytekit")
    env = dict(
        os.environ,
        FLYTE_INTERNAL_EXECUTION_ID="bench",
        FLYTE_INTERNAL_EXECUTION_PROJECT="p",
        FLYTE_INTERNAL_EXECUTION_DOMAIN="d",
    )
    results.append(
        run.measure(
            "flytekit pyflyte-execute (no container)",
            [str(pyflyte), *fk_args[1:]],
            runs,
            _checker(fk_folder),
            cwd=str(fk_folder),
            env=env,
        )
    )
    return results
