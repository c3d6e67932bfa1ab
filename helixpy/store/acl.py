"""The one place every znode create takes its ACL from.

helixpy creates znodes without an explicit ACL, so ZooKeeper's client applies its default:
open (``OPEN_ACL_UNSAFE``) for a plain client, and, for a client connected with
``--zk-auth digest:user:password`` (:func:`helixpy.store.client.connect`), every right for
that identity and READ for everyone else. A provider may still return an explicit list for
a path; ``None`` means "the client's default".
"""

from __future__ import annotations

from typing import Any, Protocol


class AclProvider(Protocol):
    """Returns the ACL list for a znode about to be created at ``path`` (None: the
    client's default ACL)."""

    def acl_for(self, path: str) -> list[Any] | None: ...


class OpenAclProvider:
    """The client's default ACL for every path (open, unless the client authenticated)."""

    def acl_for(self, path: str) -> list[Any] | None:
        return None
