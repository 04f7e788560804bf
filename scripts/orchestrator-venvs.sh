#!/usr/bin/env bash
# Install each orchestrator's own client into a virtual environment of its own (issue 20).
#
# Why: the recipes in docs/recipes.md are run by the real clients their users install (Kubeflow
# Pipelines' local DockerRunner, Airflow 3 with the Docker provider, Dagster with dagster-docker,
# Prefect with prefect-docker, hera for Argo). Their dependency trees conflict with each other and with
# taskbox's, so each gets a venv: .venv-<name> at the top of the repository. Versions are pinned: a new
# release of a client changes what the tests measure only when the pin is moved here.
#
# Usage: scripts/orchestrator-venvs.sh [NAME...]   (default: every client; installs run in parallel)
# Idempotent: a venv whose .installed stamp matches its pinned packages is left alone.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"

declare -A PINS=(
    [kfp]="kfp==2.17.3 kfp-kubernetes==2.17.3 docker==7.2.0"
    [airflow]="apache-airflow==3.3.2 apache-airflow-providers-docker==4.6.1"
    [dagster]="dagster==1.13.27 dagster-docker==0.29.27 dagster-pipes==1.13.27"
    [prefect]="prefect==3.9.1 prefect-docker==0.7.4"
    [hera]="hera==7.1.0 pyyaml==6.0.4 jsonschema==4.26.0"
)

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
    names=(kfp airflow dagster prefect hera)
fi

install_one() {
    local name="$1" venv="$repo/.venv-$1" pins="${PINS[$1]}" log
    if [ -f "$venv/.installed" ] && [ "$(cat "$venv/.installed")" = "$pins" ]; then
        echo "orchestrator-venvs: $name already installed in $venv"
        return 0
    fi
    log="$(mktemp)"
    echo "orchestrator-venvs: installing $pins into $venv"
    if "$python" -m venv "$venv" >"$log" 2>&1 \
        && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >>"$log" 2>&1 \
        && "$venv/bin/python" -m pip install --quiet --disable-pip-version-check $pins >>"$log" 2>&1; then
        echo "$pins" >"$venv/.installed"
        rm -f "$log"
        echo "orchestrator-venvs: $name ready"
    else
        echo "orchestrator-venvs: installing $name failed:" >&2
        grep -v "is ignored: it is neither" "$log" | tail -20 >&2
        rm -f "$log"
        return 1
    fi
}

pids=()
for name in "${names[@]}"; do
    if [ -z "${PINS[$name]+x}" ]; then
        echo "orchestrator-venvs: unknown client $name (known: ${!PINS[*]})" >&2
        exit 2
    fi
    install_one "$name" &
    pids+=($!)
done
status=0
for pid in "${pids[@]}"; do
    wait "$pid" || status=1
done
exit $status
