"""The one exception root of helixpy and its named subtrees.

``HelixpyError`` is the root. User-facing failures (bad input, missing or duplicate
things, time-outs, an unreachable cluster) are direct subclasses so they can be caught one
by one; ``StoreError`` groups what the ZooKeeper layer raises. Control-flow signals that are
not errors (a fenced writer learning it was deposed) live in their own subtree,
``Fenced``, so a broad ``except HelixpyError`` in user code never has to reason about them.
"""

from __future__ import annotations


class HelixpyError(Exception):
    """Root of every exception helixpy raises on purpose."""


class InvalidConfig(HelixpyError, ValueError):
    """A configuration, name or request broke a rule.

    ``field`` names the offending field (dotted for nested ones) and ``rule`` the rule it
    broke, so tools can show both; ``str()`` reads "field: rule".
    """

    def __init__(self, field: str, rule: str) -> None:
        field = field or '""'  # (an empty key in a document still names something)
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule


class NotFound(HelixpyError, LookupError):
    """The named workflow, job, task or instance does not exist."""


class NoResult(NotFound):
    """The task exists but has not COMPLETED, so it has no result (yet); ``state`` is its
    state (None when it was never scheduled)."""

    def __init__(self, message: str, state: str | None = None) -> None:
        super().__init__(message)
        self.state = state


class AlreadyExists(HelixpyError):
    """A workflow or job with that name already exists."""


class PollTimeout(HelixpyError, TimeoutError):
    """A poll for a state did not see it in time; ``last_state`` is the last one seen."""

    def __init__(self, message: str, last_state: str | None = None) -> None:
        super().__init__(message)
        self.last_state = last_state


class ClusterUnavailable(HelixpyError):
    """No leader controller could be reached, or ZooKeeper could not be reached, in time."""


class StoreError(HelixpyError):
    """The ZooKeeper layer could not complete an operation."""


class PayloadTooLarge(StoreError):
    """A single znode payload would exceed the store's size limit."""


class CorruptNode(StoreError):
    """A znode's payload could not be decoded."""


class Fenced(HelixpyError):
    """A write was refused because the writer's epoch or incarnation is stale.

    Control flow, not a failure: the writer has been superseded and must stop writing.
    """


class AccessDenied(HelixpyError):
    """The controller refused the caller: a missing or wrong token, or a client certificate
    it does not accept."""


class LockRevoked(HelixpyError):
    """A task lock no longer holds: it was revoked by a higher-priority request, reclaimed
    after its holder's session expired, or cannot be trusted (the session is SUSPENDED)."""


class BarrierCancelled(HelixpyError):
    """A barrier waited for can no longer complete: its streaming job stopped, ended
    abnormally or was deleted first."""


class TooMuchWork(HelixpyError):
    """A task emitted more follow-up work than the executor may run inline."""
