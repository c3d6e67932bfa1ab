"""The one place every znode create takes its ACL from.

Open ACLs by default; the security issue supplies a provider with digest/SASL ACLs. Keeping
a single provider means no create anywhere in helixpy can forget the cluster's ACL policy.
"""

from __future__ import annotations

from typing import Any, Protocol

from kazoo.security import OPEN_ACL_UNSAFE


class AclProvider(Protocol):
    """Returns the ACL list for a znode about to be created at ``path``."""

    def acl_for(self, path: str) -> list[Any]: ...


class OpenAclProvider:
    """World-readable, world-writable ACLs (ZooKeeper's ``OPEN_ACL_UNSAFE``)."""

    def acl_for(self, path: str) -> list[Any]:
        return list(OPEN_ACL_UNSAFE)
