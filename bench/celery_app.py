"""The Celery peer's app and its tasks, loaded by the bench's Celery workers.

The broker and result backend come from ``HELIXPY_BENCH_REDIS`` (set by
``bench/celery_peer.py`` for the workers it starts), so nothing here needs a fixed port.
"""

from __future__ import annotations

import os
import random
import time

from celery import Celery  # type: ignore[import-untyped]


def noop() -> float:
    """The no-op task; returns when it started (wall clock), for submit -> running."""
    return time.time()


def blob(size: int) -> str:
    """``size`` pseudo-random hex characters: the same value helixpy's sample ``Return``
    makes with ``size`` (hex: it compresses to about half, like real data might)."""
    return random.Random(size).randbytes(size // 2 + 1).hex()[:size]


def value(x: object) -> object:
    """Returns what it was given: a task whose result is a value (a chain's next link)."""
    return x


def make_app(url: str) -> Celery:
    """A Celery app on the Redis at ``url`` (broker and result backend), with ``bench.noop``."""
    app = Celery("helixpy_bench", broker=url, backend=url)
    app.conf.update(
        # Defaults a Celery user would run with, minus the chatter that only adds noise.
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        task_ignore_result=False,
        result_expires=3600,
    )
    app.task(name="bench.noop")(noop)
    app.task(name="bench.blob")(blob)
    app.task(name="bench.value")(value)
    return app


#: what ``celery -A bench.celery_app worker`` loads
app = make_app(os.environ.get("HELIXPY_BENCH_REDIS", "redis://127.0.0.1:6379/0"))
