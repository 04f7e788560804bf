"""Checkpoints: the ``Checkpoint`` API on every backend, and attempt 1 -> attempt 2 through the real CLI."""

from __future__ import annotations

import io
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from flyteidl.core import errors_pb2

from helpers import ROOT, commit_files, put, read_error
from taskbox import storage
from taskbox.checkpoints import DATA_FILE, Checkpoint, CheckpointError
from taskbox.context import ExecutionContext, current_context
from taskhelpers import container_command, encode, read_outputs_by_hints, run_with_path, sample_tasks


def _checkpoint(tmp_path, path: str | None, prev: str | None) -> Checkpoint:
    work = tmp_path / f"work-{uuid.uuid4().hex[:8]}"
    work.mkdir()
    return Checkpoint(path, prev, working_dir=str(work))


def test_write_then_read_in_the_next_attempt(storage_base, tmp_path):
    first = storage.join(storage_base, "cp", "0")
    _checkpoint(tmp_path, first, None).write(b"step=3")
    assert storage.read_bytes(storage.join(first, DATA_FILE)) == b"step=3"  # flytekit's object name
    second = _checkpoint(tmp_path, storage.join(storage_base, "cp", "1"), first)
    assert second.prev_exists()
    assert second.read() == b"step=3"
    assert second.read() == b"step=3"  # downloaded once, read again from the restored copy


def test_no_previous_checkpoint_reads_none(tmp_path):
    cp = _checkpoint(tmp_path, str(tmp_path / "cp"), None)
    assert not cp.prev_exists()
    assert cp.read() is None
    assert cp.restore() is None


def test_previous_attempt_that_saved_nothing_reads_none(storage_base, tmp_path):
    cp = _checkpoint(tmp_path, None, storage.join(storage_base, "never-written"))
    assert cp.prev_exists()
    assert cp.read() is None
    assert cp.restore() is None


def test_write_without_a_checkpoint_path_is_a_clear_user_error(tmp_path):
    cp = _checkpoint(tmp_path, None, None)
    with pytest.raises(CheckpointError, match="no checkpoint path") as info:
        cp.write(b"x")
    assert (info.value.origin, info.value.recoverable, info.value.code) == ("USER", False, "USER:CheckpointError")
    with pytest.raises(CheckpointError, match="no checkpoint path"):
        cp.save(io.BytesIO(b"x"))


def test_write_refuses_non_bytes(tmp_path):
    with pytest.raises(CheckpointError, match="must be bytes, got str"):
        _checkpoint(tmp_path, str(tmp_path / "cp"), None).write("text")  # type: ignore[arg-type]


def test_save_and_restore_a_directory(storage_base, tmp_path):
    src = tmp_path / "state"
    (src / "nested").mkdir(parents=True)
    (src / "model.bin").write_bytes(b"\x00\x01")
    (src / "nested" / "meta.json").write_text('{"epoch": 2}')
    first = storage.join(storage_base, "cp", "0")
    _checkpoint(tmp_path, first, None).save(src)
    restored = _checkpoint(tmp_path, None, first).restore(tmp_path / "restored")
    assert restored == tmp_path / "restored"
    assert (restored / "model.bin").read_bytes() == b"\x00\x01"
    assert (restored / "nested" / "meta.json").read_text() == '{"epoch": 2}'
    with pytest.raises(CheckpointError, match="expected exactly one file"):
        _checkpoint(tmp_path, None, first).read()


def test_save_a_file_and_a_stream(storage_base, tmp_path):
    first = storage.join(storage_base, "cp", "0")
    state = tmp_path / "state.txt"
    state.write_text("7")
    cp = _checkpoint(tmp_path, first, None)
    cp.save(str(state))
    assert storage.read_bytes(storage.join(first, "state.txt")) == b"7"
    second = storage.join(storage_base, "cp", "1")
    _checkpoint(tmp_path, second, None).save(io.BytesIO(b"streamed"))
    assert _checkpoint(tmp_path, None, second).read() == b"streamed"


def test_save_a_missing_path_and_restore_onto_a_file(tmp_path):
    with pytest.raises(CheckpointError, match="no such file or directory"):
        _checkpoint(tmp_path, str(tmp_path / "cp"), None).save(tmp_path / "missing")
    (tmp_path / "prev").mkdir()
    (tmp_path / "prev" / DATA_FILE).write_bytes(b"1")
    (tmp_path / "a-file").write_text("")
    with pytest.raises(CheckpointError, match="restore into a directory"):
        _checkpoint(tmp_path, None, str(tmp_path / "prev")).restore(tmp_path / "a-file")


def test_context_builds_its_checkpoint_from_the_entrypoint_paths(tmp_path):
    context = ExecutionContext(
        str(tmp_path / "out"),
        str(tmp_path / "raw"),
        str(tmp_path),
        checkpoint_path=str(tmp_path / "cp"),
        prev_checkpoint=None,
    )
    assert context.checkpoint is context.checkpoint
    assert (context.checkpoint.path, context.checkpoint.prev_path) == (str(tmp_path / "cp"), None)


