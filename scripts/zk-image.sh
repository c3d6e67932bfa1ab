#!/usr/bin/env bash
# Build a ZooKeeper container image from the ZooKeeper and Java installed on this machine,
# for when no image registry is reachable: the JVM, ZooKeeper's jars and the shared
# libraries they need, at their host paths, imported with `docker import`. Its default
# command runs a server from /conf/zoo.cfg, like the official image.
#   scripts/zk-image.sh IMAGE PYTHON     (needs DOCKER_HOST pointing at a daemon)
set -euo pipefail
image=${1:-helixpy/zookeeper:local}
python=${2:-python3}
if docker image inspect "$image" >/dev/null 2>&1; then
  exit 0
fi
java=$(readlink -f "$(command -v java)")
jhome=$(dirname "$(dirname "$java")")
classpath=$("$python" -c 'from helixpy.testing.zookeeper import find_zookeeper_classpath as f; print(f())')
stage=$(mktemp -d)
trap 'rm -rf "$stage"' EXIT
copy() {  # a file at its canonical path, keeping the name it was asked by (sonames)
  local src=$1 dir
  dir=$(readlink -f "$(dirname "$src")")
  mkdir -p "$stage$dir"
  cp -L "$src" "$stage$dir/"
}
mkdir -p "$stage$(dirname "$jhome")"
# Debian links conf/ to /etc: follow links (a dangling one, like an absent src.zip, is skipped)
cp -rL "$jhome" "$stage$jhome" 2>/dev/null || true
IFS=: read -ra jars <<<"$classpath"
for jar in "${jars[@]}"; do copy "$jar"; done
for f in "$java" $(find "$jhome" -name '*.so*'); do
  ldd "$f" 2>/dev/null | awk '$2 == "=>" && $3 ~ /^\// {print $3} $1 ~ /^\// {print $1}'
done | sort -u | while read -r lib; do copy "$lib"; done
for link in lib lib64 bin sbin; do
  if [ -L "/$link" ]; then ln -s "$(readlink "/$link")" "$stage/$link"; fi
done
mkdir -p "$stage/etc" "$stage/tmp" "$stage/conf"
chmod 1777 "$stage/tmp"
cp /etc/passwd /etc/group /etc/hosts "$stage/etc/"
cmd=$("$python" -c '
import json, sys
from helixpy.testing.zookeeper.jvm import _JVM_FLAGS
java, cp = sys.argv[1:]
print(json.dumps([java, *_JVM_FLAGS, "-cp", cp,
                  "org.apache.zookeeper.server.quorum.QuorumPeerMain", "/conf/zoo.cfg"]))
' "$jhome/bin/java" "$classpath")
tar -C "$stage" -c . | docker import -c "CMD $cmd" -c "ENV JAVA_HOME=$jhome" - "$image" >/dev/null
echo "built $image from $jhome and the local ZooKeeper jars" >&2
