"""Quota types: each instance's capacity split between job types by ratio (Helix's quota).

``set_cluster_config(quota_types={"A": 3, "B": 1})`` gives type A three quarters of every
instance's capacity and B one quarter. A job's type is its workflow's ``workflow_type``,
else its ``job_type``, else DEFAULT; a type the map does not name counts as DEFAULT. A type
without capacity (ratio 0, or DEFAULT when the map leaves it out) runs nothing, but never
blocks other types: assignment simply moves on. Pure functions; no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

DEFAULT = "DEFAULT"


@dataclass(frozen=True)
class Quotas:
    """The cluster's quota ratios; empty means one type with all the capacity."""

    ratios: Mapping[str, int] = field(default_factory=dict)

    def type_of(self, workflow_type: str | None, job_type: str | None) -> str:
        wanted = workflow_type or job_type or DEFAULT
        return wanted if not self.ratios or wanted in self.ratios else DEFAULT

    def share(self, capacity: int, quota_type: str) -> int:
        """How many of an instance's ``capacity`` slots ``quota_type`` may use."""
        if not self.ratios:
            return capacity
        ratio = self.ratios.get(quota_type, 0)
        total = sum(self.ratios.values())
        if ratio <= 0 or total <= 0:
            return 0
        # At least one slot for a type with a positive ratio, so small instances serve it.
        return max(1, capacity * ratio // total)
