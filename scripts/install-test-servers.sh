#!/usr/bin/env bash
# Install the loopback test servers: moto's S3 server and the GCS emulator into their own venv, and
# Azurite (the Azure Storage emulator, from the npm registry) into its own folder.
#
# Why a separate venv: moto[server] pulls a botocore newer than the one aiobotocore (s3fs) pins, which
# breaks s3fs in the project venv (docs/test-environment.md, point 4). The two servers get along
# with each other, so one venv holds both. Azurite is a Node.js program: npm installs it (with the
# machine's node and npm; `make system-deps` installs Debian's nodejs and npm) into a folder of the
# repository. Tests start all three as subprocesses (tests/servers.py), bound to 127.0.0.1 only.
#
# Idempotent: each part does nothing when its servers are already there. Uses the python3 on PATH unless
# PYTHON is set. The venv path is TASKBOX_SERVERS_VENV (default: <repo>/.venv-servers), Azurite's
# folder TASKBOX_AZURITE_DIR (default: <repo>/.azurite).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TASKBOX_SERVERS_VENV:-$repo/.venv-servers}"
azurite_dir="${TASKBOX_AZURITE_DIR:-$repo/.azurite}"
python="${PYTHON:-python3}"

# Pinned to major lines known to work; upgrade deliberately.
packages=("moto[server]>=5,<6" "gcp-storage-emulator>=2024.8.3")
# Azurite 3.35.0 is the last release that runs on Node.js 20 (3.36 and later need Node.js 22).
azurite_version="3.35.0"

check() {
    "$venv/bin/python" - <<'PY' 2>/dev/null
import importlib.util, shutil, sys, os
ok = all(importlib.util.find_spec(m) for m in ("moto.server", "gcp_storage_emulator"))
ok = ok and os.path.exists(os.path.join(os.path.dirname(sys.executable), "moto_server"))
sys.exit(0 if ok else 1)
PY
}

check_azurite() {
    [ -x "$azurite_dir/node_modules/.bin/azurite-blob" ] || return 1
    [ "$("$azurite_dir/node_modules/.bin/azurite-blob" --version 2>/dev/null)" = "$azurite_version" ]
}

if [ -x "$venv/bin/python" ] && check; then
    echo "test servers already installed in $venv"
else
    echo "installing test servers into $venv (with $("$python" --version 2>&1))"
    "$python" -m venv "$venv"
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${packages[@]}"
    if ! check; then
        echo "error: moto_server or gcp_storage_emulator is not importable from $venv after installing" >&2
        exit 1
    fi
    echo "test servers installed in $venv"
fi

if check_azurite; then
    echo "Azurite $azurite_version already installed in $azurite_dir"
else
    if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
        echo "error: Azurite needs Node.js and npm: run \`make system-deps\` (apt-get install nodejs npm)" >&2
        exit 1
    fi
    echo "installing Azurite $azurite_version into $azurite_dir (with Node.js $(node --version))"
    mkdir -p "$azurite_dir"
    # --ignore-scripts: nothing runs at install time; Azurite needs no build step.
    npm install --prefix "$azurite_dir" --no-audit --no-fund --omit=dev --ignore-scripts --loglevel=error \
        "azurite@$azurite_version"
    if ! check_azurite; then
        echo "error: azurite-blob $azurite_version does not run from $azurite_dir after installing" >&2
        exit 1
    fi
    echo "Azurite $azurite_version installed in $azurite_dir"
fi
