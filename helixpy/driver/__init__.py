"""TaskDriver: gRPC to the leader controller for mutations, ZooKeeper for reads and watches."""

from helixpy.driver.driver import TaskDriver
from helixpy.driver.submit import StartOutcome

__all__ = ["StartOutcome", "TaskDriver"]
