"""How an HTTP mutation reaches the leader: in-process on the leader, over gRPC from a
standby.

A route builds the same protobuf request the TaskDriver builds for the same change, with
a fresh request id (or the client's ``Idempotency-Key``), then:

- on the leader, calls the :class:`~helixpy.controller.service.ControllerService` handler
  in this process: the same validation, limits and pipeline path as a gRPC call;
- on a standby (or on a leader that just lost its term), reads LEADER and forwards the
  request over gRPC with this controller's token, resending the same request (so the same
  id: applied once) while the leader changes, within :data:`FORWARD_TIMEOUT`.

When gRPC is TLS and this controller has no client TLS settings (the global ``--tls-ca``,
plus ``--tls-client-cert``/``--tls-client-key`` under mutual TLS), it cannot verify the
leader, so it refuses 503 naming the leader instead of forwarding in plaintext.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn, cast

import grpc
from kazoo.client import KazooClient

from helixpy.controller.api.routing import ApiError, reply_error
from helixpy.controller.election import read_leader
from helixpy.controller.service import APPLY_TIMEOUT, ControllerService
from helixpy.proto.helixpy.v1 import controller_pb2 as pb
from helixpy.proto.helixpy.v1 import controller_pb2_grpc as pb_grpc
from helixpy.security import ClientTls, token_metadata
from helixpy.store.paths import Paths

log = logging.getLogger(__name__)

#: How long an HTTP mutation keeps trying while no leader answers: long enough for a
#: crashed leader's session (10 s by default) to expire and a standby to take over, and
#: above one RPC's deadline, so that a slow first answer still leaves time to retry.
FORWARD_TIMEOUT = 60.0
#: One forwarded RPC's deadline: above the leader's apply timeout, so that it answers first.
RPC_DEADLINE = APPLY_TIMEOUT + 5.0
_RETRYABLE = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED})


class _Aborted(Exception):
    """What :meth:`_LocalCall.abort` raises, as gRPC's ``context.abort`` does."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self.code = code
        self.details = details


class _LocalCall:
    """The one part of a ``grpc.ServicerContext`` the service's handlers use: ``abort``."""

    def abort(self, code: grpc.StatusCode, details: str) -> NoReturn:
        raise _Aborted(code, details)


def _leader_view(leader: dict[str, object] | None) -> dict[str, Any]:
    leader = leader or {}
    return {k: leader.get(k) for k in ("id", "endpoint", "epoch")}


class Mutator:
    """Applies mutations for the HTTP API (see the module docstring).

    ``is_leader`` says whether this controller leads now; ``controller_id`` is its own id
    (a LEADER naming it while it does not lead is a term starting or ending: 503).
    ``server_tls`` says whether the gRPC servers speak TLS; ``client_tls`` and ``token``
    are what forwarding connects with.
    """

    def __init__(
        self,
        zk: KazooClient,
        paths: Paths,
        service: ControllerService,
        is_leader: Callable[[], bool],
        controller_id: str,
        *,
        token: str | None = None,
        server_tls: bool = False,
        client_tls: ClientTls | None = None,
    ) -> None:
        self._zk = zk
        self._paths = paths
        self._service = service
        self._is_leader = is_leader
        self._id = controller_id
        self._metadata = token_metadata(token)
        self._server_tls = server_tls
        self._client_tls = client_tls
        self._lock = threading.Lock()
        self._channels: dict[str, tuple[grpc.Channel, pb_grpc.ControllerStub]] = {}
        self._closed = threading.Event()

    def close(self) -> None:
        """Close the channels to leaders; later forwards are refused."""
        self._closed.set()
        with self._lock:
            channels, self._channels = list(self._channels.values()), {}
        for channel, _stub in channels:
            channel.close()

    def apply(self, method: str, request: Any) -> pb.MutationReply:
        """``method(request)`` on the leader; its reply, or :class:`ApiError` (503) when no
        leader applied it in time. A reply that is not OK raises its API error."""
        reply = self._call(method, request)
        error = reply_error(reply)
        if error is not None:
            raise error
        return reply

    def _call(self, method: str, request: Any) -> pb.MutationReply:
        deadline = time.monotonic() + FORWARD_TIMEOUT
        backoff = 0.05
        problem = ""
        while True:
            if self._is_leader():
                try:
                    handler = getattr(self._service, method)
                    return cast(pb.MutationReply, handler(request, cast(Any, _LocalCall())))
                except _Aborted as exc:
                    # Not leading any more (or not applied in time): LEADER says who is.
                    problem = f"this controller: {exc.details}"
            leader = read_leader(self._zk, self._paths)
            endpoint = leader.get("endpoint") if leader else None
            if leader is None or not isinstance(endpoint, str) or not endpoint:
                problem = "no leader controller is elected"
            elif leader.get("id") == self._id:
                problem = problem or "this controller is taking over and not leading yet"
            else:
                reply, problem = self._forward(method, request, endpoint, leader, deadline)
                if reply is not None:
                    return reply
            left = deadline - time.monotonic()
            if left <= 0 or self._closed.is_set():
                raise ApiError(
                    "UNAVAILABLE",
                    f"no leader answered within {FORWARD_TIMEOUT:g}s ({problem}); it may "
                    "still be applied: retry with the same Idempotency-Key to apply it once",
                    extra={"leader": _leader_view(read_leader(self._zk, self._paths))},
                )
            # A leader change is under way: LEADER is re-read after a short backoff.
            self._closed.wait(min(backoff, left))
            backoff = min(backoff * 2, 1.0)

    def _forward(
        self,
        method: str,
        request: Any,
        endpoint: str,
        leader: dict[str, object],
        deadline: float,
    ) -> tuple[pb.MutationReply | None, str]:
        if self._server_tls and self._client_tls is None:
            raise ApiError(
                "UNAVAILABLE",
                f"this controller is a standby and gRPC is TLS, but it has no client TLS "
                f"settings to reach the leader with (give the controller --tls-ca, and "
                f"--tls-client-cert/--tls-client-key under mutual TLS): send this request "
                f"to the leader {leader.get('id')} ({endpoint})",
                extra={"leader": _leader_view(leader)},
            )
        rpc = getattr(self._stub(endpoint), method)
        # Bounded by what is left of the whole call (a frozen leader accepts connections
        # and never answers), but never so short that a live leader cannot answer.
        timeout = min(RPC_DEADLINE, max(deadline - time.monotonic(), 1.0))
        try:
            reply = rpc(request, timeout=timeout, metadata=self._metadata)
        except ValueError as exc:
            # The channel was closed under the call: this controller is shutting down.
            raise ApiError("UNAVAILABLE", f"{method}: the controller is shutting down") from exc
        except grpc.RpcError as exc:
            code = exc.code()
            problem = f"{method} forwarded to {endpoint}: {code.name}: {exc.details()}"
            if code in _RETRYABLE:
                return None, problem
            log.warning("%s", problem)
            raise ApiError("UNAVAILABLE", problem, extra={"leader": _leader_view(leader)}) from exc
        return cast(pb.MutationReply, reply), ""

    def _stub(self, endpoint: str) -> pb_grpc.ControllerStub:
        with self._lock:
            found = self._channels.get(endpoint)
            if found is None:
                if self._client_tls is None:
                    channel = grpc.insecure_channel(endpoint)
                else:
                    channel = grpc.secure_channel(
                        endpoint, self._client_tls.credentials(), self._client_tls.options()
                    )
                found = (channel, pb_grpc.ControllerStub(channel))
                self._channels[endpoint] = found
            return found[1]
