"""The async driver's ZooKeeper work that is not a store plan: the force delete's tree walk.

Every read of the async driver is a plan of :mod:`helixpy.store` (see
:mod:`helixpy.store.plan`), the same code the TaskDriver runs, run by
:meth:`~helixpy.driver.aio.session.Session.run`.
"""

from __future__ import annotations

import asyncio

from kazoo.exceptions import NoNodeError, NotEmptyError

from helixpy.driver.aio.session import Session

#: Requests one tree delete keeps in flight at once.
_DELETES_IN_FLIGHT = 500


# --- force delete -----------------------------------------------------------------------


async def delete_tree(s: Session, path: str) -> None:
    """Delete ``path`` and everything under it, children first (kazoo's recursive delete,
    with the requests of one level in flight together); a missing node is no error."""
    limit = asyncio.Semaphore(_DELETES_IN_FLIGHT)

    async def remove(node: str) -> None:
        while True:
            try:
                async with limit:
                    children = await s.children(node)
            except NoNodeError:
                return
            await asyncio.gather(*(remove(f"{node}/{c}") for c in children))
            try:
                async with limit:
                    await s.delete(node)
                return
            except NoNodeError:
                return
            except NotEmptyError:
                continue  # a child was created meanwhile: delete it too

    await remove(path)
