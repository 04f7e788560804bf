"""``taskbox fast-execute``: bundle install + ``execute`` in one process, run as the real CLI.

The bundles here carry a small executor module (``bundled_exec:Doubler``) that a ``taskbox.template``
task names, so a passing run proves the bundle was extracted and put first on ``sys.path`` before the
task loaded. The acceptance tests for ``@taskbox.task`` functions (``taskbox.function``) are in
``test_fast_execute_functions.py``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import signal
import subprocess
import tarfile
from pathlib import Path

import pytest
from flyteidl.core import errors_pb2, execution_pb2

import servers
from helpers import (
    TASKBOX,
    commit_files,
    encode_inputs,
    make_template,
    read_error,
    read_outputs,
    run,
    simple,
    subprocess_env,
    write_tar,
)
from taskbox import storage
from taskbox.bundles import extract, upload_bundle
from taskbox.entrypoint import fast_execute
from taskbox.entrypoint.fast_execute import BUNDLES_DIR, UsageError, bundle_dir, limits_from_env, parse_args
from taskbox.errors import ConfigError

INT = {"x": simple("INTEGER")}
EXECUTOR = """
from taskbox.executors.base import Executor


class Doubler(Executor):
    task_type = "double"
    summary = "doubles x (shipped in a code bundle)"

    def execute(self, context, config, inputs):
        return {"x": 2 * inputs["x"]}


class WhereAmI(Executor):
    task_type = "where"
    summary = "reports the working directory, sys.path[0] and PYTHONPATH"

    def execute(self, context, config, inputs):
        import os
        import sys

        return {"cwd": os.getcwd(), "first": sys.path[0], "pythonpath": os.environ.get("PYTHONPATH", "")}
