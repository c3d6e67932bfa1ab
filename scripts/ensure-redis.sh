#!/usr/bin/env bash
# Make sure Debian's redis-server is installed for the Celery peer of `make bench` (the
# bench starts and stops its own server on a loopback port; the system service is unused).
set -euo pipefail
command -v redis-server >/dev/null && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing Debian's redis-server package (apt-get)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq --no-install-recommends redis-server >/dev/null 2>&1 || {
    apt-get update -qq >/dev/null
    apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  }
  exit 0
fi
echo "redis-server is not installed (the Celery peer needs it): apt-get install redis-server" >&2
exit 1
