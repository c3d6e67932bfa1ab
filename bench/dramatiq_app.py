"""The Dramatiq peer's broker and its one actor, loaded by the bench's Dramatiq workers.

The Redis broker and result backend come from ``HELIXPY_BENCH_REDIS`` (set by
``bench/dramatiq_peer.py`` for the workers it starts), so nothing here needs a fixed port.
Every worker process counts itself in Redis once it has booted (``READY_KEY``), which is how
the submitter knows that all of them listen before it starts the clock.
"""

from __future__ import annotations

import os
import time
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.middleware import Middleware
from dramatiq.results import Results
from dramatiq.results.backends.redis import RedisBackend

#: incremented by every worker process once it is ready to consume
READY_KEY = "helixpy-bench:dramatiq-ready"


def noop() -> float:
    """The no-op actor; returns when it started (wall clock), as the Celery peer's does."""
    return time.time()


class _CountReady(Middleware):
    def after_worker_boot(self, broker: Any, worker: Any) -> None:
        broker.client.incr(READY_KEY)


def make_broker(url: str) -> tuple[RedisBroker, Any]:
    """A Redis broker on ``url`` with Dramatiq's default middleware, the Redis results
    middleware (results are what the submitter waits on) and the ready counter; and the
    ``noop`` actor declared on it."""
    broker = RedisBroker(url=url)  # type: ignore[no-untyped-call]
    backend = RedisBackend(url=url)  # type: ignore[no-untyped-call]
    broker.add_middleware(Results(backend=backend))  # type: ignore[no-untyped-call]
    broker.add_middleware(_CountReady())
    actor = dramatiq.actor(actor_name="noop", broker=broker, store_results=True, max_retries=0)
    return broker, actor(noop)


#: what ``dramatiq bench.dramatiq_app:broker`` loads
broker, noop_actor = make_broker(os.environ.get("HELIXPY_BENCH_REDIS", "redis://127.0.0.1:6379/0"))
dramatiq.set_broker(broker)
