"""docs/recipes.md: each recipe is parsed (shell, YAML, Python, JSON) and its command line run locally.

The recipes call a taskbox image; here the same arguments run against the installed ``taskbox`` with
the container paths (``/data``, ``/config``, ``/tmp/outputs``, ``/airflow/xcom``, ``s3://my-bucket``)
mapped to a temporary directory and the loopback S3 server.
"""

from __future__ import annotations

import ast
import json
import re
import shlex
import sqlite3
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, TASKBOX, encode_inputs, execute_args, read_outputs, run, simple
from taskbox import storage
from taskbox.entrypoint import run as runmod
from taskbox.images.catalog import load_catalog

RECIPES = ROOT / "docs" / "recipes.md"
EXPECTED = {"n": 3, "total": 172.5}
_BLOCK = re.compile(r"<!-- recipe: ([\w-]+) -->\n```(\w+)\n(.*?)\n```", re.DOTALL)


def recipes() -> dict[str, tuple[str, str]]:
    return {name: (lang, body) for name, lang, body in _BLOCK.findall(RECIPES.read_text())}


class Sandbox:
    """The container paths of the recipes, mapped to local ones."""

    def __init__(self, root: Path, s3_base: str | None = None) -> None:
        self.data, self.config, self.out, self.xcom = (root / d for d in ("data", "config", "out", "xcom"))
        for d in (self.data, self.config):
            d.mkdir(parents=True)
        conn = sqlite3.connect(self.data / "shop.db")
        conn.execute("CREATE TABLE orders (id INTEGER PRIMARY KEY, customer TEXT, amount REAL)")
        rows = [(1, "ann", 5.0), (2, "bob", 10.0), (3, "cy", 12.5), (4, "di", 150.0), (5, "ed", 3.0)]
        conn.executemany("INSERT INTO orders VALUES (?, ?, ?)", rows)
        conn.commit()
        conn.close()
        self.mapping = {
            "/data/": f"{self.data}/",
            "/config/": f"{self.config}/",
            "/tmp/outputs": str(self.out),
            "/airflow/xcom": str(self.xcom),
        }
        if s3_base:
            self.mapping["s3://my-bucket"] = s3_base

    def local(self, text: str) -> str:
        for container, here in self.mapping.items():
            text = text.replace(container, here)
        return text

    def write_config(self, text: str) -> None:
        (self.config / "query.json").write_text(self.local(text))


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    box = Sandbox(tmp_path)
    box.write_config(recipes()["config"][1])
    return box


def assert_sqlite_image(reference: str) -> None:
    repository = load_catalog().entry("sqlite").repository
    assert reference.startswith(repository + ":"), f"{reference} is not the catalog's sqlite image"


#: Each recipe block and the test file that runs it (tests/images/orchestrators/: by the orchestrator's own client).
RUN_BY = {
    "config": "tests/images/orchestrators/recipe_clients.py",
    "docker": "tests/entrypoint/test_recipes.py",
    "argo": "tests/images/orchestrators/argo_driver.py",
    "argo-yaml": "tests/entrypoint/test_recipes.py",
    "kfp": "tests/images/orchestrators/kfp_driver.py",
    "kfp-share": "tests/images/orchestrators/test_kfp.py",
    "dagster": "tests/images/orchestrators/dagster_driver.py",
    "airflow": "tests/entrypoint/test_recipes.py",
    "airflow-docker": "tests/images/orchestrators/airflow_driver.py",
    "prefect": "tests/images/orchestrators/prefect_driver.py",
    "batch": "tests/entrypoint/test_recipes.py",
    "flyte": "tests/entrypoint/test_recipes.py",
}


def test_every_recipe_is_on_the_page_and_run_by_a_test():
    assert set(recipes()) == set(RUN_BY)
    assert all(lang in ("sh", "yaml", "python", "json") for lang, _ in recipes().values())
    for name, runner in RUN_BY.items():
        text = (ROOT / runner).read_text()
        assert f'"{name}"' in text, f"{runner} does not read the {name!r} recipe"


def test_docker_run(sandbox: Sandbox):
    words = shlex.split(recipes()["docker"][1].replace("\\\n", " "))
    assert words[:3] == ["docker", "run", "--rm"]
    image = next(i for i, w in enumerate(words) if w.startswith("ghcr.io/"))
    assert_sqlite_image(words[image])
    mounts = [words[i + 1] for i, w in enumerate(words[:image]) if w == "-v"]
    assert {m.split(":")[1] for m in mounts} == {"/data", "/config", "/tmp/outputs"}
    proc = run([TASKBOX, *(sandbox.local(w) for w in words[image + 1 :])])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == EXPECTED
    assert {p.name for p in sandbox.out.iterdir()} >= {"outputs.json", "outputs.pb", "n", "total"}


