#!/bin/sh
# The two zkServer.sh commands compose uses: `start-foreground` (run the server from
# /conf/zoo.cfg) and `status` (exit 0 when this server answers `srvr` as a leader, a
# follower or a standalone server; the official image's healthcheck).
set -eu
home=/opt/zookeeper
case "${1:-}" in
  start-foreground)
    exec "$(cat "$home/java")" -Xms32m -Xmx256m -XX:+UseSerialGC -XX:-UsePerfData \
      -Djava.net.preferIPv4Stack=true -Dzookeeper.jmx.log4j.disable=true \
      -Dlog4j.configuration="file:$home/log4j.properties" \
      -cp "$(cat "$home/classpath")" \
      org.apache.zookeeper.server.quorum.QuorumPeerMain "$ZOO_CONF_DIR/zoo.cfg"
    ;;
  status)
    exec python3 - <<'PY'
import socket
import sys

try:
    with socket.create_connection(("127.0.0.1", 2181), timeout=5) as sock:
        sock.sendall(b"srvr")
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
except OSError as exc:
    sys.exit(f"Error contacting service: {exc}")
modes = [ln for ln in reply.decode("utf-8", "replace").splitlines() if ln.startswith("Mode:")]
print(modes[0] if modes else "no Mode in the srvr reply")
sys.exit(0 if modes and modes[0].split()[1] in ("leader", "follower", "standalone") else 1)
PY
    ;;
  *)
    echo "usage: zkServer.sh start-foreground|status" >&2
    exit 2
    ;;
esac
