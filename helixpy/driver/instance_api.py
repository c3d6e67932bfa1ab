"""The TaskDriver's instance methods: enable / disable, tags, and Helix's task thread pool
size (``setTargetTaskThreadPoolSize``, ``getTargetTaskThreadPoolSize``,
``getCurrentTaskThreadPoolSize``).

The target thread pool size is the capacity (worker threads and most concurrent attempts)
an instance takes when its participant next starts, as in Helix; it wins over the
participant's ``--capacity`` and the cluster's ``default_capacity``. The current size is
what the live participant advertises.
"""

from __future__ import annotations

from helixpy.driver.base import DriverBase, check_bool
from helixpy.driver.base import request_id as _rid
from helixpy.errors import InvalidConfig
from helixpy.model.limits import check_capacity
from helixpy.model.names import check_name
from helixpy.proto.helixpy.v1 import controller_pb2 as pb
from helixpy.store.views import read_current_pool_size, read_target_pool_size


class InstanceMethods(DriverBase):
    """Change and read instances' settings."""

    def set_instance_enabled(self, instance: str, enabled: bool) -> None:
        """Enable or disable ``instance``. A disabled instance gets no new attempts; its
        running ones are cancelled there first and only then retried elsewhere."""
        self._check_open()
        request = pb.InstanceEnabledRequest(
            request_id=_rid(),
            instance=check_name("instance", instance),
            enabled=check_bool("enabled", enabled),
        )
        self._mutate("SetInstanceEnabled", request)

    def set_instance_tags(self, instance: str, tags: list[str] | tuple[str, ...]) -> None:
        """Replace ``instance``'s tags. Tasks running there keep running; only new
        assignments follow the new tags (so removing a tag lets its tasks finish there and
        sends no new ones)."""
        self._check_open()
        if not isinstance(tags, list | tuple):
            raise InvalidConfig("tags", f"must be a list of tags (got {type(tags).__name__})")
        request = pb.InstanceTagsRequest(
            request_id=_rid(),
            instance=check_name("instance", instance),
            tags=[check_name("tag", t) for t in tags],
        )
        self._mutate("SetInstanceTags", request)

    def set_target_task_thread_pool_size(self, instance: str, size: int | None) -> None:
        """Helix's ``setTargetTaskThreadPoolSize``: ``instance`` takes ``size`` (1 to 100)
        as its capacity when its participant next starts; None clears it. A running
        participant keeps its size until it restarts (as in Helix)."""
        self._check_open()
        if size is not None:
            check_capacity(size, "size")
        request = pb.ThreadPoolSizeRequest(
            request_id=_rid(), instance=check_name("instance", instance), size=size or 0
        )
        self._mutate("SetTargetTaskThreadPoolSize", request)

    def get_target_task_thread_pool_size(self, instance: str) -> int | None:
        """The size set by :meth:`set_target_task_thread_pool_size` (None when unset).
        :class:`NotFound` when the instance never registered."""
        name = check_name("instance", instance)
        path = self._paths.instance_config(name)
        return self._read(path, f"instance {name}", read_target_pool_size, name)

    def get_current_task_thread_pool_size(self, instance: str) -> int:
        """Helix's ``getCurrentTaskThreadPoolSize``: the capacity the live participant
        advertises. :class:`NotFound` when the instance is not live."""
        name = check_name("instance", instance)
        path = self._paths.live_instance(name)
        return self._read(path, f"live instance {name}", read_current_pool_size, name)
