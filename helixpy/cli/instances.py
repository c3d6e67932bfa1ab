"""``helixpy instance ...``: list, enable and disable participant instances."""

from __future__ import annotations

from typing import Any

import click

from helixpy.cli import cluster_options, driver_call, main


@main.group()
def instance() -> None:
    """List, enable and disable participant instances."""


@instance.command("list")
@cluster_options
@click.pass_obj
def instance_list(obj: dict[str, Any]) -> None:
    """List instances: live, enabled, tags, capacity."""

    def run(driver: Any) -> str:
        rows = [
            f"{name:<24} {'live' if i['live'] else 'down':<5} "
            f"{'enabled' if i['enabled'] else 'disabled':<9} cap={i['capacity']} "
            f"tags={','.join(i['tags'])}"
            for name, i in driver.get_instances().items()
        ]
        return "\n".join(rows) or "(no instances)"

    driver_call(obj, run)


@instance.command("enable")
@cluster_options
@click.argument("instance_id")
@click.pass_obj
def instance_enable(obj: dict[str, Any], instance_id: str) -> None:
    """Let an instance take work again."""
    driver_call(
        obj, lambda d: d.set_instance_enabled(instance_id, True) or f"enabled {instance_id}"
    )


@instance.command("disable")
@cluster_options
@click.argument("instance_id")
@click.pass_obj
def instance_disable(obj: dict[str, Any], instance_id: str) -> None:
    """Stop giving an instance work; its running tasks move elsewhere."""
    driver_call(
        obj, lambda d: d.set_instance_enabled(instance_id, False) or f"disabled {instance_id}"
    )
