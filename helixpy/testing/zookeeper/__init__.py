"""Real ZooKeeper servers for tests, benchmarks and local development.

helixpy's correctness rests on ZooKeeper semantics (sessions, ephemerals, versions,
multi-ops, leader fail-over), so the integration tests and the benchmark run against real
``java`` ZooKeeper processes instead of a fake. This module finds the ZooKeeper jars, writes
a throw-away configuration on free loopback ports and supervises the processes:

* :func:`local_zookeeper` - one standalone server for the duration of a ``with`` block;
* :func:`local_ensemble` - an ``n``-server quorum whose members can be killed and restarted;
* :func:`run_foreground` - one server attached to the terminal (``helixpy zk start``).

Nothing here runs at import time and nothing is shared between calls: every server owns its
temporary directory (configuration, data and log) and its ports, so tests may run several
servers side by side.

The implementation is split by responsibility; import from this package, which re-exports
every public name:

* :mod:`.errors` - the exceptions;
* :mod:`.classpath` - finding the ZooKeeper jars and ``java``;
* :mod:`.jvm` - how the JVMs are launched (main classes, flags, logging config, timeouts);
* :mod:`.net` - free ports and four-letter words;
* :mod:`.server` - :class:`ZooKeeperServer`, one supervised server process;
* :mod:`.local` - :func:`local_zookeeper` and the start-retry / log-dump helpers;
* :mod:`.ensemble` - :class:`Ensemble` and :func:`local_ensemble`;
* :mod:`.foreground` - :func:`run_foreground`.
"""

from __future__ import annotations

from helixpy.testing.zookeeper.classpath import (
    CLASSPATH_ENV,
    HOME_ENV,
    NOT_FOUND_MESSAGE,
    find_zookeeper_classpath,
)
from helixpy.testing.zookeeper.ensemble import Ensemble, local_ensemble
from helixpy.testing.zookeeper.errors import (
    ZooKeeperNotFound,
    ZooKeeperNotServing,
    ZooKeeperStartError,
)
from helixpy.testing.zookeeper.foreground import run_foreground
from helixpy.testing.zookeeper.local import local_zookeeper
from helixpy.testing.zookeeper.net import four_letter_word, free_port, server_stats
from helixpy.testing.zookeeper.server import QuorumMember, ZooKeeperServer

__all__ = [
    "CLASSPATH_ENV",
    "HOME_ENV",
    "NOT_FOUND_MESSAGE",
    "Ensemble",
    "QuorumMember",
    "ZooKeeperNotFound",
    "ZooKeeperNotServing",
    "ZooKeeperServer",
    "ZooKeeperStartError",
    "find_zookeeper_classpath",
    "four_letter_word",
    "free_port",
    "local_ensemble",
    "local_zookeeper",
    "run_foreground",
    "server_stats",
]
