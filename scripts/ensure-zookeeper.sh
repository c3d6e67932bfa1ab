#!/usr/bin/env bash
# Make sure ZooKeeper's jars are installed: Debian's `zookeeper` package via apt-get when
# missing and running as root; otherwise say what to install. The overrides
# ZOOKEEPER_HOME / HELIXPY_ZOOKEEPER_CLASSPATH point helixpy at another installation.
set -euo pipefail
python=${1:-python3}
if "$python" -c 'from helixpy.testing.zookeeper import find_zookeeper_classpath as f; f()' \
    2>/dev/null; then
  exit 0
fi
if [ -n "${ZOOKEEPER_HOME:-}${HELIXPY_ZOOKEEPER_CLASSPATH:-}" ]; then
  echo "ZooKeeper not usable from ZOOKEEPER_HOME / HELIXPY_ZOOKEEPER_CLASSPATH:" >&2
  "$python" -c 'from helixpy.testing.zookeeper import find_zookeeper_classpath as f; f()' >&2
  exit 1
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "Installing Debian's zookeeper package (apt-get)..." >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq --no-install-recommends zookeeper >/dev/null
  exit 0
fi
cat >&2 <<'MSG'
ZooKeeper is not installed. Install Debian's package as root:
    apt-get install zookeeper
or point helixpy at an existing installation:
    export ZOOKEEPER_HOME=/path/to/apache-zookeeper       (its lib/*.jar are used)
    export HELIXPY_ZOOKEEPER_CLASSPATH=/path/a.jar:/path/b.jar
MSG
exit 1
