#!/usr/bin/env bash
# Install the loopback test servers (moto's S3 server and the GCS emulator) into their own venv.
#
# Why a separate venv: moto[server] pulls a botocore newer than the one aiobotocore (s3fs) pins, which
# breaks s3fs in the project venv (docs/test-environment.md, point 4). The two servers get along
# with each other, so one venv holds both. Tests start them as subprocesses from this venv
# (tests/servers.py), bound to 127.0.0.1 only.
#
# Idempotent: exits at once when both servers already import. Uses the python3 on PATH unless
# PYTHON is set. The venv path is TASKBOX_SERVERS_VENV (default: <repo>/.venv-servers).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${TASKBOX_SERVERS_VENV:-$repo/.venv-servers}"
python="${PYTHON:-python3}"

# Pinned to major lines known to work; upgrade deliberately.
packages=("moto[server]>=5,<6" "gcp-storage-emulator>=2024.8.3")

check() {
    "$venv/bin/python" - <<'PY' 2>/dev/null
import importlib.util, shutil, sys, os
ok = all(importlib.util.find_spec(m) for m in ("moto.server", "gcp_storage_emulator"))
ok = ok and os.path.exists(os.path.join(os.path.dirname(sys.executable), "moto_server"))
sys.exit(0 if ok else 1)
PY
}

if [ -x "$venv/bin/python" ] && check; then
    echo "test servers already installed in $venv"
    exit 0
fi

echo "installing test servers into $venv (with $("$python" --version 2>&1))"
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${packages[@]}"

if ! check; then
    echo "error: moto_server or gcp_storage_emulator is not importable from $venv after installing" >&2
    exit 1
fi
echo "test servers installed in $venv"
