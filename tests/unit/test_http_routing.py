"""The HTTP API's pure parts: routing, error mapping, body parsing, access rules and the
OpenAPI document generated from the route table (no ZooKeeper, no server)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kazoo.client import KazooClient

from helixpy.controller.api.access import BearerCheck, check_binding, check_origin, is_loopback
from helixpy.controller.api.mutations import Mutator
from helixpy.controller.api.openapi import document
from helixpy.controller.api.reads import Reads
from helixpy.controller.api.routes import api_routes
from helixpy.controller.api.routing import (
    STATUS,
    ApiError,
    Call,
    Route,
    Router,
    from_exception,
    parse_body,
    reply_error,
    split_path,
)
from helixpy.controller.api.writes import Writes, read_jobs, read_workflow, request_id
from helixpy.controller.service import ControllerService
from helixpy.errors import InvalidConfig
from helixpy.proto.helixpy.v1 import controller_pb2 as pb
from helixpy.store.paths import Paths


def _ok(_call: Call) -> tuple[int, Any]:
    return 200, {}


def _call(body: bytes = b"", content_type: str = "", headers: dict[str, str] | None = None) -> Call:
    return Call(params={}, query={}, body=body, content_type=content_type, headers=headers or {})


@pytest.fixture
def routes() -> Iterator[list[Route]]:
    # A client that is never started: the handlers are only looked at, never called.
    zk = KazooClient(hosts="127.0.0.1:1")
    paths = Paths("unit")
    service = ControllerService(lambda _cmd: False)
    mutator = Mutator(zk, paths, service, lambda: False, "unit-controller")
    try:
        yield api_routes(Reads(zk, paths), Writes(zk, paths, mutator))
    finally:
        mutator.close()


# --- routing ----------------------------------------------------------------------------


def test_a_route_matches_with_its_parameters_decoded() -> None:
    # Given a router with a parameterised route
    router = Router([Route("GET", "/api/v1/locks/{resource}", _ok, "lock")])
    # When a path with an encoded slash in the parameter is matched
    route, params = router.match("GET", "/api/v1/locks/db%2Ftable")
    # Then the slash stays inside the parameter
    assert route.pattern == "/api/v1/locks/{resource}"
    assert params == {"resource": "db/table"}
    assert split_path("/a/b%20c/") == ["a", "b c"]


def test_an_unknown_path_is_no_such_route_and_a_wrong_method_is_405_with_allow() -> None:
    # Given GET and DELETE on one path
    router = Router(
        [
            Route("GET", "/api/v1/workflows/{name}", _ok, "get"),
            Route("DELETE", "/api/v1/workflows/{name}", _ok, "delete"),
        ]
    )
    # When an unknown path is asked for, Then 404 NO_SUCH_ROUTE
    with pytest.raises(ApiError) as unknown:
        router.match("GET", "/api/v1/workflows/a/b")
    assert (unknown.value.status, unknown.value.code) == (404, "NO_SUCH_ROUTE")
    # When another method is used on the path, Then 405 naming the allowed ones
    with pytest.raises(ApiError) as wrong:
        router.match("PUT", "/api/v1/workflows/a")
    assert (wrong.value.status, wrong.value.code) == (405, "METHOD_NOT_ALLOWED")
    assert wrong.value.headers == {"Allow": "DELETE, GET"}
    assert wrong.value.body()["allow"] == ["DELETE", "GET"]
    # When HEAD is used, Then it is served by the GET route
    assert router.match("HEAD", "/api/v1/workflows/a")[0].method == "GET"


def test_an_empty_parameter_does_not_match_and_a_duplicate_route_is_refused() -> None:
    router = Router([Route("GET", "/api/v1/workflows/{name}/config", _ok, "cfg")])
    with pytest.raises(ApiError):
        router.match("GET", "/api/v1/workflows//config")
    with pytest.raises(ValueError, match="given twice"):
        Router([Route("GET", "/x", _ok, "a"), Route("GET", "/x", _ok, "b")])


# --- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "status", "code", "field"),
    [
        (
            pb.MutationReply(code=pb.INVALID_CONFIG, field="jobs.a", rule="bad"),
            400,
            "INVALID_CONFIG",
            "jobs.a",
        ),
        (pb.MutationReply(code=pb.INVALID_CONFIG, rule="bad"), 400, "INVALID_CONFIG", "request"),
        (
            pb.MutationReply(
                code=pb.INVALID_CONFIG,
                field="request",
                rule="is 9 bytes, over the cluster's max_request_bytes=1",
            ),
            413,
            "PAYLOAD_TOO_LARGE",
            "request",
        ),
        (  # a setting's rule that names max_request_bytes is still a 400 on its field
            pb.MutationReply(
                code=pb.INVALID_CONFIG,
                field="cluster_config.nope",
                rule="unknown setting (known: max_request_bytes, ...)",
            ),
            400,
            "INVALID_CONFIG",
            "cluster_config.nope",
        ),
        (pb.MutationReply(code=pb.NOT_FOUND, message="no wf"), 404, "NOT_FOUND", ""),
        (pb.MutationReply(code=pb.ALREADY_EXISTS, message="wf exists"), 409, "ALREADY_EXISTS", ""),
        (pb.MutationReply(code=pb.INTERNAL, message="boom"), 500, "INTERNAL", ""),
    ],
)
def test_a_mutation_reply_maps_to_its_status_code_and_field(
    reply: pb.MutationReply, status: int, code: str, field: str
) -> None:
    # Given a controller's reply that refused a mutation, When it is mapped
    error = reply_error(reply)
    # Then it carries the status, code and field, in the {code, field, message} shape
    assert error is not None
    assert (error.status, error.code, error.field) == (status, code, field)
    assert set(error.body()) == {"code", "field", "message"}


def test_an_ok_reply_is_no_error_and_unknown_codes_are_refused() -> None:
    assert reply_error(pb.MutationReply(code=pb.OK, message="done")) is None
    with pytest.raises(ValueError):
        ApiError("TEAPOT", "no")
    assert STATUS["UNAVAILABLE"] == 503 and STATUS["UNAUTHENTICATED"] == 401


# --- bodies -----------------------------------------------------------------------------


def test_bodies_are_read_as_json_or_yaml_by_content_type() -> None:
    # Given the same jobs as JSON and as YAML, When they are read, Then they agree
    as_json = _call(
        b'{"b": {"command": "Noop", "num_tasks": 1}, "a": {"command": "Noop", "num_tasks": 1}}',
        "application/json",
    )
    as_yaml = _call(
        b"b: {command: Noop, num_tasks: 1}\na: {command: Noop, num_tasks: 1}\n", "application/yaml"
    )
    assert [n for n, _ in read_jobs(as_json)] == ["b", "a"]  # the order is kept
    assert [n for n, _ in read_jobs(as_yaml)] == ["b", "a"]
    # And no Content-Type means JSON
    assert parse_body(_call(b"[1]"), "x") == [1]


@pytest.mark.parametrize(
    ("body", "content_type", "status", "code"),
    [
        (b"", "application/json", 400, "BAD_REQUEST"),
        (b"{nope", "application/json", 400, "BAD_REQUEST"),
        (b"a: [", "application/yaml", 400, "BAD_REQUEST"),
        (b"\xff\xfe", "application/json", 400, "BAD_REQUEST"),
        (b"name=x", "application/x-www-form-urlencoded", 415, "UNSUPPORTED_MEDIA_TYPE"),
    ],
)
def test_a_body_that_cannot_be_read_is_refused(
    body: bytes, content_type: str, status: int, code: str
) -> None:
    with pytest.raises(ApiError) as refused:
        parse_body(_call(body, content_type), "workflow")
    assert (refused.value.status, refused.value.code) == (status, code)


def test_a_yaml_workflow_error_names_the_field_and_line() -> None:
    # Given a YAML workflow with a bad field on line 4
    text = b"name: w\njobs:\n  a:\n    num_tasks: -1\n    command: Noop\n"
    # When it is read, Then the error names the field and its line
    with pytest.raises(InvalidConfig) as bad:
        read_workflow(_call(text, "application/yaml"))
    assert bad.value.field == "jobs.a.num_tasks (line 4)"
    # And the API error splits the field from its line
    error = from_exception(bad.value)
    assert (error.status, error.field, error.body()["line"]) == (400, "jobs.a.num_tasks", 4)
    # And a JSON body must be an object
    with pytest.raises(InvalidConfig):
        read_workflow(_call(b"[]", "application/json"))


def test_the_request_id_comes_from_the_idempotency_key_scoped_to_the_operation() -> None:
    def keyed(method: str, path: str, key: str = "abc-1") -> Call:
        return Call(
            params={},
            query={},
            body=b"",
            content_type="",
            headers={"idempotency-key": key},
            method=method,
            path=path,
        )

    # the same key on the same operation: the same id (a retry is applied once)
    one = request_id(keyed("POST", "/api/v1/queues/q/jobs"))
    assert one == request_id(keyed("POST", "/api/v1/queues/q/jobs")) and len(one) == 32
    # on another operation, or with another key: another id
    assert one != request_id(keyed("POST", "/api/v1/workflows"))
    assert one != request_id(keyed("DELETE", "/api/v1/queues/q/jobs"))
    assert one != request_id(keyed("POST", "/api/v1/queues/q/jobs", "abc-2"))
    assert len(request_id(_call())) == 32
    assert request_id(_call()) != request_id(_call())
    with pytest.raises(InvalidConfig):
        request_id(_call(headers={"idempotency-key": "no/slashes"}))


def test_boolean_query_flags() -> None:
    def call(q: dict[str, list[str]]) -> Call:
        return Call(params={}, query=q, body=b"", content_type="", headers={})

    assert call({}).flag("force") is False
    assert call({"force": ["true"]}).flag("force") is True
    assert call({"force": ["0"]}).flag("force") is False
    with pytest.raises(ApiError) as bad:
        call({"force": ["maybe"]}).flag("force")
    assert bad.value.field == "force"


# --- access -----------------------------------------------------------------------------


def test_loopback_addresses_and_the_binding_rule() -> None:
    assert all(is_loopback(h) for h in ("127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"))
    assert not any(is_loopback(h) for h in ("0.0.0.0", "", "10.0.0.1", "example.org", "::"))
    # Given no token, When binding a reachable address, Then it is refused naming the way out
    with pytest.raises(InvalidConfig) as refused:
        check_binding("0.0.0.0", None, insecure=False)
    assert refused.value.field == "http_host" and "--http-insecure" in refused.value.rule
    # And a token, or the explicit flag, or loopback, lets it bind
    check_binding("0.0.0.0", "t", insecure=False)
    check_binding("0.0.0.0", None, insecure=True)
    check_binding("127.0.0.1", None, insecure=False)


def test_the_bearer_check() -> None:
    check = BearerCheck("s3cret")
    check.check({"authorization": "Bearer s3cret"})
    for headers in ({}, {"authorization": "Bearer wrong"}, {"authorization": "s3cret"}):
        with pytest.raises(ApiError) as refused:
            check.check(headers)
        assert refused.value.status == 401 and refused.value.field == "Authorization"
        assert "WWW-Authenticate" in refused.value.headers
    with pytest.raises(InvalidConfig):
        BearerCheck("")


def test_cross_origin_mutations_are_refused() -> None:
    check_origin({"host": "127.0.0.1:8080"})  # no Origin: not a browser's cross-site call
    check_origin({"host": "127.0.0.1:8080", "origin": "http://127.0.0.1:8080"})
    with pytest.raises(ApiError) as refused:
        check_origin({"host": "127.0.0.1:8080", "origin": "http://evil.example"})
    assert refused.value.status == 403


# --- the OpenAPI document ---------------------------------------------------------------


def test_every_route_is_documented_and_every_documented_operation_is_routed(
    routes: list[Route],
) -> None:
    # Given the real route table, When its document is generated
    doc = document(routes, secured=True, version="test")
    documented = {(m.upper(), p) for p, ops in doc["paths"].items() for m in ops}
    # Then the two sets are the same
    assert documented == {(r.method, r.pattern) for r in routes}
    router = Router(routes)
    for method, pattern in documented:
        # And each documented path, its parameters filled in, routes to that operation
        concrete = pattern.replace("{", "x").replace("}", "")
        assert router.match(method, concrete)[0].pattern == pattern
        op = doc["paths"][pattern][method.lower()]
        declared = {p["name"] for p in op["parameters"] if p["in"] == "path"}
        assert declared == {s[1:-1] for s in pattern.split("/") if s.startswith("{")}
        assert op["security"] == [{"bearer": []}]
    ids = [op["operationId"] for ops in doc["paths"].values() for op in ops.values()]
    assert len(ids) == len(set(ids))


def test_the_issue_routes_exist(routes: list[Route]) -> None:
    have = {(r.method, r.pattern) for r in routes}
    w = "/api/v1/workflows/{name}"
    for want in [
        ("GET", "/api/v1/workflows"),
        ("POST", "/api/v1/workflows"),
        ("GET", f"{w}/config"),
        ("GET", f"{w}/context"),
        ("GET", f"{w}/jobs/{{job}}/config"),
        ("GET", f"{w}/jobs/{{job}}/context"),
        ("GET", f"{w}/jobs/{{job}}/results"),
        ("GET", f"{w}/jobs/{{job}}/tasks/{{task}}/result"),
        ("POST", f"{w}/stop"),
        ("POST", f"{w}/resume"),
        ("DELETE", w),
        ("POST", "/api/v1/queues/{name}/jobs"),
        ("GET", "/api/v1/instances"),
        ("POST", "/api/v1/instances/{instance}/enable"),
        ("POST", "/api/v1/instances/{instance}/disable"),
        ("GET", "/api/v1/locks"),
    ]:
        assert want in have
    assert not document(routes, secured=False, version="t")["paths"]["/api/v1/locks"]["get"].get(
        "security"
    )
