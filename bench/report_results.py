"""The report's "Results" section (``bench/results/results.json``, from ``bench.results_flow``),
kept apart from ``bench/report.py``, which is long enough."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.report import Lines, _err, _get, _num, _ratio, _table


def results_section(rs: dict[str, Any], img: Path) -> Lines:
    ours = rs.get("helixpy") or {}
    theirs = rs.get("celery") or {}
    size_kb = (rs.get("size") or 0) / 1000
    out = [
        f"{_num(rs.get('runs'))} runs each, one after the other, on an idle cluster (one "
        "participant; Celery: one prefork worker, Redis as broker and backend). Value round "
        "trip: a one-task workflow whose result the client awaits and reads (Celery: "
        "`delay(x).get()`); async: the same through `AsyncTaskDriver`. Pipeline: three jobs "
        f"passing a {size_kb:.0f} KB value (`ctx.parent_results`; Celery: a chain of three "
        "tasks), end to end.",
        "",
    ]
    rows = []
    for key, label, peer_key in (
        ("round_trip", "Value round trip (TaskDriver)", "round_trip"),
        ("async_round_trip", "Value round trip (AsyncTaskDriver)", "round_trip"),
        ("pipeline", f"3-job pipeline, {size_kb:.0f} KB value", "pipeline"),
    ):
        rows.append(
            [
                label,
                _num(_get(ours, key, "p50_ms"), 1),
                _num(_get(ours, key, "p90_ms"), 1),
                _num(_get(theirs, peer_key, "p50_ms"), 1),
                _ratio(_get(rs, "ratios", f"{key}_p50_helixpy_over_celery")),
            ]
        )
    out += _table(["Shape", "helixpy p50 ms", "p90 ms", "Celery p50 ms", "helixpy / Celery"], rows)
    error = _err(theirs)
    if error:
        out += [f"Celery did not run: {error}", ""]
    out += [
        f"ZooKeeper per pipeline: {_num(ours.get('pipeline_zk_txns'))} write transactions, "
        f"{_num(ours.get('pipeline_zk_write_ops'))} write operations (the server's counters).",
        "",
    ]
    return out
