"""The commit protocol and the error document, in-process."""

import pytest
from flyteidl.core import errors_pb2, execution_pb2, literals_pb2

from taskbox import errors, redaction
from taskbox.entrypoint import commit

K = errors_pb2.ContainerError


def _read_error(path):
    doc = errors_pb2.ErrorDocument()
    doc.ParseFromString(path.read_bytes())
    return doc.error


@pytest.mark.parametrize(
    ("exc", "code", "kind", "origin"),
    [
        (errors.InputError("bad"), "USER:InvalidInput", K.NON_RECOVERABLE, execution_pb2.ExecutionError.USER),
        (errors.RecoverableUserError("later"), "USER:Recoverable", K.RECOVERABLE, execution_pb2.ExecutionError.USER),
        (errors.StorageTransient("503"), "SYSTEM:StorageTransient", K.RECOVERABLE, execution_pb2.ExecutionError.SYSTEM),
        (errors.StorageDenied("403"), "SYSTEM:StorageDenied", K.NON_RECOVERABLE, execution_pb2.ExecutionError.SYSTEM),
        (errors.Terminated(), "SYSTEM:Terminated", K.RECOVERABLE, execution_pb2.ExecutionError.SYSTEM),
        (ZeroDivisionError("x"), "SYSTEM:ZeroDivisionError", K.RECOVERABLE, execution_pb2.ExecutionError.SYSTEM),
    ],
)
def test_error_document_fields(tmp_path, exc, code, kind, origin):
    try:
        raise exc
    except Exception as raised:  # noqa: BLE001 - the parametrised errors include plain exceptions
        uri = commit.commit_error(str(tmp_path), raised)
    assert uri == str(tmp_path / "error.pb")
    error = _read_error(tmp_path / "error.pb")
    assert (error.code, error.kind, error.origin) == (code, kind, origin)
    assert error.message.startswith(f"{type(exc).__name__}: ")
    assert "Trace:" in error.message and "Traceback" in error.message
    assert error.timestamp.seconds > 1_700_000_000


def test_message_is_bounded_and_keeps_head_and_tail(tmp_path):
    exc = RuntimeError("HEAD" + "x" * 3_000_000 + "TAIL")
    commit.commit_error(str(tmp_path), exc)
    message = _read_error(tmp_path / "error.pb").message
    assert len(message.encode()) <= commit.MAX_MESSAGE_BYTES
    assert message.startswith("RuntimeError: HEAD")
    assert "bytes cut" in message


def test_message_is_redacted(tmp_path):
    redaction.register("hunter2-password")
    try:
        commit.commit_error(str(tmp_path), RuntimeError("login failed with hunter2-password"))
    finally:
        redaction.clear()
    assert b"hunter2-password" not in (tmp_path / "error.pb").read_bytes()
    assert "login failed with ***" in _read_error(tmp_path / "error.pb").message


def test_success_removes_stale_error_and_failure_removes_stale_outputs(tmp_path):
    commit.commit_error(str(tmp_path), RuntimeError("first attempt"))
    commit.commit_outputs(str(tmp_path), literals_pb2.LiteralMap())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs.pb"]
    commit.commit_error(str(tmp_path), RuntimeError("again"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["error.pb"]


def test_distributed_error_strategy_names_and_worker(tmp_path, monkeypatch):
    monkeypatch.setenv("_F_DES", "1")
    monkeypatch.setenv("_F_WN", "worker-3")
    uri = commit.commit_error(str(tmp_path), RuntimeError("x"))
    name = uri.rsplit("/", 1)[-1]
    assert name.startswith("error-") and name.endswith(".pb") and len(name) == len("error-.pb") + 32
    assert _read_error(tmp_path / name).worker == "worker-3"


def test_error_is_committed_even_when_the_stale_outputs_cannot_be_removed(tmp_path, monkeypatch):
    # A real failing store is the fault proxy's job (tests/reliability/test_storage_faults.py); here the
    # removal alone is made to fail, which only a patched storage.remove can single out.
    commit.commit_outputs(str(tmp_path), literals_pb2.LiteralMap())

    def refuse(uri):
        raise errors.StorageTransient(f"remove {uri}: 503 SlowDown past the retry budget")

    monkeypatch.setattr(commit.storage, "remove", refuse)
    commit.commit_error(str(tmp_path), RuntimeError("upload failed"))
    # error.pb is read first by propeller, so the attempt fails (recoverably) rather than ending with nothing.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["error.pb", "outputs.pb"]
    assert "upload failed" in _read_error(tmp_path / "error.pb").message


def _error_files(path):
    return sorted(p.name for p in path.iterdir() if p.name.startswith("error"))


def test_distributed_rerun_of_a_worker_leaves_no_stale_error_document(tmp_path, monkeypatch):
    monkeypatch.setenv("_F_DES", "1")
    monkeypatch.setenv("_F_WN", "worker-3")
    commit.commit_error(str(tmp_path), RuntimeError("first run"))
    commit.commit_outputs(str(tmp_path), literals_pb2.LiteralMap())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outputs.pb"]


def test_distributed_error_file_is_one_per_worker_and_reruns_replace_it(tmp_path, monkeypatch):
    monkeypatch.setenv("_F_DES", "1")
    monkeypatch.setenv("_F_WN", "worker-3")
    first = commit.commit_error(str(tmp_path), RuntimeError("first run"))
    again = commit.commit_error(str(tmp_path), RuntimeError("second run"))
    assert first == again and len(_error_files(tmp_path)) == 1
    assert "second run" in _read_error(tmp_path / _error_files(tmp_path)[0]).message
    monkeypatch.setenv("_F_WN", "worker-4")  # another worker's document is its own, and stays
    other = commit.commit_error(str(tmp_path), RuntimeError("worker 4 failed"))
    assert other != first and len(_error_files(tmp_path)) == 2
    monkeypatch.setenv("_F_WN", "worker-3")
    commit.commit_outputs(str(tmp_path), literals_pb2.LiteralMap())
    assert [_read_error(tmp_path / name).worker for name in _error_files(tmp_path)] == ["worker-4"]


def test_distributed_worker_name_also_read_from_flytekits_long_variable(tmp_path, monkeypatch):
    monkeypatch.setenv("FLYTE_INTERNAL_DIST_ERROR_STRATEGY", "Earliest")
    monkeypatch.setenv("FLYTE_INTERNAL_WORKER_NAME", "pod-a")
    uri = commit.commit_error(str(tmp_path), RuntimeError("x"))
    assert _read_error(tmp_path / uri.rsplit("/", 1)[-1]).worker == "pod-a"
    assert commit.error_file_name() == uri.rsplit("/", 1)[-1]


def test_distributed_without_a_worker_name_keeps_flytekits_random_name(monkeypatch):
    monkeypatch.setenv("_F_DES", "1")
    monkeypatch.delenv("_F_WN", raising=False)
    monkeypatch.delenv("FLYTE_INTERNAL_WORKER_NAME", raising=False)
    assert commit.error_file_name() != commit.error_file_name()
