"""``python -m bench SCENARIO [options]``: run one benchmark, all of them, or the report.

Each scenario writes ``bench/results/<scenario>.json``; ``report`` renders every result
file into ``docs/benchmarks.md``. ``all`` runs every scenario with its defaults (about ten
minutes on a 2-core machine), then the report. ``make bench`` is ``python -m bench all``.
"""

from __future__ import annotations

import importlib
import sys

#: scenario -> module; ``all`` runs them in this order (the cheap ones first)
SCENARIOS = {
    "executor": "bench.executor",
    "reuse": "bench.reuse",
    "latency": "bench.latency",
    "results": "bench.results_flow",
    "throughput": "bench.throughput",
    "starts": "bench.starts",
    "failover": "bench.failover",
    "scale": "bench.scale",
    "small": "bench.small",
    "history": "bench.history",
    "soak": "bench.soak",
}


def _usage() -> str:
    return (
        "usage: python -m bench {" + ",".join([*SCENARIOS, "all", "report"]) + "} [options]\n"
        "       python -m bench SCENARIO --help   (a scenario's options)"
    )


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help"):
        print(__doc__)
        print(_usage())
        return 0 if args else 2
    name, rest = args[0], args[1:]
    if name == "all":
        for scenario, module in SCENARIOS.items():
            print(f"== {scenario}", flush=True)
            importlib.import_module(module).main([])
        name, rest = "report", []
    if name == "report":
        importlib.import_module("bench.report").main(rest)
        return 0
    if name not in SCENARIOS:
        print(f"unknown scenario {name!r}\n{_usage()}", file=sys.stderr)
        return 2
    importlib.import_module(SCENARIOS[name]).main(rest)
    return 0


if __name__ == "__main__":
    sys.exit(main())
