"""``helixpy instance ...``: list, enable and disable participant instances; record the
partitions they host."""

from __future__ import annotations

from typing import Any

import click

from helixpy.cli import as_json, cluster_options, driver_call, main, output_option


@main.group()
def instance() -> None:
    """List, enable and disable participant instances; record their partitions."""


@instance.command("list")
@cluster_options
@output_option
@click.pass_obj
def instance_list(obj: dict[str, Any], output: str) -> None:
    """List instances: live, enabled, tags, capacity (and slots held by abandoned tasks)."""

    def run(driver: Any) -> str:
        if output == "json":
            return as_json(driver.get_instances())
        rows = [
            f"{name:<24} {'live' if i['live'] else 'down':<5} "
            f"{'enabled' if i['enabled'] else 'disabled':<9} cap={i['capacity']} "
            f"tags={','.join(i['tags'])}"
            + (f" abandoned={i['abandoned']}" if i.get("abandoned") else "")
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


@instance.command("set-partition")
@cluster_options
@click.argument("instance_id")
@click.argument("resource")
@click.argument("partition")
@click.argument("state")
@click.pass_obj
def instance_set_partition(
    obj: dict[str, Any], instance_id: str, resource: str, partition: str, state: str
) -> None:
    """Record that an instance hosts a partition of a resource in STATE (targeted jobs
    place their tasks by these records)."""
    driver_call(
        obj,
        lambda d: (
            d.set_partition_state(instance_id, resource, partition, state)
            or f"{instance_id} hosts {resource}/{partition} in {state}"
        ),
    )


@instance.command("remove-partition")
@cluster_options
@click.argument("instance_id")
@click.argument("resource")
@click.argument("partition")
@click.pass_obj
def instance_remove_partition(
    obj: dict[str, Any], instance_id: str, resource: str, partition: str
) -> None:
    """Remove an instance's record of a partition; fails if there is none."""
    driver_call(
        obj,
        lambda d: (
            d.remove_partition(instance_id, resource, partition)
            or f"removed {resource}/{partition} from {instance_id}"
        ),
    )


@instance.command("partitions")
@cluster_options
@click.argument("instance_id", required=False)
@output_option
@click.pass_obj
def instance_partitions(obj: dict[str, Any], instance_id: str | None, output: str) -> None:
    """List partition records (of one instance if given): instance resource partition state."""

    def run(driver: Any) -> str:
        if output == "json":
            return as_json(driver.get_partitions(instance_id))
        rows = [
            f"{inst} {resource} {partition} {state}"
            for inst, resources in driver.get_partitions(instance_id).items()
            for resource, partitions in resources.items()
            for partition, state in partitions.items()
        ]
        return "\n".join(rows) or "(no partitions)"

    driver_call(obj, run)


@instance.command("thread-pool")
@cluster_options
@click.argument("instance_id")
@click.option(
    "--set",
    "size",
    type=click.IntRange(1, 100),
    default=None,
    help="Helix's setTargetTaskThreadPoolSize: the capacity it takes at its next start.",
)
@click.option("--clear", is_flag=True, help="Remove the target (back to --capacity or default).")
@click.pass_obj
def instance_thread_pool(
    obj: dict[str, Any], instance_id: str, size: int | None, clear: bool
) -> None:
    """Show an instance's task thread pool size: the target (taken when its participant
    next starts) and the current one (what it runs with now); --set / --clear the target."""
    if size is not None and clear:
        raise click.BadParameter("give --set or --clear, not both", param_hint="--clear")

    def run(driver: Any) -> str:
        if size is not None or clear:
            driver.set_target_task_thread_pool_size(instance_id, size)
        target = driver.get_target_task_thread_pool_size(instance_id)
        live = driver.get_instances().get(instance_id, {}).get("live")
        current = driver.get_current_task_thread_pool_size(instance_id) if live else "not live"
        return f"{instance_id} target={target if target is not None else 'unset'} current={current}"

    driver_call(obj, run)
