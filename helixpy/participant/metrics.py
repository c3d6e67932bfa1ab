"""A participant's Prometheus metrics, in its own registry.

Events: attempts started (reported RUNNING) and finished (by final state), counted where
the participant reports them. Levels, read at scrape time: run state, ZooKeeper session
state, incarnation, capacity, running attempts and free slots, and the executor's queue
depths, high-water marks and counters (``Executor.metrics()``, taken under its lock).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict

from prometheus_client import CollectorRegistry, Counter
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from helixpy.participant.work import ExecutorMetrics

#: ExecutorMetrics fields that only grow: exported as counters, the rest as gauges
_EXECUTOR_COUNTERS = frozenset(
    {"processed", "failed", "skipped", "inline_runs", "blocked_submit_seconds"}
)

Levels = Mapping[str, str | int]


class ParticipantMetrics:
    """Metrics of one participant; ``registry`` is what its telemetry server serves."""

    def __init__(
        self,
        instance: str,
        levels: Callable[[], Levels],
        executor: Callable[[], ExecutorMetrics | None],
    ) -> None:
        """``levels()`` gives ``run_state``, ``session``, ``incarnation``, ``capacity``,
        ``running``, ``abandoned`` and ``multis``; ``executor()`` the executor's snapshot
        (None before it starts)."""
        self.registry = CollectorRegistry(auto_describe=False)
        self.attempts_started = Counter(
            "helixpy_participant_attempts_started",
            "Task attempts this participant reported RUNNING.",
            registry=self.registry,
        )
        self.attempts_finished = Counter(
            "helixpy_participant_attempts_finished",
            "Task attempts this participant reported finished, by final state.",
            ["state"],
            registry=self.registry,
        )
        self.instance = instance
        self.levels = levels
        self.executor = executor
        self.registry.register(_Levels(self))


class _Levels(Collector):
    """The participant's levels, read at scrape time through its metrics' functions."""

    def __init__(self, metrics: ParticipantMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterator[Metric]:
        now = self._metrics.levels()
        inst = self._metrics.instance
        yield _one(
            "helixpy_participant_run_state",
            "1 for the participant's run state.",
            ["instance", "state"],
            [inst, str(now["run_state"])],
            1,
        )
        yield _one(
            "helixpy_zookeeper_session",
            "1 for the ZooKeeper session's state.",
            ["instance", "state"],
            [inst, str(now["session"])],
            1,
        )
        for key, doc in (
            ("incarnation", "The registered incarnation (-1 before registering)."),
            ("capacity", "Concurrent tasks this instance advertises."),
            ("running", "Task attempts running now."),
            (
                "abandoned",
                "Attempts abandoned after their cancel_grace whose threads still run "
                "(each holds a slot).",
            ),
        ):
            yield _one(f"helixpy_participant_{key}", doc, ["instance"], [inst], int(now[key]))
        yield _one(
            "helixpy_participant_free_slots",
            "Capacity minus running and abandoned attempts.",
            ["instance"],
            [inst],
            max(0, int(now["capacity"]) - int(now["running"]) - int(now["abandoned"])),
        )
        multis = CounterMetricFamily(
            "helixpy_zookeeper_multis",
            "Fenced multis (state reports, content) this "
            "incarnation committed (resets with the incarnation).",
            labels=["instance"],
        )
        multis.add_metric([inst], int(now.get("multis", 0)))
        yield multis
        snap = self._metrics.executor()
        if snap is None:
            return
        for key, value in asdict(snap).items():
            name = f"helixpy_executor_{key}"
            doc = f"The task executor's {key.replace('_', ' ')}."
            family: GaugeMetricFamily | CounterMetricFamily
            if key in _EXECUTOR_COUNTERS:
                family = CounterMetricFamily(name, doc, labels=["instance"])
            else:
                family = GaugeMetricFamily(name, doc, labels=["instance"])
            family.add_metric([inst], float(value))
            yield family


def _one(name: str, doc: str, labels: list[str], values: list[str], value: float) -> Metric:
    family = GaugeMetricFamily(name, doc, labels=labels)
    family.add_metric(values, value)
    return family
