"""``telemetry.HttpServer``: methods, headers, bodies and the body limit, on loopback."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from helixpy.telemetry import Answer, Answered, HttpServer, Request


def _echo(request: Request) -> Answered:
    body = {
        "method": request.method,
        "path": request.path,
        "query": request.query,
        "body": request.body.decode(),
        "x": request.headers.get("x-thing"),
    }
    return Answer(200, "application/json", json.dumps(body).encode(), {"X-Seen": "yes"})


def _refuse(status: int, why: str) -> Answered:
    return status, "application/json", json.dumps({"code": status, "message": why}).encode()


@pytest.fixture
def server() -> Iterator[HttpServer]:
    srv = HttpServer(_echo, max_body=1000, refuse=_refuse)
    srv.start()
    try:
        yield srv
    finally:
        srv.stop()


def _open(
    srv: HttpServer, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(
        f"http://{srv.address}{path}", data=body, method=method, headers={"X-Thing": "t"}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "DELETE", "PATCH"])
def test_each_method_reaches_the_handler_with_its_path_query_headers_and_body(
    server: HttpServer, method: str
) -> None:
    # Given a server that echoes what it got, When a request is sent
    body = b"hello" if method in ("POST", "PUT", "PATCH") else None
    status, headers, data = _open(server, method, "/a/b%2Fc?x=1", body)
    # Then the handler saw all of it, and its own header is sent back
    assert status == 200 and headers["X-Seen"] == "yes"
    assert json.loads(data) == {
        "method": method,
        "path": "/a/b%2Fc",
        "query": "x=1",
        "body": (body or b"").decode(),
        "x": "t",
    }


def test_head_sends_headers_without_the_body(server: HttpServer) -> None:
    status, headers, data = _open(server, "HEAD", "/x")
    assert status == 200 and data == b"" and int(headers["Content-Length"]) > 0


def test_a_body_over_the_limit_is_refused_413_unread(server: HttpServer) -> None:
    # Given a server reading at most 1000 bytes, When 5000 are sent
    status, headers, data = _open(server, "POST", "/x", b"x" * 5000)
    # Then the refusal is the server's own (413), worded by its refuse function
    assert status == 413 and headers["Connection"] == "close"
    assert json.loads(data)["code"] == 413


def test_an_ipv6_loopback_host_is_served() -> None:
    # Given a server on ::1 (as --http-host ::1 asks), When it is called, Then it answers
    srv = HttpServer(_echo, host="::1", max_body=1000, refuse=_refuse)
    srv.start()
    try:
        assert srv.address.startswith("[::1]:")
        with urllib.request.urlopen(f"http://{srv.address}/x", timeout=10) as reply:
            assert reply.status == 200
    finally:
        srv.stop()
