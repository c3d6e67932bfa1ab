"""What every benchmark shares: percentiles, server-side ZooKeeper counters, result files.

Results are JSON files under ``bench/results/`` (one per scenario), each stamped with the
machine and the date, so ``bench/report.py`` can render them without re-running anything.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from helixpy.testing.zookeeper import four_letter_word

RESULTS = Path(__file__).resolve().parent / "results"


def percentiles(samples: list[float], scale: float = 1e3) -> dict[str, float]:
    """p50/p90/p99 of ``samples`` (seconds), in milliseconds by default."""
    if len(samples) < 2:
        value = round(samples[0] * scale, 2) if samples else float("nan")
        return {"p50_ms": value, "p90_ms": value, "p99_ms": value}
    q = statistics.quantiles(samples, n=100, method="inclusive")
    return {
        "p50_ms": round(q[49] * scale, 2),
        "p90_ms": round(q[89] * scale, 2),
        "p99_ms": round(q[98] * scale, 2),
    }


def latency_summary(to_running: list[float], end_to_end: list[float]) -> dict[str, Any]:
    """The latency scenario's figures for one system: percentiles and every sample (ms)."""
    return {
        "submit_to_running": percentiles(to_running),
        "end_to_end": percentiles(end_to_end),
        "samples_ms": {
            "submit_to_running": [round(s * 1e3, 3) for s in to_running],
            "end_to_end": [round(s * 1e3, 3) for s in end_to_end],
        },
    }


def machine() -> dict[str, Any]:
    """What the numbers were measured on (the report prints it with every table)."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gib = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gib = round(int(line.split()[1]) / 2**20, 1)
    except OSError:
        pass
    return {
        "cpus": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": mem_gib,
        "python": platform.python_version(),
        "os": f"{platform.system()} {platform.release()}",
    }


def save(name: str, result: dict[str, Any], results: Path = RESULTS) -> Path:
    """Write ``result`` as ``results/<name>.json``, stamped with the machine and the date."""
    results.mkdir(parents=True, exist_ok=True)
    body = {
        "bench": name,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        **result,
    }
    path = results / f"{name}.json"
    path.write_text(json.dumps(body, indent=2) + "\n")
    return path


def load(name: str, results: Path = RESULTS) -> dict[str, Any] | None:
    path = results / f"{name}.json"
    if not path.exists():
        return None
    return dict(json.loads(path.read_text()))


@dataclass(frozen=True)
class ZkCounters:
    """The server's own request counters for one namespace (a cluster's root znode).

    ``read_ops`` and ``write_ops`` come from ZooKeeper's per-namespace metrics (every read
    request, and every write operation, a multi counting each op); ``txns`` is the zxid
    counter (one per committed write request, a multi counting once).
    """

    read_ops: int
    write_ops: int
    txns: int

    def __sub__(self, other: ZkCounters) -> ZkCounters:
        return ZkCounters(
            self.read_ops - other.read_ops,
            self.write_ops - other.write_ops,
            self.txns - other.txns,
        )


def zk_counters(address: str, namespace: str) -> ZkCounters:
    """Read ``mntr`` and ``srvr`` of the server at ``address`` for ``namespace``."""
    reads = writes = 0
    for line in four_letter_word(address, "mntr").splitlines():
        key, _, value = line.partition("\t")
        if key == f"zk_cnt_{namespace}_read_per_namespace":
            reads = int(value)
        elif key == f"zk_cnt_{namespace}_write_per_namespace":
            writes = int(value)
    txns = None
    for line in four_letter_word(address, "srvr").splitlines():
        if line.startswith("Zxid:"):
            txns = int(line.split(":", 1)[1].strip(), 16) & 0xFFFFFFFF
    if txns is None:
        raise RuntimeError("srvr did not report a Zxid")
    return ZkCounters(reads, writes, txns)


def wait_until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``predicate`` (a benchmark may poll: it measures, it does not synchronise)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out after {timeout:g}s waiting for {what}")
        threading.Event().wait(0.02)


def rss_mb(pid: int, peak: bool = True) -> float:
    """A process's resident set (peak by default), in MB, from /proc."""
    key = "VmHWM:" if peak else "VmRSS:"
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return round(int(line.split()[1]) / 1024, 1)
    raise RuntimeError(f"no {key} for pid {pid}")
