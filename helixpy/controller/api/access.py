"""Who may use the controller's HTTP API: the bearer token, the binding rule, TLS.

- With a token (the controller's ``--token``, the same one its gRPC service requires),
  every ``/api/`` request must carry ``Authorization: Bearer <token>`` (compared in
  constant time) or is answered 401. The page itself and ``/openapi.json`` are static and
  hold no cluster data, so they stay open: the page is where a user types the token.
- Without a token the API binds to a loopback address only, unless told otherwise
  (``--http-insecure``): anyone who can reach the port could mutate the cluster.
- A request that changes something and carries an ``Origin`` other than the server's own
  is refused 403: a web page elsewhere must not drive a loopback API from a browser. An
  API without a token on a loopback address also refuses (403) any request whose ``Host``
  is not a loopback name, so a page whose DNS name was rebound to 127.0.0.1 (its requests
  are same-origin to the browser) can neither read nor change anything.
- With TLS configured (``--tls-cert``/``--tls-key``) the HTTP server speaks TLS with the
  same certificate and key, and requires client certificates from ``--tls-client-ca``
  when the gRPC server does.
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import ssl
import tempfile
import urllib.parse
from collections.abc import Mapping

from helixpy.controller.api.routing import ApiError
from helixpy.errors import InvalidConfig
from helixpy.security import ServerTls


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (``localhost`` counts; any other name does
    not, since what it resolves to may change)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None, insecure: bool) -> None:
    """Refuse to serve the API without a token on a non-loopback ``host`` unless
    ``insecure`` (:class:`InvalidConfig` naming ``http_host``)."""
    if token is None and not insecure and not is_loopback(host):
        raise InvalidConfig(
            "http_host",
            f"{host!r} is not a loopback address and no --token is set: anyone reaching it "
            "could change the cluster; set --token, or --http-insecure to serve it anyway",
        )


class BearerCheck:
    """Checks the ``Authorization`` header of a request against one token."""

    def __init__(self, token: str) -> None:
        if not token:
            raise InvalidConfig("token", "must not be empty")
        self._expected = f"Bearer {token}".encode()

    def check(self, headers: Mapping[str, str]) -> None:
        """Return if ``headers`` carry the token, else raise a 401 :class:`ApiError`."""
        got = headers.get("authorization", "")
        if not hmac.compare_digest(got.encode(), self._expected):  # constant time
            message = "wrong bearer token" if got else "missing bearer token"
            raise ApiError(
                "UNAUTHENTICATED",
                f"{message}: send Authorization: Bearer <the controller's --token>",
                "Authorization",
                headers={"WWW-Authenticate": 'Bearer realm="helixpy"'},
            )


def check_host(headers: Mapping[str, str]) -> None:
    """Refuse (403) a request to an open loopback API whose ``Host`` is not a loopback
    name: a page whose DNS name was rebound to 127.0.0.1 sends its own name as ``Host``
    (and a matching ``Origin``), so this is what keeps it from reading or driving the API."""
    host = headers.get("host", "")
    name = urllib.parse.urlsplit(f"//{host}").hostname or ""
    if not is_loopback(name):
        raise ApiError(
            "FORBIDDEN",
            f"Host {host!r} is not a loopback name: this API has no token and answers "
            "loopback clients only (localhost, 127.0.0.1, [::1])",
            "Host",
        )


def check_origin(headers: Mapping[str, str]) -> None:
    """Refuse (403) a request whose ``Origin`` is not the host it was sent to: browsers
    send ``Origin`` on cross-site requests, so a page elsewhere cannot post here."""
    origin = headers.get("origin")
    if not origin:
        return
    host = headers.get("host", "")
    if urllib.parse.urlsplit(origin).netloc.lower() != host.lower():
        raise ApiError(
            "FORBIDDEN", f"cross-origin request from {origin} refused (served as {host})", "Origin"
        )


def server_context(tls: ServerTls) -> ssl.SSLContext:
    """An SSL server context of the controller's certificate and key (the gRPC server's);
    client certificates are required when ``tls.client_ca`` is set, as gRPC requires them."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    # ssl loads a certificate chain from files only: a private temporary directory holds
    # the PEMs for the moment of loading (mode 0700, removed at once).
    with tempfile.TemporaryDirectory(prefix="helixpy-tls-") as tmp:
        cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
        for path, data in ((cert, tls.cert), (key, tls.key)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as out:
                out.write(data)
        try:
            context.load_cert_chain(cert, key)
        except ssl.SSLError as exc:
            raise InvalidConfig("tls_cert", f"not a usable certificate and key: {exc}") from None
    if tls.client_ca is not None:
        context.load_verify_locations(cadata=tls.client_ca.decode("ascii", errors="replace"))
        context.verify_mode = ssl.CERT_REQUIRED
    return context