def test_argo_workflow(sandbox: Sandbox, tmp_path: Path):
    # The Workflow the argo recipe's hera code prints (tests/images/orchestrators/test_argo.py checks that
    # hera prints exactly this block, validates it against Argo's schema and runs it in the image): its
    # container's command line, here against the installed taskbox.
    lang, block = recipes()["argo-yaml"]
    assert lang == "yaml"
    workflow = yaml.safe_load(block)
    arguments = {p["name"]: p["value"] for p in workflow["spec"]["arguments"]["parameters"]}
    step = next(t for t in workflow["spec"]["templates"] if t["name"] == workflow["spec"]["entrypoint"])
    assert "== 75" in step["retryStrategy"]["expression"] and runmod.EXIT_RECOVERABLE == 75
    container = step["container"]
    assert_sqlite_image(container["image"])

    def argo(text: str) -> str:  # Argo's substitution of the step's input parameters
        return re.sub(r"\{\{inputs\.parameters\.(\w+)\}\}", lambda m: arguments[m.group(1)], text)

    env = {e["name"]: sandbox.local(argo(e["value"])) for e in container.get("env", [])}
    progress = tmp_path / "argo-progress"
    command = [TASKBOX if w == "taskbox" else w for w in container["command"]]
    proc = run([*command, *(sandbox.local(str(a)) for a in container["args"])], ARGO_PROGRESS_FILE=str(progress), **env)
    assert proc.returncode == 0, proc.stderr
    parameters = step["outputs"]["parameters"]
    outputs = {p["name"]: Path(sandbox.local(p["valueFrom"]["path"])).read_text() for p in parameters}
    assert outputs == {"n": "3", "total": "172.5"}
    assert progress.read_text() == f"{runmod.STEPS}/{runmod.STEPS}"
    assert {m["mountPath"] for m in container["volumeMounts"]} == {"/config", "/data"}


def _literal(node: ast.AST, names: dict[str, str]) -> object:
    """Evaluate a recipe's argument: constants, lists, dicts, names bound in ``names``, ConcatPlaceholder."""
    if isinstance(node, ast.Constant):
        return node.value
    if isinstance(node, ast.List):
        return [_literal(e, names) for e in node.elts]
    if isinstance(node, ast.Dict):
        return {_literal(k, names): _literal(v, names) for k, v in zip(node.keys, node.values, strict=True)}
    if isinstance(node, ast.Name):
        return names[node.id]
    if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("ConcatPlaceholder"):
        return "".join(str(p) for p in _literal(node.args[0], names))
    raise AssertionError(f"unexpected expression in a recipe: {ast.unparse(node)}")


def _call(tree: ast.AST, name: str) -> ast.Call:
    return next(n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func).endswith(name))


def test_airflow_kubernetes_pod_operator(sandbox: Sandbox):
    tree = ast.parse(recipes()["airflow"][1])
    operator = _call(tree, "KubernetesPodOperator")
    keywords = {k.arg: k.value for k in operator.keywords}
    assert_sqlite_image(_literal(keywords["image"], {}))
    assert _literal(keywords["do_xcom_push"], {}) is True
    cmds = _literal(keywords["cmds"], {})
    arguments = [sandbox.local(a) for a in _literal(keywords["arguments"], {})]
    env = {k: sandbox.local(v) for k, v in _literal(keywords["env_vars"], {}).items()}
    proc = run([TASKBOX if w == "taskbox" else w for w in cmds] + arguments, **env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads((sandbox.xcom / "return.json").read_text()) == EXPECTED  # what Airflow's xcom sidecar reads


@pytest.mark.servers
def test_aws_batch_job_definition(tmp_path: Path, s3_base: str):
    box = Sandbox(tmp_path, s3_base)
    definition = json.loads(recipes()["batch"][1])
    container = definition["containerProperties"]
    assert_sqlite_image(container["image"])
    assert {"onExitCode": "75", "action": "RETRY"} in definition["retryStrategy"]["evaluateOnExit"]
    env = {e["name"]: box.local(e["value"]) for e in container["environment"]}
    storage.write_bytes(env["TASKBOX_CONFIG"], box.local(recipes()["config"][1]).encode())
    # The job's EFS volume at /data: the database path in the config is mapped like the mount.
    assert any(m["containerPath"] == "/data" for m in container["mountPoints"])
    proc = run([TASKBOX, *container["command"]], **env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(storage.read_bytes(storage.join(env["TASKBOX_OUTPUTS"], "outputs.json"))) == EXPECTED
    assert storage.read_bytes(storage.join(env["TASKBOX_OUTPUTS"], "n")) == b"3"


def test_flyte_task_definition(sandbox: Sandbox, tmp_path: Path):
    namespace: dict[str, object] = {}
    exec(compile(sandbox.local(recipes()["flyte"][1]), "recipes.md:flyte", "exec"), namespace)
    template = namespace["template"]
    assert_sqlite_image(template.container.image)
    args = list(template.container.args)
    assert args[:2] == ["taskbox", "execute"] and "taskbox.template" in args and args[-1] == "sqlite"
    (tmp_path / "task.pb").write_bytes(template.SerializeToString())
    # As Flyte runs it: taskbox execute with inputs.pb.
    types = {"min_amount": simple("FLOAT")}
    (tmp_path / "inputs.pb").write_bytes(encode_inputs({"min_amount": 10.0}, types))
    prefix = str(tmp_path / "flyte-out")
    proc = run(execute_args(str(tmp_path / "inputs.pb"), prefix, str(tmp_path / "task.pb")))
    assert proc.returncode == 0, proc.stderr
    assert read_outputs(prefix, {"n": simple("INTEGER"), "total": simple("FLOAT")}) == EXPECTED
    # And anywhere else with taskbox run, as the recipe's last line says.
    task = str(tmp_path / "task.pb")
    proc = run([TASKBOX, "run", "--template", task, "--input", "min_amount=10", "--outputs", str(tmp_path / "o")])
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout) == EXPECTED
