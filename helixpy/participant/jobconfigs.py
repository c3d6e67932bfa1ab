"""The job configs a participant's attempts need, cached and read ahead.

A config is keyed by workflow, job and the workflow's start uid (a workflow deleted and
started again under the same name is another key). A small config comes with the
assignment entry itself and is never read; the reads for every other attempt one assignment
read starts are sent together (one round trip for all of them, not one each).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from kazoo.client import KazooClient
from kazoo.exceptions import NoNodeError

from helixpy.errors import NotFound
from helixpy.model import JobConfig
from helixpy.store.codec import decode
from helixpy.store.paths import Paths
from helixpy.store.records import job_config_from_head, read_job_config

#: Job configs kept in memory; the oldest go first (finished jobs age out).
JOB_CONFIG_CACHE = 256

Key = tuple[str, str, str]


class JobConfigs:
    def __init__(self, paths: Paths, size: int = JOB_CONFIG_CACHE) -> None:
        self._paths = paths
        self._size = size
        self._cache: dict[Key, JobConfig] = {}
        self._ahead: dict[Key, tuple[str, Any]] = {}

    def read_ahead(self, zk: KazooClient, keys: Iterable[Key]) -> None:
        """Send the reads of the configs in ``keys`` that are not cached (earlier reads
        sent ahead and never used are forgotten)."""
        self._ahead.clear()
        for key in keys:
            if key not in self._cache and key not in self._ahead:
                path = self._paths.job_config(key[0], key[1])
                self._ahead[key] = (path, zk.get_async(path))

    def get(self, zk: KazooClient, wf: str, job: str, uid: str, head: Any = None) -> JobConfig:
        """The config (:class:`NotFound` if the job is gone); ``head``: its CONFIG payload
        when the assignment carried it (then nothing is read)."""
        key = (wf, job, uid)
        cfg = self._cache.get(key)
        if cfg is not None:
            return cfg
        ahead = self._ahead.pop(key, None)
        if head is not None:
            cfg = job_config_from_head(zk, self._paths, wf, job, head)
        elif ahead is None:
            cfg = read_job_config(zk, self._paths, wf, job)
        else:
            path, sent = ahead
            try:
                data = sent.get()[0]
            except NoNodeError:
                raise NotFound(path) from None
            cfg = job_config_from_head(zk, self._paths, wf, job, decode(data, path=path))
        if len(self._cache) >= self._size:
            del self._cache[next(iter(self._cache))]  # dicts keep insertion order
        self._cache[key] = cfg
        return cfg