def test_current_context_outside_a_task_raises():
    with pytest.raises(RuntimeError, match="only available while a task runs"):
        current_context()


# ---------------------------------------------------------------- two real attempts


@pytest.fixture(params=["local", "s3", "azure"])
def base(request: pytest.FixtureRequest, tmp_path, unique_prefix: str) -> str:
    if request.param == "local":
        return str(tmp_path / "store" / unique_prefix)
    return request.getfixturevalue(f"{request.param}_server").uri(unique_prefix)


def test_checkpoint_written_by_attempt_1_is_read_by_attempt_2(base, tmp_path):
    """Attempt 0 saves after each step and fails at step 3 (recoverable); attempt 1 resumes at step 3."""
    task = sample_tasks().resumable_sum
    inputs = put(
        storage.join(base, "inputs.pb"), encode({"n": 6, "fail_at": 3}, task.inputs, storage.join(base, "raw"))
    )

    def attempt(n: int, prev: str) -> tuple[str, str]:
        prefix = storage.join(base, "out", str(n))
        checkpoint = storage.join(base, "raw", str(n), "_flytecheckpoints")
        command = container_command(
            task,
            input=inputs,
            outputPrefix=prefix,
            rawOutputDataPrefix=storage.join(base, "raw", str(n)),
            checkpointOutputPrefix=checkpoint,
            prevCheckpointPrefix=prev,
        )
        proc = run_with_path(command, FLYTE_ATTEMPT_NUMBER=str(n))
        assert proc.returncode == 0, proc.stderr
        return prefix, checkpoint

    first_prefix, first_checkpoint = attempt(0, '""')  # propeller's "no previous checkpoint"
    err = read_error(first_prefix)
    assert (err.code, err.kind) == ("USER:Recoverable", errors_pb2.ContainerError.RECOVERABLE)
    assert storage.read_bytes(storage.join(first_checkpoint, DATA_FILE)) == b"[3, 3]"

    second_prefix, second_checkpoint = attempt(1, first_checkpoint)
    assert commit_files(second_prefix) == {"outputs.pb"}
    outputs = read_outputs_by_hints(second_prefix, task.outputs, str(tmp_path))
    assert outputs == {"total": 0 + 1 + 2 + 3 + 4 + 5, "resumed_from": 3}
    assert storage.read_bytes(storage.join(second_checkpoint, DATA_FILE)) == b"[6, 15]"


def test_in_process_run_with_checkpoints(tmp_path):
    task = sample_tasks().resumable_sum
    from taskbox.authoring.base import TaskFailed

    with pytest.raises(TaskFailed) as info:
        task.run_with({"n": 4, "fail_at": 2}, workdir=str(tmp_path / "a0"), checkpoint_path=str(tmp_path / "cp0"))
    assert info.value.recoverable
    result = task.run_with(
        {"n": 4, "fail_at": 2},
        workdir=str(tmp_path / "a1"),
        checkpoint_path=str(tmp_path / "cp1"),
        prev_checkpoint=str(tmp_path / "cp0"),
    )
    assert result == (6, 2)
    assert (result.total, result.resumed_from) == (6, 2)


# ---------------------------------------------------------------- flytekit interop

FLYTEKIT_CHECKPOINT = """
import sys
from flytekit.core.checkpointer import SyncCheckpoint
mode, dest, src = sys.argv[1:4]
if mode == "write":
    SyncCheckpoint(checkpoint_dest=dest).write(b"written by flytekit")
else:
    sys.stdout.write(SyncCheckpoint(checkpoint_dest=dest, checkpoint_src=src).read().decode())
"""


def test_checkpoints_interoperate_with_flytekit(tmp_path):
    """A flytekit attempt's checkpoint is read by a taskbox attempt, and the other way round."""
    python = os.environ.get("TASKBOX_FLYTEKIT_PYTHON") or str(ROOT / ".venv-flytekit" / "bin" / "python")
    if not Path(python).exists():
        subprocess.run(["make", "flytekit-venv"], cwd=ROOT, check=True, timeout=900)

    def flytekit(*args: str) -> str:
        proc = subprocess.run(
            [python, "-c", FLYTEKIT_CHECKPOINT, *args], capture_output=True, text=True, timeout=120, cwd=tmp_path
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        return proc.stdout

    flytekit("write", str(tmp_path / "fk"), "")
    assert _checkpoint(tmp_path, None, str(tmp_path / "fk")).read() == b"written by flytekit"
    _checkpoint(tmp_path, str(tmp_path / "tb"), None).write(b"written by taskbox")
    assert flytekit("read", str(tmp_path / "next"), str(tmp_path / "tb")) == "written by taskbox"
