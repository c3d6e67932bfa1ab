"""gRPC security shared by the controller (server) and the driver (client).

TLS with optional mutual authentication, and a bearer token checked on every call. The
controller serves TLS when given a certificate and key, and requires client certificates
signed by ``client_ca`` when one is given; drivers verify the controller against ``ca`` and
present ``cert``/``key`` for mutual TLS. With a token, every RPC must carry
``authorization: Bearer <token>`` or is refused UNAUTHENTICATED.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc

from helixpy.errors import InvalidConfig

#: gRPC metadata key of the bearer token (lower case, as gRPC requires).
TOKEN_HEADER = "authorization"


def _read(flag: str, path: str | Path) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise InvalidConfig(flag, f"cannot read {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True)
class ServerTls:
    """The controller's certificate chain and key (PEM), and the CA its clients' certificates
    must chain to (mutual TLS) when given."""

    cert: bytes
    key: bytes
    client_ca: bytes | None = None

    @classmethod
    def from_files(
        cls, cert: str | Path, key: str | Path, client_ca: str | Path | None = None
    ) -> ServerTls:
        return cls(
            _read("tls_cert", cert),
            _read("tls_key", key),
            _read("tls_client_ca", client_ca) if client_ca is not None else None,
        )

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.key, self.cert)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )


@dataclass(frozen=True)
class ClientTls:
    """The CA a driver trusts for the controller, and its own certificate and key for
    mutual TLS. ``server_name`` overrides the name checked in the controller's certificate
    (the endpoint's host otherwise)."""

    ca: bytes
    cert: bytes | None = None
    key: bytes | None = None
    server_name: str | None = None

    @classmethod
    def from_files(
        cls,
        ca: str | Path,
        cert: str | Path | None = None,
        key: str | Path | None = None,
        server_name: str | None = None,
    ) -> ClientTls:
        if (cert is None) != (key is None):
            raise InvalidConfig("tls_client_cert", "give a client certificate and its key")
        return cls(
            _read("tls_ca", ca),
            _read("tls_client_cert", cert) if cert is not None else None,
            _read("tls_client_key", key) if key is not None else None,
            server_name,
        )

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.ca, private_key=self.key, certificate_chain=self.cert
        )

    def options(self) -> list[tuple[str, Any]]:
        if self.server_name is None:
            return []
        return [("grpc.ssl_target_name_override", self.server_name)]


def token_metadata(token: str | None) -> list[tuple[str, str]]:
    """The call metadata that carries ``token`` (none without one)."""
    return [] if token is None else [(TOKEN_HEADER, f"Bearer {token}")]


if TYPE_CHECKING:  # the stubs are generic, the runtime class is not
    _Interceptor = grpc.ServerInterceptor[Any, Any]
else:
    _Interceptor = grpc.ServerInterceptor


class TokenInterceptor(_Interceptor):
    """Refuses every call that does not carry the bearer token (UNAUTHENTICATED)."""

    def __init__(self, token: str) -> None:
        if not token:
            raise InvalidConfig("token", "must not be empty")
        self._expected = f"Bearer {token}".encode()

        def deny(_request: Any, context: grpc.ServicerContext) -> Any:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong bearer token")

        self._deny = grpc.unary_unary_rpc_method_handler(deny)

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler[Any, Any] | None],
        details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        got = dict(details.invocation_metadata or ()).get(TOKEN_HEADER, "")
        if hmac.compare_digest(str(got).encode(), self._expected):  # constant time
            return continuation(details)
        return self._deny
