"""``helixpy locks ...``: the task locks held in a cluster."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

from helixpy.cli import as_json, cluster_options, driver_call, main, output_option


@main.group()
def locks() -> None:
    """Show task locks."""


def _interval(raw: list[Any]) -> str:
    start, end, kind = raw
    if kind == "time":
        start = datetime.fromtimestamp(start, UTC).isoformat()
        end = datetime.fromtimestamp(end, UTC).isoformat()
    return f"[{start}, {end})"


@locks.command("list")
@cluster_options
@click.option("--resource", default=None, help="Only this resource.")
@output_option
@click.pass_obj
def locks_list(obj: dict[str, Any], resource: str | None, output: str) -> None:
    """One line per lock: resource, interval, type, priority, group, holders, flags."""

    def run(driver: Any) -> str:
        found = {
            res: [posse.to_dict() for posse in posses]
            for res, posses in driver.get_locks(resource).items()
        }
        if output == "json":
            return as_json(found)
        rows = []
        for res, posses in found.items():
            for p in posses:
                flags = ["revoked"] if p["revoked"] else []
                if p["critical"]:
                    flags.append("critical")
                rows.append(
                    f"{res:<20} {_interval(p['interval']):<24} {p['type']:<9} "
                    f"prio={p['priority']:<3} group={p['group']} token={p['token']} "
                    f"holders={','.join(sorted(p['members']))} {' '.join(flags)}".rstrip()
                )
        return "\n".join(rows) or "(no locks)"

    driver_call(obj, run)
