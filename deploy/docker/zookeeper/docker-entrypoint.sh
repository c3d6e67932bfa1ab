#!/bin/sh
# Like the official image's entrypoint: write /conf/zoo.cfg from the environment unless
# one is mounted, and /data/myid from ZOO_MY_ID; then run the command.
set -eu
conf="$ZOO_CONF_DIR/zoo.cfg"
if [ ! -f "$conf" ]; then
  {
    echo "dataDir=$ZOO_DATA_DIR"
    echo "dataLogDir=$ZOO_DATA_LOG_DIR"
    echo "tickTime=${ZOO_TICK_TIME:-2000}"
    echo "initLimit=${ZOO_INIT_LIMIT:-5}"
    echo "syncLimit=${ZOO_SYNC_LIMIT:-2}"
    echo "maxClientCnxns=${ZOO_MAX_CLIENT_CNXNS:-60}"
    echo "standaloneEnabled=${ZOO_STANDALONE_ENABLED:-true}"
    echo "admin.enableServer=false"
    echo "4lw.commands.whitelist=${ZOO_4LW_COMMANDS_WHITELIST:-srvr}"
    if [ -n "${ZOO_SERVERS:-}" ]; then
      for server in $ZOO_SERVERS; do echo "$server"; done
    else
      echo "clientPort=2181"
    fi
  } >"$conf"
fi
if [ -n "${ZOO_MY_ID:-}" ] && [ ! -f "$ZOO_DATA_DIR/myid" ]; then
  echo "$ZOO_MY_ID" >"$ZOO_DATA_DIR/myid"
fi
exec "$@"
