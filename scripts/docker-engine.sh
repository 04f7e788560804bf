#!/usr/bin/env bash
# Makes a Docker engine available for the image targets and tests, the way the test machines need it
# (docs/test-environment.md, point 1):
#   * installs Debian's `docker.io`, `debootstrap` and `docker-registry` (the CNCF distribution registry
#     the push/pull tests start on 127.0.0.1) when missing (as root with apt-get; otherwise it names the
#     packages and the command that installs them);
#   * starts `dockerd --bridge=none --iptables=false --ip-masq=false` in the background when no engine
#     answers, and waits for `docker info`. No bridge network is ever created: containers and builds use
#     the host's network (`network_mode="host"`, `docker build --network host`).
# Idempotent: does nothing when both packages are present and an engine answers.
# Environment: DOCKERD_LOG (default /var/log/taskbox-dockerd.log), DOCKERD_WAIT_S (default 60).
set -euo pipefail

log="${DOCKERD_LOG:-/var/log/taskbox-dockerd.log}"
wait_s="${DOCKERD_WAIT_S:-60}"

# command -> Debian package
declare -A NEEDED=(
  [dockerd]=docker.io
  [debootstrap]=debootstrap
  [docker-registry]=docker-registry
)
missing=()
for cmd in "${!NEEDED[@]}"; do
  command -v "$cmd" >/dev/null 2>&1 || missing+=("${NEEDED[$cmd]}")
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "docker-engine: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
    if printf '%s\n' "${missing[@]}" | grep -qx docker-registry; then
      # The package enables a system-wide registry on 0.0.0.0:5000; the tests start their own on 127.0.0.1.
      if command -v systemctl >/dev/null 2>&1 && systemctl is-enabled --quiet docker-registry 2>/dev/null; then
        systemctl disable --now docker-registry >/dev/null 2>&1 || true
      elif [ -x /etc/init.d/docker-registry ]; then
        /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
      fi
    fi
  else
    echo "docker-engine: missing Debian packages: ${missing[*]}" >&2
    echo "docker-engine: install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
  fi
fi

if docker info >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "docker-engine: no Docker engine answers and only root can start one; run as root:" >&2
  echo "  dockerd --bridge=none --iptables=false --ip-masq=false &" >&2
  exit 1
fi

echo "docker-engine: starting dockerd (no bridge, no iptables; log: $log)"
setsid nohup dockerd --bridge=none --iptables=false --ip-masq=false >>"$log" 2>&1 </dev/null &
for _ in $(seq "$wait_s"); do
  if docker info >/dev/null 2>&1; then
    echo "docker-engine: dockerd is up"
    exit 0
  fi
  sleep 1
done
echo "docker-engine: dockerd did not answer within ${wait_s}s; see $log" >&2
exit 1
