"""The participant executor against concurrent.futures.ThreadPoolExecutor on the same work.

Two workloads, each run on both executors in the same process, one after the other:

- ``flat``: S source threads submit N items each (a few microseconds of work apiece);
- ``fanout``: R root items each emit F follow-ups from inside a worker (with the pool,
  follow-ups are ``pool.submit`` calls from the worker, which is what code does without
  an emit API; its queue is unbounded).

Reports items/s and the p50/p99 of submit-to-start latency per executor, and the ratios
(helixpy / ThreadPoolExecutor). Prints one JSON object.

    python -m bench executor --workers 4 --items 50000
"""

from __future__ import annotations

import argparse
import json
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from bench.common import save
from helixpy.participant.executor import Executor, Item


def _spin() -> None:
    # A few microseconds of Python work: the executors' own overhead dominates.
    sum(range(50))


def _percentiles(samples: list[float]) -> tuple[float, float]:
    if len(samples) < 2:
        return (samples[0] if samples else 0.0), (samples[0] if samples else 0.0)
    q = statistics.quantiles(samples, n=100)
    return q[49], q[98]


class _Recorder:
    def __init__(self, expected: int) -> None:
        self.lock = threading.Lock()
        self.latencies: list[float] = []
        self.left = expected
        self.done = threading.Event()

    def item(self) -> Callable[[], None]:
        submitted = time.perf_counter()

        def run() -> None:
            started = time.perf_counter()
            _spin()
            with self.lock:
                self.latencies.append(started - submitted)
                self.left -= 1
                if self.left == 0:
                    self.done.set()

        return run


class _Ours:
    """helixpy's executor: sources submit, workers emit."""

    def __init__(self, workers: int) -> None:
        self.ex = Executor(workers=workers, admission_capacity=1000, internal_capacity=10000)
        self.ex.start()

    def submit(self, fn: Callable[[], None]) -> None:
        self.ex.submit(Item(fn, job="bench"))

    def emit(self, fn: Callable[[], None]) -> None:
        self.ex.emit(Item(fn, job="bench"))

    def close(self) -> None:
        self.ex.stop(10)


class _Pool:
    """``ThreadPoolExecutor``: everyone submits (its queue is unbounded)."""

    def __init__(self, workers: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=workers)

    def submit(self, fn: Callable[[], None]) -> None:
        self.pool.submit(fn)

    emit = submit

    def close(self) -> None:
        self.pool.shutdown()


Runner = Callable[[int], _Ours | _Pool]


def flat(make: Runner, workers: int, sources: int, items: int) -> tuple[float, list[float]]:
    """``sources`` threads submitting ``items`` each."""
    rec = _Recorder(sources * items)
    ex = make(workers)
    t0 = time.perf_counter()

    def source() -> None:
        for _ in range(items):
            ex.submit(rec.item())

    threads = [threading.Thread(target=source) for _ in range(sources)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    rec.done.wait(300)
    elapsed = time.perf_counter() - t0
    ex.close()
    return sources * items / elapsed, rec.latencies


def fanout(make: Runner, workers: int, roots: int, fan: int) -> tuple[float, list[float]]:
    """``roots`` items each emitting ``fan`` follow-ups from inside a worker."""
    rec = _Recorder(roots * fan)
    ex = make(workers)
    t0 = time.perf_counter()

    def root() -> None:
        for _ in range(fan):
            ex.emit(rec.item())

    for _ in range(roots):
        ex.submit(root)
    rec.done.wait(300)
    elapsed = time.perf_counter() - t0
    ex.close()
    return roots * fan / elapsed, rec.latencies


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--sources", type=int, default=4)
    parser.add_argument("--items", type=int, default=25_000, help="per source (flat)")
    parser.add_argument("--roots", type=int, default=20)
    parser.add_argument("--fan", type=int, default=5_000, help="follow-ups per root")
    args = parser.parse_args(argv)
    out: dict[str, object] = {"workers": args.workers}
    for name, scenario, a, b in (
        ("flat", flat, args.sources, args.items),
        ("fanout", fanout, args.roots, args.fan),
    ):
        ours_rate, ours_lat = scenario(_Ours, args.workers, a, b)
        pool_rate, pool_lat = scenario(_Pool, args.workers, a, b)
        o50, o99 = _percentiles(ours_lat)
        p50, p99 = _percentiles(pool_lat)
        out[name] = {
            "helixpy_items_per_s": round(ours_rate),
            "threadpool_items_per_s": round(pool_rate),
            "throughput_ratio": round(ours_rate / pool_rate, 3),
            "helixpy_latency_ms_p50_p99": [round(o50 * 1e3, 3), round(o99 * 1e3, 3)],
            "threadpool_latency_ms_p50_p99": [round(p50 * 1e3, 3), round(p99 * 1e3, 3)],
            "p99_latency_ratio": round(o99 / p99, 3) if p99 else None,
        }
    save("executor", out)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
