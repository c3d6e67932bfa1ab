"""TaskDriver: gRPC to the leader controller for mutations, ZooKeeper for reads and watches."""

from helixpy.driver.driver import TaskDriver

__all__ = ["TaskDriver"]
