"""``taskbox run --image``: the sqlite executor in its image, with local folders mounted; and the README's
first-screen ``docker run`` line, run against the locally built sqlite image."""

from __future__ import annotations

import json
import os
import re
import shlex
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import yaml

from helpers import ROOT, TASKBOX, run
from taskbox.entrypoint.runimage import image_reference, mounts
from taskbox.images.catalog import default_image


def make_db(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o755)  # the image's own user (65532) reads it in the README's line
    path = folder / "app.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.executemany("INSERT INTO users VALUES (?, ?)", [(i, f"user-{i}") for i in range(1, 8)])
    conn.commit()
    conn.close()
    path.chmod(0o644)
    return path


def test_sqlite_executor_in_its_image(variant_image, tmp_path: Path):
    image = variant_image("sqlite")
    db = make_db(tmp_path / "data")
    config = tmp_path / "cfg" / "query.yaml"  # YAML: the images carry the `run` extra (PyYAML)
    config.parent.mkdir()
    config.write_text(yaml.safe_dump({"uri": str(db), "query_template": "SELECT count(*) AS n, max(name) AS top "
                                      "FROM users WHERE id <= {{ .inputs.upto }}",
                                      "interface": {"outputs": {"n": "int", "top": "str"}}}))  # fmt: skip
    out = tmp_path / "out"
    proc = run([TASKBOX, "run", "--image", image, "--executor", "sqlite", "--config", str(config),
                "--input", "upto=5", "--outputs", str(out)], timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == {"n": 5, "top": "user-5"}
    assert (out / "n").read_text() == "5" and (out / "top").read_text() == "user-5"
    assert (out / "outputs.pb").stat().st_uid == os.getuid()
    assert '"executor": "sqlite"' in proc.stderr  # the container's JSON log lines came through

    bad = tmp_path / "cfg" / "bad.json"
    bad.write_text(json.dumps({"uri": str(db), "query_template": "SELECT * FROM nope"}))
    proc = run([TASKBOX, "run", "--image", image, "--executor", "sqlite", "--config", str(bad), "--outputs", str(out)],
               timeout=300, TASKBOX_IMAGE="ignored-by-the-flag")  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert json.loads((out / "error.json").read_text())["code"] == "USER:QueryFailed"
    assert not (out / "n").exists()


def test_readme_docker_run_line(docker_client, variant_image, tmp_path: Path):
    readme = (ROOT / "README.md").read_text()
    head = "\n".join(readme.splitlines()[:40])  # the first screen
    line = next(text for text in head.splitlines() if text.startswith("docker run "))
    words = shlex.split(line)
    image_at = next(i for i, w in enumerate(words) if w.startswith("ghcr.io/"))
    assert words[image_at] == default_image("sqlite")
    mount = words[words.index("-v") + 1]
    host, bind, mode = mount.split(":")
    assert host == "$PWD" and mode == "ro"
    make_db(tmp_path / "pwd")
    container = docker_client.containers.run(
        variant_image("sqlite"), words[image_at + 1 :], volumes={str(tmp_path / "pwd"): {"bind": bind, "mode": mode}},
        detach=True,
    )  # fmt: skip
    try:
        assert container.wait(timeout=300)["StatusCode"] == 0, container.logs().decode()
        assert json.loads(container.logs(stdout=True, stderr=False)) == {"n": 7}
    finally:
        container.remove(force=True)


def test_mounts_cover_every_local_path_at_its_own_path(tmp_path: Path):
    db = make_db(tmp_path / "data")
    (tmp_path / "cfg").mkdir()
    (tmp_path / "cfg" / "q.json").write_text(json.dumps({"uri": str(db), "query_template": "SELECT 1"}))
    (tmp_path / "files").mkdir()
    ns = SimpleNamespace(
        input=[f"report={tmp_path / 'files'}", "n=5"],
        template=None, config=str(tmp_path / "cfg" / "q.json"), interface='{"outputs": {}}',
        inputs="s3://bucket/in.json", outputs=str(tmp_path / "out"), raw_output_prefix=None,
        checkpoint_path=None, prev_checkpoint=None, progress_file=str(tmp_path / "out" / "progress"),
        output_file=[f"outputs.json={tmp_path / 'xcom' / 'return.json'}"],
    )  # fmt: skip
    got = mounts(ns, str(tmp_path / "cwd"))
    assert got == {
        str(tmp_path / "cwd"): {"bind": str(tmp_path / "cwd"), "mode": "rw"},
        str(tmp_path / "cfg"): {"bind": str(tmp_path / "cfg"), "mode": "ro"},
        str(tmp_path / "out"): {"bind": str(tmp_path / "out"), "mode": "rw"},
        str(tmp_path / "xcom"): {"bind": str(tmp_path / "xcom"), "mode": "rw"},
        str(tmp_path / "data"): {"bind": str(tmp_path / "data"), "mode": "ro"},
        str(tmp_path / "files"): {"bind": str(tmp_path / "files"), "mode": "ro"},
    }
    assert (tmp_path / "out").is_dir() and (tmp_path / "xcom").is_dir()


def test_image_reference_takes_variants_and_references():
    assert image_reference("sqlite") == default_image("sqlite")
    assert image_reference("taskbox-test/sqlite:abc") == "taskbox-test/sqlite:abc"
    assert re.match(r"^ghcr\.io/taskbox/executor-http:", image_reference("http"))


def test_credential_files_of_the_passed_on_environment_are_mounted_read_only(tmp_path: Path):
    from taskbox.entrypoint.runimage import _environment

    key = tmp_path / "secrets" / "sa.json"
    key.parent.mkdir()
    key.write_text("{}")
    token = tmp_path / "cwd" / "token"  # inside a folder mounted anyway: not mounted twice
    token.parent.mkdir()
    token.write_text("t")
    environ = _environment({
        "GOOGLE_APPLICATION_CREDENTIALS": str(key), "AZURE_FEDERATED_TOKEN_FILE": str(token),
        "AZURE_STORAGE_ACCOUNT_NAME": "acct", "AWS_CONFIG_FILE": str(tmp_path / "missing"),
        "AWS_SHARED_CREDENTIALS_FILE": "relative/creds", "HOME": "/root", "DAGSTER_PIPES_CONTEXT": "x",
    })  # fmt: skip
    assert set(environ) == {
        "GOOGLE_APPLICATION_CREDENTIALS", "AZURE_FEDERATED_TOKEN_FILE", "AZURE_STORAGE_ACCOUNT_NAME",
        "AWS_CONFIG_FILE", "AWS_SHARED_CREDENTIALS_FILE",
    }  # fmt: skip
    ns = SimpleNamespace(
        input=[], template=None, config=None, interface=None, inputs=None, outputs=None, raw_output_prefix=None,
        checkpoint_path=None, prev_checkpoint=None, progress_file=None, output_file=[],
    )  # fmt: skip
    assert mounts(ns, str(tmp_path / "cwd"), environ) == {
        str(tmp_path / "cwd"): {"bind": str(tmp_path / "cwd"), "mode": "rw"},
        str(key): {"bind": str(key), "mode": "ro"},
    }
