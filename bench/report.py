"""Render ``bench/results/*.json`` as ``docs/benchmarks.md`` plus PNG charts under ``docs/img/``.

Nothing is re-run: the page is a pure function of the result files (each table prints the
file's own date and machine), so the same JSON always gives the same page and images.

    python -m bench.report [--results DIR] [--out docs/benchmarks.md]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

from bench.common import RESULTS, load

OUT = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"
# Targets used when a file predates its "targets" block (or is missing altogether).
DEFAULTS: dict[str, float] = {
    "celery_ratio_min": 1.0,
    "zk_writes_per_task_max": 0.5,
    "submit_to_running_p50_ms": 20,
    "end_to_end_p50_ms": 50,
    "target_s": 5.0,
    "controller_rss_mb_max": 500,
    "znode_bytes_max": 524288,
    "p50_ratio_max": 1.3,
    "leader_rss_mb_max": 300,
}
DASH = "—"
PCTS = ("p50_ms", "p90_ms", "p99_ms")
Lines = list[str]


def _get(data: Any, *keys: str) -> Any:
    """``data[k1][k2]...``, or None when any level is missing or not a mapping."""
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _num(value: Any, digits: int = 1) -> str:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return DASH
    if isinstance(value, float) and math.isnan(value):
        return "n/a"
    return f"{value:,}" if isinstance(value, int) else f"{value:,.{digits}f}"


def _ratio(value: Any) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return DASH
    return f"{value:.1f}x" if value >= 10 else f"{value:.2f}x"


def _div(a: Any, b: Any) -> float | None:
    if isinstance(a, int | float) and isinstance(b, int | float) and b:
        return float(a) / float(b)
    return None


def _target(data: dict[str, Any] | None, key: str) -> float:
    """A target from the file's "targets" (or top level, as failover's ``target_s``)."""
    value = _get(data, "targets", key)
    value = value if value is not None else _get(data, key)
    return float(value) if isinstance(value, int | float) else DEFAULTS[key]


def _le(limit: float, value: float) -> bool:
    return value <= limit


def _verdict(value: Any, ok: Callable[[float], bool]) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return DASH
    return "met" if ok(float(value)) else "**missed**"


def _table(header: list[str], rows: list[list[str]], text: int = 1) -> Lines:
    """A GitHub table: the first ``text`` columns left-aligned, the rest (numbers) right."""
    right = ["---:" if i >= text else "---" for i in range(len(header))]
    out = ["| " + " | ".join(header) + " |", "| " + " | ".join(right) + " |"]
    out += [
        "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in row) + " |"
        for row in rows
    ]
    return [*out, ""]


def _stamp(data: dict[str, Any]) -> str:
    m = data.get("machine")
    date = data.get("date")
    if not isinstance(m, dict) or not date:
        return "_Measured on: date and machine not recorded (older result file)._"
    model = f" ({m['cpu_model']})" if m.get("cpu_model") else ""
    return (
        f"_Measured {date} on {m.get('cpus', '?')} CPUs{model}, "
        f"{_num(m.get('memory_gib'))} GiB RAM, Python {m.get('python', '?')}, "
        f"{m.get('os', '?')}._"
    )


def _err(peer: Any) -> str | None:
    return f"error: {peer['error']}" if isinstance(peer, dict) and "error" in peer else None


def _save(fig: Figure, path: Path) -> None:
    FigureCanvasAgg(fig)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100, metadata={"Software": None})


# --- headline -----------------------------------------------------------------------------


def _headline_rows(res: dict[str, dict[str, Any] | None]) -> list[list[str]]:
    rows: list[list[str]] = []

    def row(
        scenario: str,
        what: str,
        need: str,
        value: Any,
        shown: str,
        ok: Callable[[float], bool],
        anchor: str = "",
    ) -> None:
        # the section titles are the scenarios' names unless ``anchor`` says otherwise
        link = f"[{what}](#{anchor or scenario})"
        if res[scenario] is None:
            rows.append([link, need, "not run yet", DASH])
        else:
            verdict = _verdict(value, ok)
            rows.append([link, need, DASH if verdict == DASH else shown, verdict])

    t, lat, fo, sc = res["throughput"], res["latency"], res["failover"], res["scale"]
    cmin, zmax = _target(t, "celery_ratio_min"), _target(t, "zk_writes_per_task_max")
    r = _get(t, "ratios", "helixpy_over_celery_best")
    pool = _get(t, "ratios", "celery_best_pool")
    row(
        "throughput",
        "Throughput vs Celery (best pool)",
        f"≥ {cmin:.1f}x",
        r,
        _ratio(r) + (f" (vs {pool})" if pool else ""),
        lambda v: v >= cmin,
    )
    z = _get(t, "helixpy", "zk", "txns_per_task")
    row(
        "throughput",
        "ZooKeeper write transactions per task",
        f"≤ {zmax:g}",
        z,
        _num(z, 3),
        lambda v: v <= zmax,
    )
    for key, what in (
        ("submit_to_running", "Submit → RUNNING p50"),
        ("end_to_end", "End-to-end p50"),
    ):
        lim = _target(lat, f"{key}_p50_ms")
        v = _get(lat, "helixpy", key, "p50_ms")
        row("latency", what, f"≤ {lim:g} ms", v, f"{_num(v, 1)} ms", partial(_le, lim))
    lim_s = _target(fo, "target_s")
    for role in ("leader", "participant"):
        v = _get(fo, role, "median_s")
        row(
            "failover",
            f"{role.capitalize()} failover (median)",
            f"≤ {lim_s:g} s",
            v,
            f"{_num(v, 2)} s",
            lambda x: x <= lim_s,
        )
    rss_max, zn_max = _target(sc, "controller_rss_mb_max"), _target(sc, "znode_bytes_max")
    rss = _get(sc, "big_job", "controller_peak_rss_mb")
    row(
        "scale",
        "Controller peak RSS (big job)",
        f"< {rss_max:g} MB",
        rss,
        f"{_num(rss, 1)} MB",
        lambda v: v < rss_max,
    )
    zn = _get(sc, "big_job", "largest_znode_bytes")
    row(
        "scale",
        "Largest znode (big job)",
        f"≤ {int(zn_max):,} B",
        zn,
        f"{_num(zn)} B",
        lambda v: v <= zn_max,
    )
    hi = res.get("history")
    hmax = _target(hi, "p50_ratio_max")
    hr = _get(hi, "p50_ratio_last_over_first")
    steps = _get(hi, "steps")
    top = _get(steps[-1], "retained") if isinstance(steps, list) and steps else None
    if "history" in res:
        row(
            "history",
            f"Start p50 with {_num(top)} finished workflows retained / with none",
            f"≤ {hmax:g}x",
            hr,
            _ratio(hr),
            lambda v: v <= hmax,
        )
        rss_lim = _target(hi, "leader_rss_mb_max")
        rss_top = _get(steps[-1], "leader_rss_mb") if isinstance(steps, list) and steps else None
        row(
            "history",
            f"Controller RSS with {_num(top)} finished workflows retained",
            f"< {rss_lim:g} MB",
            rss_top,
            f"{_num(rss_top, 1)} MB",
            lambda v: v < rss_lim,
        )
    sm = res.get("small")
    if "small" in res:
        vs_celery = _get(sm, "ratios", "helixpy_best_over_celery")
        best_mode = _get(sm, "ratios", "helixpy_best_mode")
        row(
            "small",
            "Many one-task units vs Celery's best pool (the first bar)",
            "≥ 1.0x",
            vs_celery,
            _ratio(vs_celery) + (f" (best mode: {best_mode})" if best_mode else ""),
            lambda v: v >= 1.0,
            anchor="many-small-units",
        )
        # The same bar for one-task workflows alone (a queue job is a lighter unit).
        wf_modes = [
            (v, k)
            for k in ("start_threads", "start_async", "start_many")
            if isinstance(v := _get(sm, "ratios", f"{k}_over_celery"), int | float)
        ]
        if wf_modes:
            wf_best, wf_mode = max(wf_modes)
            row(
                "small",
                "One-task workflows vs Celery's best pool (best workflow mode)",
                "≥ 1.0x",
                wf_best,
                f"{_ratio(wf_best)} (best mode: {wf_mode})",
                lambda v: v >= 1.0,
                anchor="many-small-units",
            )
        many = _get(sm, "helixpy", "start_many")
        accepted = _div(_get(sm, "items"), _get(many, "submit_seconds"))
        row(
            "small",
            "One-thread `start_many` workflows accepted per second",
            "≥ 2,000/s",
            accepted,
            f"{_num(accepted, 0)}/s",
            lambda v: v >= 2000,
            anchor="many-small-units",
        )
        p50 = _get(sm, "helixpy", "latency", "call", "p50_ms")
        row(
            "small",
            "Sync `start` p50, one thread, idle cluster",
            "≤ 5 ms",
            p50,
            f"{_num(p50, 2)} ms",
            lambda v: v <= 5,
            anchor="many-small-units",
        )
        best = _get(sm, "ratios", "helixpy_best_over_dramatiq")
        mode = _get(sm, "ratios", "helixpy_best_mode")
        row(
            "small",
            "Many one-task units vs the best peer (Dramatiq, prefetch 64)",
            "≥ 1.0x",
            best,
            _ratio(best) + (f" (best mode: {mode})" if mode else ""),
            lambda v: v >= 1.0,
            anchor="many-small-units",
        )
    return rows


def headline(results_dir: Path | str = RESULTS) -> list[str]:
    """A few one-line results the README can quote (only for the scenarios that ran)."""
    d = Path(results_dir)
    out: list[str] = []
    t = load("throughput", d)
    r = _get(t, "ratios", "helixpy_over_celery_best")
    if t is not None and isinstance(r, int | float):
        out.append(
            f"helixpy/Celery throughput {r:.1f}x ({_num(t.get('tasks'))} no-op tasks, "
            f"{_num(t.get('workers'))} workers each)"
        )
    z = _get(t, "helixpy", "zk", "txns_per_task")
    if isinstance(z, int | float):
        out.append(f"{z:.3f} ZooKeeper write transactions per task")
    lat = load("latency", d)
    h, c = _get(lat, "helixpy", "end_to_end", "p50_ms"), _get(lat, "celery", "end_to_end", "p50_ms")
    if isinstance(h, int | float):
        peer = f" (Celery {_num(c)} ms)" if isinstance(c, int | float) else ""
        out.append(f"one-task workflow end-to-end p50 {_num(h)} ms{peer}")
    fo = load("failover", d)
    lead, part = _get(fo, "leader", "median_s"), _get(fo, "participant", "median_s")
    if fo is not None and isinstance(lead, int | float) and isinstance(part, int | float):
        out.append(
            f"failover median {lead:.1f} s (leader), {part:.1f} s (participant) with a "
            f"{_num(fo.get('session_timeout_s'))} s session timeout"
        )
    big = _get(load("scale", d), "big_job")
    rss, tasks = _get(big, "controller_peak_rss_mb"), _get(big, "tasks")
    if isinstance(rss, int | float):
        out.append(f"controller peak RSS {rss:.0f} MB for a {_num(tasks)}-task job")
    ru = _get(load("reuse", d), "cold_over_warm_per_request")
    if isinstance(ru, int | float):
        out.append(f"warm streaming slots {ru:.1f}x faster per request than a fresh workflow")
    return out


# --- scenarios ----------------------------------------------------------------------------


def _throughput(t: dict[str, Any], img: Path) -> Lines:
    h = t.get("helixpy") or {}
    out = [
        f"{_num(t.get('tasks'))} no-op tasks in {_num(t.get('workflows'))} workflows, "
        f"{_num(t.get('workers'))} workers with {_num(t.get('concurrency_per_worker'))} "
        "concurrent tasks each (the same for every system).",
        "",
    ]
    rows = [["helixpy", _num(h.get("seconds"), 2), _num(h.get("tasks_per_s"), 0), "1.00x"]]
    bars: list[tuple[str, Any]] = [("helixpy", h.get("tasks_per_s"))]
    for key, label in (
        ("celery_prefork", "Celery (prefork pool)"),
        ("celery_threads", "Celery (threads pool)"),
    ):
        peer = t.get(key)
        err = _err(peer)
        if err or not isinstance(peer, dict):
            rows.append([label, err or "not measured", DASH, DASH])
            bars.append((label, "error" if err else "not measured"))
        else:
            rows.append(
                [
                    label,
                    _num(peer.get("seconds"), 2),
                    _num(peer.get("tasks_per_s"), 0),
                    _ratio(_div(h.get("tasks_per_s"), peer.get("tasks_per_s"))),
                ]
            )
            bars.append((label, peer.get("tasks_per_s")))
    zb = t.get("zk_bound")
    if isinstance(zb, dict):
        rows.append(
            [
                f"ZooKeeper create bound ({_num(zb.get('creates'))} creates, "
                f"{_num(zb.get('in_flight'))} in flight)",
                _num(zb.get("seconds"), 2),
                _num(zb.get("creates_per_s"), 0),
                _ratio(_div(h.get("tasks_per_s"), zb.get("creates_per_s"))),
            ]
        )
        bars.append(("ZooKeeper create\nbound (creates/s)", zb.get("creates_per_s")))
    out += _table(["System", "Seconds", "Tasks/s", "helixpy / this"], rows)
    ratios = t.get("ratios") or {}
    text = (
        f"helixpy / best Celery pool ({ratios.get('celery_best_pool', DASH)}): "
        f"{_ratio(ratios.get('helixpy_over_celery_best'))}."
    )
    if isinstance(zb, dict):
        text += (
            f" helixpy / ZooKeeper create bound: "
            f"{_ratio(ratios.get('helixpy_over_zk_bound'))} (the bound is bare znode "
            "creates per second on the same ZooKeeper server, shown for scale; it is "
            "not a task rate)."
        )
    out += [text, ""]
    drains = [("helixpy", h.get("drain"))] + [
        (label, (t.get(key) or {}).get("drain"))
        for key, label in (
            ("celery_prefork", "Celery (prefork pool)"),
            ("celery_threads", "Celery (threads pool)"),
        )
    ]
    if any(isinstance(d, dict) for _, d in drains):
        ours = (h.get("drain") or {}).get("tasks_per_s")
        out += [
            "Drain, submission excluded: the same work queued first while no worker may "
            "take it (helixpy: every participant disabled; Celery: workers listening on "
            "another queue), then released at once. This separates what the workers do "
            "from the submit path (Celery publishes one broker message per task, helixpy "
            "sends one request per workflow).",
            "",
        ]
        out += _table(
            ["System", "Seconds", "Tasks/s", "helixpy / this"],
            [
                [
                    label,
                    _num(d.get("seconds"), 2),
                    _num(d.get("tasks_per_s"), 0),
                    _ratio(_div(ours, d.get("tasks_per_s"))),
                ]
                for label, d in drains
                if isinstance(d, dict)
            ],
        )
        out += [
            "Where the difference comes from: every Celery task is a broker message "
            "pushed and popped, acknowledged, and a result written to Redis, each a "
            "round trip; helixpy's controller hands out tasks in batches (one ASSIGNMENT "
            "write per instance per pass) and each participant reports every transition "
            "since its last write in one STATE write.",
            "",
        ]
    zk = h.get("zk") or {}
    out += [
        "ZooKeeper cost of the helixpy run, counted by the server "
        f"(target: ≤ {_target(t, 'zk_writes_per_task_max'):g} write transactions per task):",
        "",
    ]
    out += _table(
        ["Requests", "Total", "Per task"],
        [
            [what, _num(zk.get(total)), _num(zk.get(per), 3)]
            for what, total, per in (
                ("Write transactions (a multi counts once)", "txns", "txns_per_task"),
                ("Write operations (each op of a multi)", "write_ops", "write_ops_per_task"),
                ("Reads", "read_ops", "reads_per_task"),
            )
        ],
    )
    if any(isinstance(v, int | float) for _, v in bars):
        fig = Figure(figsize=(7.5, 3.8))
        ax = fig.add_subplot()
        names = [n for n, _ in bars]
        heights = [float(v) if isinstance(v, int | float) else 0.0 for _, v in bars]
        colours = ["#1f77b4", "#ff7f0e", "#ffbb78", "#bbbbbb"][: len(bars)]
        drawn = ax.bar(names, heights, color=colours)
        if bars[-1][0].startswith("ZooKeeper"):
            drawn[-1].set_hatch("//")
        for rect, (_, v) in zip(drawn, bars, strict=True):
            text = f"{v:,.0f}" if isinstance(v, int | float) else str(v)
            ax.annotate(
                text,
                (rect.get_x() + rect.get_width() / 2, rect.get_height()),
                ha="center",
                va="bottom",
                fontsize=9,
            )
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set_ylabel("tasks/s (creates/s for the bound)")
        ax.set_title(f"Throughput, {_num(t.get('tasks'))} no-op tasks")
        ax.margins(y=0.12)
        _save(fig, img / "bench-throughput.png")
        out += ["![Throughput](img/bench-throughput.png)", ""]
    return out


def _latency(lat: dict[str, Any], img: Path) -> Lines:
    out = [
        f"{_num(lat.get('runs'))} one-task workflows submitted one after the other on an "
        "idle cluster. Submit → RUNNING: submission until the task's `run` begins; "
        "end to end: submission until the client sees the workflow COMPLETED.",
        "",
    ]
    rows: list[list[str]] = []
    series: dict[str, dict[str, list[float]]] = {}
    for key, label in (("helixpy", "helixpy"), ("celery", "Celery")):
        sysd = lat.get(key)
        err = _err(sysd)
        if err or not isinstance(sysd, dict):
            rows.append([label, err or "not measured", DASH, DASH, DASH])
            continue
        for metric, mlabel in (
            ("submit_to_running", "submit → RUNNING"),
            ("end_to_end", "end to end"),
        ):
            p = sysd.get(metric) or {}
            rows.append([label, mlabel, *(_num(p.get(q), 2) for q in PCTS)])
            samples = _get(sysd, "samples_ms", metric)
            if isinstance(samples, list) and samples:
                series.setdefault(metric, {})[label] = sorted(float(s) for s in samples)
    out += _table(["System", "Metric", "p50 ms", "p90 ms", "p99 ms"], rows, text=2)
    r = lat.get("ratios") or {}
    out += [
        f"helixpy / Celery p50: submit → RUNNING "
        f"{_ratio(r.get('submit_to_running_p50_helixpy_over_celery'))}, end to end "
        f"{_ratio(r.get('end_to_end_p50_helixpy_over_celery'))}. Targets: p50 submit → "
        f"RUNNING ≤ {_target(lat, 'submit_to_running_p50_ms'):g} ms, p50 end to end ≤ "
        f"{_target(lat, 'end_to_end_p50_ms'):g} ms.",
        "",
        "Why helixpy is slower for one task: its path is a chain of ZooKeeper writes, "
        "each a fenced multi the server commits to disk before answering (the start, "
        "the leader's assignment, the participant's report, the leader's context "
        "update), plus the watches that carry each step to the next process. Celery's "
        "is a Redis push and pop. That chain is what makes the work survive the loss of "
        "any one process; the throughput runs show it amortised over many tasks.",
        "",
    ]
    if series:
        fig = Figure(figsize=(9, 3.6))
        for i, (metric, title) in enumerate(
            (("submit_to_running", "Submit → RUNNING"), ("end_to_end", "End to end"))
        ):
            ax = fig.add_subplot(1, 2, i + 1)
            for label, xs in sorted(series.get(metric, {}).items(), reverse=True):
                ys = [(j + 1) / len(xs) for j in range(len(xs))]
                ax.step(xs, ys, where="post", label=label)
            ax.axvline(
                _target(lat, f"{metric}_p50_ms"), color="grey", ls="--", lw=1, label="p50 target"
            )
            ax.axhline(0.5, color="grey", ls=":", lw=1)
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.set_xlabel("ms (log scale)")
            ax.set_ylabel("fraction of runs ≤ x")
            ax.set_title(title)
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8, loc="lower right")
        _save(fig, img / "bench-latency.png")
        out += ["![Latency ECDF](img/bench-latency.png)", ""]
    return out


def _failover(fo: dict[str, Any], img: Path) -> Lines:
    lim = _target(fo, "target_s")
    out = [
        f"SIGKILL of the leader controller until the standby's first new assignment, and "
        "of a participant running tasks until those tasks run elsewhere; ZooKeeper session "
        f"timeout {_num(fo.get('session_timeout_s'))} s. Target: median ≤ {lim:g} s.",
        "",
    ]
    rows = []
    for role in ("leader", "participant"):
        samples = _get(fo, role, "samples_s") or []
        med = _get(fo, role, "median_s")
        rows.append(
            [
                role.capitalize(),
                ", ".join(_num(s, 2) for s in samples) or DASH,
                _num(med, 2),
                _verdict(med, lambda v: v <= lim),
            ]
        )
    return out + _table(["Failover", "Samples (s)", "Median (s)", "Result"], rows, text=2)


def _scale(sc: dict[str, Any], img: Path) -> Lines:
    rss_max, zn_max = _target(sc, "controller_rss_mb_max"), _target(sc, "znode_bytes_max")
    out = [
        f"Targets: controller peak RSS < {rss_max:g} MB and largest znode ≤ "
        f"{int(zn_max):,} bytes, both for the big job.",
        "",
    ]
    rows = []
    for key, label in (
        ("big_job", "One big job"),
        ("many_workflows", "Many workflows"),
        ("many_participants", "Many participants"),
    ):
        b = sc.get(key)
        if not isinstance(b, dict):
            rows.append([label, "not run", DASH, DASH, DASH])
            continue
        size = f"{_num(b.get('tasks'))} tasks"
        if key == "many_workflows":
            size = f"{_num(b.get('workflows'))} workflows of {_num(b.get('tasks_per_workflow'))}"
        elif key == "many_participants":
            size += (
                f" on {_num(b.get('participants'))} participants in "
                f"{_num(b.get('processes'))} processes"
            )
        rows.append(
            [
                label,
                size,
                _num(b.get("seconds"), 2),
                _num(b.get("tasks_per_s")),
                _num(b.get("controller_peak_rss_mb")),
            ]
        )
    out += _table(["Shape", "Size", "Seconds", "Tasks/s", "Controller peak RSS MB"], rows, 2)
    b = sc.get("big_job")
    if isinstance(b, dict):
        out += [
            f"Big job: job context {_num(b.get('context_bytes'))} bytes; largest znode "
            f"{_num(b.get('largest_znode_bytes'))} bytes (`{b.get('largest_znode_path', '?')}`)"
            f"; {_num(b.get('znodes'))} znodes in the cluster.",
            "",
        ]
    p = sc.get("many_participants")
    if isinstance(p, dict):
        out += [
            f"Many participants: registration took {_num(p.get('registration_seconds'), 2)}"
            f" s; {_num(p.get('instances_that_ran_tasks'))} of "
            f"{_num(p.get('participants'))} instances ran tasks.",
            "",
        ]
    return out


def _executor(ex: dict[str, Any], img: Path) -> Lines:
    out = [
        f"The participant's task executor against `concurrent.futures.ThreadPoolExecutor`, "
        f"{_num(ex.get('workers'))} workers each; ratios are helixpy / thread pool.",
        "",
    ]
    rows = []
    for key, label in (("flat", "Flat"), ("fanout", "Fan-out")):
        w = ex.get(key)
        if not isinstance(w, dict):
            continue
        hl = w.get("helixpy_latency_ms_p50_p99") or []
        tl = w.get("threadpool_latency_ms_p50_p99") or []
        rows.append(
            [
                label,
                _num(w.get("helixpy_items_per_s"), 0),
                _num(w.get("threadpool_items_per_s"), 0),
                _ratio(w.get("throughput_ratio")),
                " / ".join(_num(v, 2) for v in hl) or DASH,
                " / ".join(_num(v, 2) for v in tl) or DASH,
                _ratio(w.get("p99_latency_ratio")),
            ]
        )
    out += _table(
        [
            "Workload",
            "helixpy items/s",
            "ThreadPool items/s",
            "Throughput ratio",
            "helixpy p50 / p99 ms",
            "ThreadPool p50 / p99 ms",
            "p99 ratio",
        ],
        rows,
    )
    return [
        *out,
        "Flat: 4 source threads submit tiny items. The executor's admission queue is "
        "bounded, so under saturation sources wait (backpressure) where the pool's queue "
        "would grow without bound. Fan-out: root items emit follow-ups from inside a "
        "worker; the executor takes follow-ups before new roots and runs overflow inline, "
        "so they start far sooner than in the pool's single FIFO queue. On a 2-CPU "
        "machine these ratios move by tens of percent from run to run.",
        "",
    ]


def _reuse(ru: dict[str, Any], img: Path) -> Lines:
    out = [
        f"{_num(ru.get('requests'))} requests of {_num(ru.get('splits'))} splits each; the "
        f"task's set-up costs {_num(ru.get('open_cost_s'), 2)} s. Warm: one streaming slot "
        "opened once; cold: a fresh one-shot workflow per request. Overhead is the time "
        "per request minus the set-up it had to pay.",
        "",
    ]
    rows = [
        [
            label,
            *(_num(_get(ru, key, q), 2) for q in ("mean_ms", "p50_ms", "p99_ms")),
            _num(ru.get(f"{key}_overhead_ms"), 2),
        ]
        for key, label in (("warm", "Warm (streaming slot)"), ("cold", "Cold (new workflow)"))
    ]
    out += _table(["Mode", "Mean ms", "p50 ms", "p99 ms", "Overhead ms"], rows)
    return [
        *out,
        f"Cold / warm time per request: {_ratio(ru.get('cold_over_warm_per_request'))}.",
        "",
    ]


def _starts(st: dict[str, Any], img: Path) -> Lines:
    call = st.get("call") or {}
    out = [
        f"{_num(st.get('workflows'))} one-job workflows started from "
        f"{_num(st.get('threads'))} client threads at once; only the submission is timed.",
        "",
    ]
    return out + _table(
        ["Starts", "Seconds", "Starts/s", "Call p50 ms", "Call p99 ms"],
        [
            [
                _num(st.get("workflows")),
                _num(st.get("seconds"), 2),
                _num(st.get("starts_per_s"), 0),
                _num(call.get("p50_ms"), 1),
                _num(call.get("p99_ms"), 1),
            ]
        ],
    )


def _changes(ch: dict[str, Any], img: Path) -> Lines:
    """Optimisations with their before / after measurements (``changes.json``)."""
    rows = [
        [
            c.get("change", DASH),
            c.get("measure", DASH),
            _num(c.get("before"), 1),
            _num(c.get("after"), 1),
            _ratio(_div(c.get("after"), c.get("before"))),
            f"`{c['command']}`" if c.get("command") else DASH,
        ]
        for c in ch.get("changes") or []
    ]
    out = [
        "Changes made from profiles of these benchmarks, each measured before and after "
        "on the same machine (after / before > 1 is better for rates, < 1 for times).",
        "",
    ]
    if ch.get("note"):
        out += [str(ch["note"]), ""]
    out += _table(
        ["Change", "Measure", "Before", "After", "After / before", "Command"], rows, text=2
    )
    findings = ch.get("findings") or []
    if findings:
        out += ["What the profiles showed:", "", *[f"- {f}" for f in findings], ""]
    return out


_SMALL_MODES = (
    ("start_threads", "helixpy `start`"),
    ("start_async", "helixpy `start_async`"),
    ("start_many", "helixpy `start_many`"),
    ("queue_async", "helixpy queue `enqueue_job_async`"),
    ("queue_sync", "helixpy queue `enqueue_job`"),
)


def _small(sm: dict[str, Any], img: Path) -> Lines:
    h = sm.get("helixpy") or {}
    r = sm.get("ratios") or {}
    out = [
        f"{_num(sm.get('items'))} independent no-op units per row, each submitted on its "
        f"own (helixpy: a one-task workflow or a one-task queue job; the peers: one "
        f"message), on {_num(sm.get('workers'))} workers of concurrency "
        f"{_num(sm.get('concurrency_per_worker'))}; from the first submit until every unit "
        "is seen finished. Every helixpy row runs on a fresh cluster.",
        "",
    ]
    peers = [
        (k, v)
        for k, v in sm.items()
        if (k.startswith("celery_") or k.startswith("dramatiq")) and isinstance(v, dict)
    ]
    rates = {
        "celery": max(
            (v["tasks_per_s"] for k, v in peers if k.startswith("celery_") and "tasks_per_s" in v),
            default=None,
        ),
        "dramatiq": _get(sm, "dramatiq", "tasks_per_s"),
    }
    rows: list[list[str]] = []
    for key, label in _SMALL_MODES:
        m = h.get(key)
        if not isinstance(m, dict):
            continue
        api = str(m.get("api", DASH))
        if m.get("items") not in (None, sm.get("items")):
            api += f" ({_num(m.get('items'))} units)"  # a row run at another size says so
        rows.append(
            [
                label,
                api,
                _num(m.get("seconds"), 2),
                _num(m.get("submit_seconds"), 2),
                _num(m.get("tasks_per_s"), 0),
                _ratio(_div(m.get("tasks_per_s"), rates["celery"])),
                _ratio(_div(m.get("tasks_per_s"), rates["dramatiq"])),
            ]
        )
    for key, peer in peers:
        label = _peer_label(key)
        err = _err(peer)
        if err:
            rows.append([label, err, DASH, DASH, DASH, DASH, DASH])
            continue
        rows.append(
            [
                label,
                str(peer.get("api", DASH)),
                _num(peer.get("seconds"), 2),
                _num(peer.get("submit_seconds"), 2),
                _num(peer.get("tasks_per_s"), 0),
                _ratio(_div(peer.get("tasks_per_s"), rates["celery"])),
                _ratio(_div(peer.get("tasks_per_s"), rates["dramatiq"])),
            ]
        )
    out += _table(
        [
            "System",
            "Submission",
            "Seconds",
            "Submit s",
            "Tasks/s",
            "this / Celery (best pool)",
            "this / Dramatiq (tuned)",
        ],
        rows,
        text=2,
    )
    best = dict(_SMALL_MODES).get(str(r.get("helixpy_best_mode")), DASH)
    out += [
        f"Best helixpy mode: {best}; helixpy / Celery "
        f"({r.get('celery_best_pool', DASH)} pool) {_ratio(r.get('helixpy_best_over_celery'))}"
        f", helixpy / Dramatiq {_ratio(r.get('helixpy_best_over_dramatiq'))}.",
        "",
        "Latency of one submit call (a start returns once the workflow is durable in "
        "ZooKeeper; `delay()` / `send()` once the message is in Redis):",
        "",
    ]
    lat = h.get("latency") or {}
    call_rows = [
        [
            "helixpy `start`",
            f"1 thread, {_num(lat.get('starts'))} in a loop",
            *(_num(_get(lat, "call", q), 2) for q in PCTS),
        ],
        [
            "helixpy `start`",
            f"{_num(sm.get('threads'))} threads, under load",
            *(_num(_get(h, "start_threads", "call", q), 2) for q in PCTS),
        ],
    ]
    for key, peer in peers:
        if _err(peer):
            continue
        label = _peer_label(key, call=True)
        call_rows.append(
            [label, "1 thread", *(_num(_get(peer, "call_one_thread", q), 2) for q in PCTS)]
        )
        call_rows.append(
            [
                label,
                f"{_num(sm.get('threads'))} threads, under load",
                *(_num(_get(peer, "call", q), 2) for q in PCTS),
            ]
        )
    out += _table(["Call", "Callers", "p50 ms", "p90 ms", "p99 ms"], call_rows, text=2)
    out += [
        "ZooKeeper's cost per one-task workflow, counted by the server (write "
        "transactions from the zxid, a multi counting once; znodes created from `mntr`):",
        "",
    ]
    zrows = []
    for label, z in (
        (f"{_num(sm.get('threads'))}-thread burst of `start`", _get(h, "start_threads", "zk")),
        ("1-thread `start` loop", _get(lat, "zk")),
    ):
        if isinstance(z, dict):
            zrows.append(
                [
                    label,
                    _num(z.get("txns_per_workflow"), 2),
                    _num(z.get("write_ops_per_workflow"), 2),
                    _num(z.get("reads_per_workflow"), 2),
                    _num(z.get("znodes_per_workflow"), 2),
                ]
            )
    out += _table(["Run", "Write txns / wf", "Write ops / wf", "Reads / wf", "Znodes / wf"], zrows)
    return out


def _peer_label(key: str, call: bool = False) -> str:
    """A peer's row label from its result key (``dramatiq``, ``dramatiq_prefetch_default``,
    ``celery_threads`` ...); ``call``: named by its submit call."""
    if key.startswith("dramatiq"):
        name, setting = "Dramatiq" + (" `send()`" if call else ""), "tuned"
        if key != "dramatiq":
            setting = key.removeprefix("dramatiq_").replace("_", " ")
    else:
        name, setting = "Celery" + (" `delay()`" if call else ""), key.removeprefix("celery_")
    return f"{name} ({setting})"


def _history(hi: dict[str, Any], img: Path) -> Lines:
    lim = _target(hi, "p50_ratio_max")
    out = [
        f"One cluster brought to R finished one-task workflows retained, then "
        f"{_num(hi.get('starts_per_step'))} sync `start` calls from one thread (waited "
        "for, so they join the history); the leader controller's resident set; and a "
        "leader takeover with that history, from the signal until the new leader accepted "
        "a start (SIGTERM: the leader resigns; SIGKILL: the standby also waits out the "
        f"dead leader's {_num(hi.get('session_timeout_s'))} s session). Target: start p50 "
        f"at the largest R ≤ {lim:g}x that at R=0.",
        "",
    ]
    rows = []
    for st in hi.get("steps") or []:
        rows.append(
            [
                _num(st.get("retained")),
                *(_num(_get(st, "start", q), 2) for q in PCTS),
                _num(st.get("leader_rss_mb")),
                _num(st.get("leader_peak_rss_mb")),
                _num(st.get("znodes")),
                _num(_get(st, "takeover_term", "seconds"), 2),
                _num(_get(st, "takeover_kill", "seconds"), 2),
                _num(st.get("filled")),
                _num(st.get("fill_per_s"), 0),
                _num(
                    _div(
                        1e3 * (_get(st, "fill_cpu_seconds", "controller") or 0),
                        st.get("filled"),
                    ),
                    2,
                ),
            ]
        )
    out += _table(
        [
            "Retained R",
            "Start p50 ms",
            "p90 ms",
            "p99 ms",
            "Leader RSS MB",
            "Peak RSS MB",
            "Znodes",
            "Takeover SIGTERM s",
            "Takeover SIGKILL s",
            "Filled",
            "Fill wf/s",
            "Controller CPU ms / filled wf",
        ],
        rows,
    )
    hr = hi.get("p50_ratio_last_over_first")
    out += [
        f"Start p50 at the largest R / at R=0: {_ratio(hr)} "
        f"({_verdict(hr, lambda v: v <= lim)}); leader RSS largest R / R=0: "
        f"{_ratio(hi.get('rss_ratio_last_over_first'))}. Filled: the workflows started "
        "at that step to reach R (with `start_many`, at most `--in-flight` unfinished at a "
        "time); the fill rate and the leader's CPU per filled workflow show what that costs.",
        "",
    ]
    return out


def _soak(so: dict[str, Any], img: Path) -> Lines:
    out = [
        "Does ZooKeeper grow with a cluster's age? One lock resource acquired and released "
        "again and again (audit trail kept at `lock_audit_keep`), and one streaming job of "
        "two slots through barrier after barrier (checkpoints kept at "
        "`stream_checkpoints_keep`): znodes and bytes under each, sampled as they run. "
        "Target: flat after warm-up.",
        "",
    ]
    parts = (
        ("locks", "grants", "keep", "grants_per_s", "Lock resource"),
        ("stream", "barriers", "checkpoints_keep", "barriers_per_s", "Stream"),
    )
    rows = []
    for key, unit, keep, rate, label in parts:
        part = so.get(key)
        if not isinstance(part, dict):
            continue
        samples = part.get("samples") or []
        znodes = [s["znodes"] for s in samples]
        size = [s["bytes"] for s in samples]
        rows.append(
            [
                label,
                f"{_num(part.get(unit))} {unit}",
                _num(part.get(keep)),
                f"{min(znodes)}-{max(znodes)}" if znodes else "-",
                f"{min(size) / 1024:.1f}-{max(size) / 1024:.1f}" if size else "-",
                _num(part.get(rate)),
                "met" if part.get("flat_after_warmup") else "missed",
            ]
        )
    return [*out, *_table(["Soaked", "Run", "Kept", "Znodes", "KB", "Per s", "Flat"], rows, text=2)]


def _results_section(data: dict[str, Any], img: Path) -> Lines:
    from bench.report_results import results_section  # (it imports this module's helpers)

    return results_section(data, img)


Section = tuple[str, Callable[[dict[str, Any], Path], Lines]]
SECTIONS: dict[str, Section] = {  # scenario name -> (title, renderer), in page order
    "throughput": ("Throughput", _throughput),
    "latency": ("Latency", _latency),
    "results": ("Results", _results_section),
    "failover": ("Failover", _failover),
    "starts": ("Submission rate", _starts),
    "small": ("Many small units", _small),
    "history": ("History", _history),
    "scale": ("Scale", _scale),
    "executor": ("Participant executor", _executor),
    "reuse": ("Task reuse", _reuse),
    "soak": ("Soak", _soak),
    "changes": ("Optimisations", _changes),
}
#: sections that ``python -m bench`` can run (``changes`` is a hand-kept record)
SCENARIO_NAMES = frozenset(SECTIONS) - {"changes"}
CHARTS = {"throughput": "bench-throughput.png", "latency": "bench-latency.png"}


def render(results_dir: Path, out: Path) -> str:
    """The page's markdown; writes (or removes stale) charts under ``out.parent / "img"``."""
    img = out.parent / "img"
    res = {name: load(name, results_dir) for name in SECTIONS}
    lines = [
        "# Benchmarks",
        "",
        "Measured numbers for helixpy against its targets and against peers (Celery, a bare "
        "`ThreadPoolExecutor`, ZooKeeper's own create rate). The scripts are under "
        "[`bench/`](../bench/); each writes `bench/results/<scenario>.json`, stamped with "
        "its date and machine, and this page is rendered from those files only. "
        "`make bench` runs everything, `python -m bench <scenario>` runs one scenario, and "
        "`python -m bench report` regenerates this page and its charts.",
        "",
        "## Headline",
        "",
        *_table(["Target", "Required", "Measured", "Result"], _headline_rows(res), text=4),
    ]
    for name, (title, section) in SECTIONS.items():
        data = res[name]
        if data is None and name not in SCENARIO_NAMES:
            continue  # a record, not a scenario: nothing to run
        lines += [f"## {title}", ""]
        chart = CHARTS.get(name)
        if chart and (img / chart).exists():
            (img / chart).unlink()  # stale unless re-drawn below
        if data is None:
            lines += [f"not run yet: `python -m bench {name}`", ""]
            continue
        lines += [*section(data, img), _stamp(data), ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Render bench results as markdown and charts.")
    parser.add_argument("--results", type=Path, default=RESULTS, help="result JSON directory")
    parser.add_argument("--out", type=Path, default=OUT, help="markdown file to write")
    args = parser.parse_args(argv)
    out: Path = args.out
    text = render(args.results, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