"""
SENTINEL = b"do not touch\n"


def write_files(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root.joinpath(*rel.split("/"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


@pytest.fixture
def task(tmp_path):
    """(inputs.pb path, task.pb path) for a ``double`` template with x=21."""
    (tmp_path / "task.pb").write_bytes(make_template("double", INT, INT).SerializeToString())
    (tmp_path / "inputs.pb").write_bytes(encode_inputs({"x": 21}, INT))
    return str(tmp_path / "inputs.pb"), str(tmp_path / "task.pb")


@pytest.fixture
def source(tmp_path):
    return write_files(tmp_path / "src", {"bundled_exec.py": EXECUTOR, "data/notes.txt": "hello\n"})


def fast_args(bundle, dest, inputs, prefix, template, *, inner=("taskbox", "execute"), extra=()):
    return [
        TASKBOX, "fast-execute", "--additional-distribution", bundle, "--dest-dir", str(dest), "--",
        *inner, "--inputs", inputs, "--output-prefix", prefix, *extra,
        "--resolver", "taskbox.template", "--", template, "bundled_exec:Doubler",
    ]  # fmt: skip


def assert_doubled(prefix):
    assert commit_files(prefix) == {"outputs.pb"}
    assert read_outputs(prefix, INT) == {"x": 42}


def assert_error(prefix, code, origin, recoverable):
    assert commit_files(prefix) == {"error.pb"}
    error = read_error(prefix)
    assert error.code == code, error.message
    assert error.origin == (
        execution_pb2.ExecutionError.USER if origin == "USER" else execution_pb2.ExecutionError.SYSTEM
    )
    kind = errors_pb2.ContainerError.RECOVERABLE if recoverable else errors_pb2.ContainerError.NON_RECOVERABLE
    assert error.kind == kind
    return error


def downloads(proc) -> int:
    return proc.stderr.count("downloading code bundle")


# --- argument parsing -------------------------------------------------------------------------------


def test_parse_flytekit_shape():
    parsed = parse_args(
        [
            "--additional-distribution",
            "s3://b/x.tar.gz",
            "--dest-dir",
            ".",
            "--",
            "pyflyte-execute",
            "--inputs",
            "i",
            "--output-prefix",
            "o",
            "--resolver",
            "r",
            "--",
            "a",
        ]
    )
    assert (parsed.distribution, parsed.dest_dir) == ("s3://b/x.tar.gz", ".")
    assert parsed.execute_argv == ["--inputs", "i", "--output-prefix", "o", "--resolver", "r", "--", "a"]


def test_parse_aliases_inline_values_and_eaten_double_dash():
    parsed = parse_args(["--dynamic-addl-distro=file:///b.tar.gz", "--dynamic-dest-dir", "/d",
                         "/usr/local/bin/taskbox", "execute", "--inputs", "i"])  # fmt: skip
    assert (parsed.distribution, parsed.dest_dir) == ("file:///b.tar.gz", "/d")
    assert parsed.execute_argv == ["--inputs", "i"]


@pytest.mark.parametrize("value", ["{{ .remote_package_path }}", "{{.dest_dir}}", "", '""'])
def test_parse_placeholders_are_absent(value):
    parsed = parse_args(["--additional-distribution", value, "--dest-dir", value, "--", "pyflyte-execute"])
    assert (parsed.distribution, parsed.dest_dir) == (None, None)


@pytest.mark.parametrize(
    "argv",
    [
        ["--bogus", "x", "--", "pyflyte-execute"],
        ["--dest-dir"],
        ["--dest-dir", "."],
        ["--", "pyflyte-map-execute", "--inputs", "i"],
        ["--", "taskbox", "executors"],
        ["--", "python", "-m", "taskbox", "execute"],
    ],
)
def test_parse_rejects_malformed_command_lines(argv):
    with pytest.raises(UsageError):
        parse_args(argv)


def test_help_and_usage_errors_exit_like_argparse(tmp_path):
    assert run([TASKBOX, "fast-execute", "--help"]).returncode == 0
    proc = run([TASKBOX, "fast-execute", "--dest-dir", str(tmp_path), "--", "taskbox", "inspect", "x"])
    assert proc.returncode == 2
    assert "cannot run 'taskbox inspect' in-process" in proc.stderr
    assert list(tmp_path.iterdir()) == []


# --- limits and the destination layout --------------------------------------------------------------


def test_marker_constant_matches_the_extractor():
    assert fast_execute.MARKER == extract.MARKER


def test_default_limits_and_env_overrides():
    assert limits_from_env({}) == extract.Limits()
    limits = limits_from_env({"TASKBOX_BUNDLE_MAX_MB": "8", "TASKBOX_BUNDLE_MAX_EXTRACTED_MB": "64",
                              "TASKBOX_BUNDLE_MAX_FILES": "10", "TASKBOX_BUNDLE_MAX_RATIO": "50"})  # fmt: skip
    assert (limits.max_compressed, limits.max_total, limits.max_members, limits.max_ratio) == (
        8 * 1024**2, 64 * 1024**2, 10, 50,
    )  # fmt: skip


@pytest.mark.parametrize("value", ["0", "-1", "ten", "1.5"])
def test_malformed_limit_is_a_config_error(value):
    with pytest.raises(ConfigError, match="TASKBOX_BUNDLE_MAX_FILES"):
        limits_from_env({"TASKBOX_BUNDLE_MAX_FILES": value})


def test_bundle_dir_is_a_hash_under_the_taskbox_subdirectory(tmp_path):
    hostile = "s3://bucket/../../etc/passwd/x.tar.gz"
    path = bundle_dir(str(tmp_path), hostile)
    parent, key = os.path.split(path)
    assert parent == os.path.join(os.path.realpath(tmp_path), BUNDLES_DIR)
    assert key == hashlib.sha256(hostile.encode()).hexdigest()[:32]
    assert bundle_dir(str(tmp_path), hostile) == path
    assert bundle_dir(str(tmp_path), "s3://bucket/y.tar.gz") != path


# --- whole runs through the CLI ------------------------------------------------------------------------


def test_runs_bundled_code_and_leaves_the_dest_dir_alone(tmp_path, task, source):
    bundle = upload_bundle(str(source), str(tmp_path / "store"))
    dest = tmp_path / "work"
    write_files(dest, {"unrelated.txt": "mine\n", "bundled_exec.py": "raise SystemExit('not me')\n",
                       f"{BUNDLES_DIR}/notes-of-the-user.txt": "also mine\n"})  # fmt: skip
    before = {p: p.read_bytes() for p in dest.rglob("*") if p.is_file()}
    prefix = str(tmp_path / "out")

    first = run(fast_args(bundle, dest, *task[:1], prefix, task[1]))
    assert first.returncode == 0, first.stderr
    assert_doubled(prefix)
    assert downloads(first) == 1
    assert all(p.read_bytes() == data for p, data in before.items())  # nothing of the user's changed

    installed = Path(bundle_dir(str(dest), bundle))
    assert (installed / "data" / "notes.txt").read_text() == "hello\n"
    assert sorted(os.listdir(dest / BUNDLES_DIR)) == sorted(
        [installed.name, f".{installed.name}.lock", "notes-of-the-user.txt"]
    )

    second = run(fast_args(bundle, dest, *task[:1], prefix, task[1]))  # warm: no download, same tree
    assert second.returncode == 0, second.stderr
    assert downloads(second) == 0 and "already extracted" in second.stderr
    assert_doubled(prefix)


def test_dest_dir_defaults_to_the_working_directory(tmp_path, task, source):
    bundle = upload_bundle(str(source), str(tmp_path / "store"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    (cwd / "keep.txt").write_bytes(SENTINEL)
    args = fast_args(bundle, "x", task[0], str(tmp_path / "out"), task[1])
    del args[4:6]  # no --dest-dir
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, env=subprocess_env())
    assert proc.returncode == 0, proc.stderr
    assert_doubled(str(tmp_path / "out"))
    assert (cwd / "keep.txt").read_bytes() == SENTINEL
    assert Path(bundle_dir(str(cwd), bundle)).is_dir()


def test_bundle_is_first_on_sys_path_and_pythonpath_and_the_cwd_stays(tmp_path, task, source):
    bundle = upload_bundle(str(source), str(tmp_path / "store"))
    strings = {n: simple("STRING") for n in ("cwd", "first", "pythonpath")}
    (tmp_path / "where.pb").write_bytes(make_template("where", {}, strings).SerializeToString())
    (tmp_path / "empty.pb").write_bytes(b"")
    cwd, dest, prefix = tmp_path / "cwd", tmp_path / "dest", str(tmp_path / "out")
    cwd.mkdir()
    args = fast_args(bundle, dest, str(tmp_path / "empty.pb"), prefix, str(tmp_path / "where.pb"))
    args[-1] = "bundled_exec:WhereAmI"
    proc = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=120, env=subprocess_env())
    assert proc.returncode == 0, proc.stderr
    seen = read_outputs(prefix, strings)
    root = bundle_dir(str(dest), bundle)
    assert seen["cwd"] == str(cwd)  # flytekit does not change directory either
    assert seen["first"] == root
    assert seen["pythonpath"].split(os.pathsep)[0] == root


def test_pyflyte_execute_shaped_inner_command(tmp_path, task, source):
    bundle = upload_bundle(str(source), str(tmp_path / "store"))
    dest, prefix = tmp_path / "dest", str(tmp_path / "out")
    extra = ("--raw-output-data-prefix", str(tmp_path / "raw"), "--checkpoint-path", "{{.checkpointOutputPrefix}}",
             "--prev-checkpoint", '""', "--dynamic-addl-distro", bundle, "--dynamic-dest-dir", str(dest))  # fmt: skip
    proc = run(fast_args(bundle, dest, task[0], prefix, task[1], inner=("pyflyte-execute",), extra=extra))
    assert proc.returncode == 0, proc.stderr
    assert_doubled(prefix)


def test_absent_distribution_just_executes(tmp_path, task):
    prefix = str(tmp_path / "out")
    args = fast_args("{{ .remote_package_path }}", "{{ .dest_dir }}", task[0], prefix, task[1])
    args[-1] = "echo"
    (tmp_path / "task.pb").write_bytes(make_template("echo", INT, INT).SerializeToString())
    proc = run(args)
    assert proc.returncode == 0, proc.stderr
    assert read_outputs(prefix, INT) == {"x": 21}
    assert downloads(proc) == 0


@pytest.mark.servers
def test_bundle_from_s3_extracted_by_two_processes_at_once(tmp_path, task, source, s3_server, s3_base):
    bundle = upload_bundle(str(source), storage.join(s3_base, "bundles"))
    key_path = bundle.split("://", 1)[1]
    dest = tmp_path / "shared-dest"
    with servers.FaultProxy(s3_server.endpoint) as proxy:  # counts what reaches the server
        env = subprocess_env(AWS_ENDPOINT_URL=proxy.endpoint)
        procs = [
            subprocess.Popen(
                fast_args(bundle, dest, task[0], str(tmp_path / f"out{i}"), task[1]),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )  # fmt: skip
            for i in range(2)
        ]
        results = [p.communicate(timeout=120) for p in procs]
        bundle_gets = [r for r in proxy.requests if r[0] == "GET" and key_path in r[1]]
    assert [p.returncode for p in procs] == [0, 0], results
    for i in range(2):
        assert_doubled(str(tmp_path / f"out{i}"))
    assert sum(err.count("downloading code bundle") for _, err in results) == 1
    assert len(bundle_gets) == 1, proxy.requests
    leftovers = [e for e in os.listdir(dest / BUNDLES_DIR) if ".staging-" in e or ".download-" in e]
    assert leftovers == []


@pytest.mark.servers
def test_sigterm_during_the_download_commits_a_recoverable_error(tmp_path, task, source, s3_server, s3_base):
    bundle = upload_bundle(str(source), storage.join(s3_base, "bundles"))
    dest, prefix = tmp_path / "dest", str(tmp_path / "out")
    stall = servers.Stall(after_bytes=0)  # the bundle's GET gets no answer until released
    with servers.FaultProxy(s3_server.endpoint, servers.FailFirst(1, stall, method="GET")) as proxy:
        env = subprocess_env(AWS_ENDPOINT_URL=proxy.endpoint, TASKBOX_TERM_GRACE_S="20")
        proc = subprocess.Popen(fast_args(bundle, dest, task[0], prefix, task[1]),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)  # fmt: skip
        try:
            assert stall.stalled.wait(timeout=60), "the download never started"
            proc.send_signal(signal.SIGTERM)
            _, stderr = proc.communicate(timeout=60)
        finally:
            stall.release.set()
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 143, stderr
    assert_error(prefix, "SYSTEM:Terminated", "SYSTEM", recoverable=True)
    key = os.path.basename(bundle_dir(str(dest), bundle))
    assert os.listdir(dest / BUNDLES_DIR) == [f".{key}.lock"]  # no partial download, staging or tree


# --- failures end in error.pb ----------------------------------------------------------------------------


def hostile_bundle(path: Path, members, **options) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_tar(path, members, **options)


def _zero_bomb(path: Path) -> str:
    """256 MiB of zeros in one member (about 250 KiB of gzip): over the 200:1 ratio past 64 MiB."""
    size, chunk = 256 * 1024**2, bytes(4 * 1024**2)
    info = tarfile.TarInfo("zeros.bin")
    info.size = size
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6, mtime=0) as gz:
        gz.write(info.tobuf(format=tarfile.GNU_FORMAT))
        for _ in range(size // len(chunk)):
            gz.write(chunk)
        gz.write(bytes(1024))
    return str(path)


def _truncated(path: Path) -> str:
    hostile_bundle(path, [({"name": f"m{i}.py"}, os.urandom(4000)) for i in range(8)])
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return str(path)


def _zip(path: Path) -> str:
    import zipfile

    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("../../sentinel.txt", b"overwritten")
    return str(path)


def _members(*members, **options):
    return lambda path: hostile_bundle(path, list(members), **options)


# The archives of reliability-security.md section 1 (the in-process variants are in tests/bundles).
HOSTILE = {
    "dotdot": _members(({"name": "ok.py"}, b"x"), ({"name": "../../../sentinel.txt"}, b"overwritten")),
    "absolute": _members(({"name": "/tmp/taskbox-absolute-escape.txt"}, b"x")),
    "symlink-then-through": _members(
        ({"name": "link", "type": tarfile.SYMTYPE, "linkname": "/"}, None), ({"name": "link/x"}, b"x")
    ),  # fmt: skip
    "hardlink": _members(({"name": "h", "type": tarfile.LNKTYPE, "linkname": "../../../sentinel.txt"}, None)),
    "duplicate-then-symlink": _members(
        ({"name": "a.py"}, b"x"), ({"name": "a.py", "type": tarfile.SYMTYPE, "linkname": "/etc/passwd"}, None)
    ),  # fmt: skip
    "fifo": _members(({"name": "pipe", "type": tarfile.FIFOTYPE}, None)),
    "char-device": _members(({"name": "null", "type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}, None)),
    "setuid": _members(({"name": "suid", "mode": 0o4755}, b"#!/bin/sh\n")),
    "backslash": _members(({"name": "..\\..\\x"}, b"x")),
    "non-utf8-name": _members(({"name": "bad-\udcff.py"}, b"x"), format=tarfile.GNU_FORMAT, errors="surrogateescape"),
    "marker-forged": _members(({"name": extract.MARKER}, b"evil.tar.gz")),
    "zero-bomb": _zero_bomb,
    "truncated-gzip": _truncated,
    "zip": _zip,
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_bundle_gives_a_user_error_and_touches_nothing(tmp_path, task, case):
    (tmp_path / "store").mkdir()
    bundle = HOSTILE[case](tmp_path / "store" / "evil.tar.gz")
    dest = tmp_path / "dest"
    dest.mkdir()
    (tmp_path / "sentinel.txt").write_bytes(SENTINEL)
    (dest / "sentinel.txt").write_bytes(SENTINEL)
    prefix = str(tmp_path / "out")
    proc = run(fast_args(bundle, dest, task[0], prefix, task[1]))
    assert proc.returncode == 0, proc.stderr
    error = assert_error(prefix, "USER:BundleRejected", "USER", recoverable=False)
    assert "code bundle rejected" in error.message
    assert (tmp_path / "sentinel.txt").read_bytes() == SENTINEL
    assert (dest / "sentinel.txt").read_bytes() == SENTINEL
    assert not os.path.exists("/tmp/taskbox-absolute-escape.txt")
    key = os.path.basename(bundle_dir(str(dest), bundle))
    assert sorted(os.listdir(dest)) == [BUNDLES_DIR, "sentinel.txt"]
    assert os.listdir(dest / BUNDLES_DIR) == [f".{key}.lock"]  # no tree, no staging, no download left


def test_fail_on_error_exits_1_after_the_error_document(tmp_path, task):
    (tmp_path / "store").mkdir()
    bundle = HOSTILE["dotdot"](tmp_path / "store" / "evil.tar.gz")
    prefix = str(tmp_path / "out")
    proc = run(fast_args(bundle, tmp_path / "dest", task[0], prefix, task[1], extra=("--fail-on-error",)))
    assert proc.returncode == 1
    assert_error(prefix, "USER:BundleRejected", "USER", recoverable=False)


def test_missing_bundle_is_a_system_error(tmp_path, task):
    prefix = str(tmp_path / "out")
    proc = run(fast_args(str(tmp_path / "nope.tar.gz"), tmp_path / "dest", task[0], prefix, task[1]))
    assert proc.returncode == 0, proc.stderr
    assert_error(prefix, "SYSTEM:StorageNotFound", "SYSTEM", recoverable=False)


@pytest.mark.parametrize(
    ("inputs", "code", "origin", "recoverable"),
    [  # inputs.pb is the platform's under fast-execute too (docs/reliability.md, platform-written data)
        (None, "SYSTEM:InputsNotFound", "SYSTEM", True),
        (b"\x0a\xff\xff junk", "SYSTEM:InputsCorrupt", "SYSTEM", True),
        (encode_inputs({"x": "21"}, {"x": simple("STRING")}), "USER:InvalidInput", "USER", False),
    ],
    ids=["missing", "damaged", "mistyped"],
)
def test_platform_inputs_are_blamed_as_under_execute(tmp_path, task, source, inputs, code, origin, recoverable):
    bundle = upload_bundle(str(source), str(tmp_path / "store"))
    path = tmp_path / "platform-inputs.pb"
    if inputs is not None:
        path.write_bytes(inputs)
    prefix = str(tmp_path / "out")
    proc = run(fast_args(bundle, tmp_path / "dest", str(path), prefix, task[1]))
    assert proc.returncode == 0, proc.stderr
    assert_error(prefix, code, origin, recoverable)


def test_unwritable_dest_dir_is_a_system_error(tmp_path, task, source):
    bundle = upload_bundle(str(source), str(tmp_path / "store"))
    not_a_dir = tmp_path / "file"
    not_a_dir.write_bytes(SENTINEL)
    prefix = str(tmp_path / "out")
    proc = run(fast_args(bundle, not_a_dir, task[0], prefix, task[1]))
    assert proc.returncode == 0, proc.stderr
    error = assert_error(prefix, "SYSTEM:StorageError", "SYSTEM", recoverable=True)
    assert str(not_a_dir) in error.message
    assert not_a_dir.read_bytes() == SENTINEL


def _file_size_limit(limit: int):
    def apply() -> None:  # runs in the child: writes past ``limit`` fail with EFBIG instead of SIGXFSZ
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


def test_file_system_failure_while_extracting_is_a_recoverable_system_error(tmp_path, task):
    # 4 MiB of zeros compresses to a few KiB: the download fits under the 1 MiB file size limit, the
    # extracted member does not -- the node's fault (like a full disk), not the bundle's.
    bundle = hostile_bundle(tmp_path / "store" / "big.tar.gz", [({"name": "zeros.bin"}, bytes(4 * 1024 * 1024))])
    dest, prefix = tmp_path / "dest", str(tmp_path / "out")
    proc = subprocess.run(fast_args(bundle, dest, task[0], prefix, task[1]), capture_output=True, text=True,
                          timeout=120, env=subprocess_env(), preexec_fn=_file_size_limit(1024 * 1024))  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    error = assert_error(prefix, "SYSTEM:StorageError", "SYSTEM", recoverable=True)
    assert "File too large" in error.message
    key = os.path.basename(bundle_dir(str(dest), bundle))
    assert os.listdir(dest / BUNDLES_DIR) == [f".{key}.lock"]


def test_bundle_over_the_size_limit_is_rejected_before_download(tmp_path, task):
    bundle = hostile_bundle(tmp_path / "store" / "big.tar.gz", [({"name": "blob"}, os.urandom(1024 * 1024 + 1))])
    prefix = str(tmp_path / "out")
    proc = run(fast_args(bundle, tmp_path / "dest", task[0], prefix, task[1]), TASKBOX_BUNDLE_MAX_MB="1")
    assert proc.returncode == 0, proc.stderr
    error = assert_error(prefix, "USER:BundleRejected", "USER", recoverable=False)
    assert "over the limit" in error.message
    assert downloads(proc) == 0


def test_malformed_limit_variable_is_a_user_config_error(tmp_path, task, source):
    bundle = upload_bundle(str(source), str(tmp_path / "store"))
    prefix = str(tmp_path / "out")
    proc = run(fast_args(bundle, tmp_path / "dest", task[0], prefix, task[1]), TASKBOX_BUNDLE_MAX_RATIO="lots")
    assert proc.returncode == 0, proc.stderr
    assert_error(prefix, "USER:InvalidConfig", "USER", recoverable=False)


# --- start-up cost: what each path imports ----------------------------------------------------------------

_REPORT_MODULES = """
import sys
from taskbox.entrypoint.cli import main
code = main(sys.argv[1:])
heavy = ("taskbox.bundles", "taskbox.entrypoint.fast_execute", "tarfile", "hashlib")
print(",".join(m for m in heavy if m in sys.modules))
sys.exit(code)
"""


def loaded_modules(args: list[str]) -> set[str]:
    proc = run([str(Path(TASKBOX).with_name("python")), "-c", _REPORT_MODULES, *args[1:]])
    assert proc.returncode == 0, proc.stderr
    return set(filter(None, proc.stdout.strip().split(",")))


def test_execute_and_a_warm_fast_execute_import_nothing_of_the_extractor(tmp_path, task, source):
    bundle = upload_bundle(str(source), str(tmp_path / "store"))
    dest, prefix = tmp_path / "dest", str(tmp_path / "out")
    plain = fast_args(bundle, dest, task[0], prefix, task[1])[7:]  # from "taskbox execute" on
    assert plain[:2] == ["taskbox", "execute"]
    plain[-1] = "echo"
    (tmp_path / "task.pb").write_bytes(make_template("echo", INT, INT).SerializeToString())
    assert loaded_modules([TASKBOX, *plain[1:]]) == set()
    (tmp_path / "task.pb").write_bytes(make_template("double", INT, INT).SerializeToString())

    cold = loaded_modules(fast_args(bundle, dest, task[0], prefix, task[1]))
    assert {"taskbox.bundles", "tarfile"} <= cold
    warm = loaded_modules(fast_args(bundle, dest, task[0], prefix, task[1]))
    assert warm == {"taskbox.entrypoint.fast_execute"}
    assert_doubled(prefix)
