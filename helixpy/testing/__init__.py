"""The public test harness: local ZooKeeper launchers, ``LocalCluster``, sample tasks.

Imports are lazy so ``import helixpy.testing.zookeeper`` stays light.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from helixpy.testing.cluster import LocalCluster
    from helixpy.testing.zookeeper import local_ensemble, local_zookeeper

__all__ = ["LocalCluster", "local_ensemble", "local_zookeeper"]


def __getattr__(name: str) -> Any:
    if name == "LocalCluster":
        from helixpy.testing.cluster import LocalCluster

        return LocalCluster
    if name in ("local_zookeeper", "local_ensemble"):
        from helixpy.testing import zookeeper

        return getattr(zookeeper, name)
    raise AttributeError(name)
