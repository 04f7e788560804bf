#!/usr/bin/env bash
# Installs the Debian packages taskbox's targets need. As root it runs apt-get; otherwise it names
# what is missing and how to install it. Idempotent: does nothing when everything is present.
set -euo pipefail

# command -> Debian package
declare -A NEEDED=(
  [git]=git
  [/usr/bin/time]=time
  [mariadb-install-db]=mariadb-server
  [node]=nodejs  # Azurite, the Azure Storage emulator of the tests (scripts/install-test-servers.sh)
  [npm]=npm
)

missing=()
for cmd in "${!NEEDED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEEDED[$cmd]}")
done
# PostgreSQL's server binaries are not on PATH (the SQL tests start a throwaway cluster).
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
# python3 -m venv needs ensurepip, which Debian ships separately.
if ! ${PYTHON:-python3} -c "import ensurepip, venv" >/dev/null 2>&1; then
  missing+=(python3-venv)
fi

[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
else
  echo "system-deps: missing Debian packages: ${missing[*]}" >&2
  echo "system-deps: install them with: sudo apt-get install ${missing[*]}" >&2
  exit 1
fi
