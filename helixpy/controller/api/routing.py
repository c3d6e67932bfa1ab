"""The HTTP API's pure parts: routes and their matching, errors and their statuses.

Nothing here does I/O, so the rules are unit-tested on their own: how a request target
finds its route (or a 404 naming no route, or a 405 naming the methods the path allows),
how a controller's ``MutationReply`` becomes an HTTP status with a JSON error body, and
how a body is parsed by its ``Content-Type``.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import yaml

from helixpy.errors import AlreadyExists, InvalidConfig, NotFound
from helixpy.proto.helixpy.v1 import controller_pb2 as pb

#: the prefix of every API route
PREFIX = "/api/v1"

#: error code -> HTTP status (the ``code`` of an error body)
STATUS = {
    "INVALID_CONFIG": 400,
    "BAD_REQUEST": 400,
    "UNAUTHENTICATED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "NO_SUCH_ROUTE": 404,
    "METHOD_NOT_ALLOWED": 405,
    "ALREADY_EXISTS": 409,
    "PAYLOAD_TOO_LARGE": 413,
    "UNSUPPORTED_MEDIA_TYPE": 415,
    "INTERNAL": 500,
    "UNAVAILABLE": 503,
}

#: media types a body may be sent as, by the parser that reads them
JSON_TYPES = ("application/json",)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml")


class ApiError(Exception):
    """An HTTP API failure: ``code`` (a key of :data:`STATUS`) decides the status;
    ``field`` names the offending input when there is one; ``extra`` adds keys to the
    body (``leader`` on a 503 from a standby, ``allow`` on a 405)."""

    def __init__(
        self,
        code: str,
        message: str,
        field: str = "",
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        if code not in STATUS:
            raise ValueError(f"unknown API error code {code!r}")
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})

    @property
    def status(self) -> int:
        return STATUS[self.code]

    def body(self) -> dict[str, Any]:
        """The JSON error body: ``{code, field, message}`` and any extra keys."""
        return {"code": self.code, "field": self.field, "message": self.message, **self.extra}


#: a field the YAML codec located: ``jobs.a.num_tasks (line 5)``
_LOCATED = re.compile(r"^(?P<field>.+) \(line (?P<line>\d+)\)$")


def from_exception(exc: InvalidConfig | NotFound | AlreadyExists) -> ApiError:
    """The API error of a helixpy error raised while reading or parsing a request. A
    field the YAML codec located on a line is split: ``field`` and ``line``."""
    if isinstance(exc, InvalidConfig):
        if exc.field == "request" and "max_request_bytes" in exc.rule:  # Limits.check_request
            return ApiError("PAYLOAD_TOO_LARGE", str(exc), exc.field)
        located = _LOCATED.match(exc.field)
        if located is not None:
            extra = {"line": int(located["line"])}
            return ApiError("INVALID_CONFIG", str(exc), located["field"], extra)
        return ApiError("INVALID_CONFIG", str(exc), exc.field)
    if isinstance(exc, NotFound):
        return ApiError("NOT_FOUND", str(exc))
    return ApiError("ALREADY_EXISTS", str(exc))


def reply_error(reply: pb.MutationReply) -> ApiError | None:
    """The API error a controller's ``MutationReply`` stands for (None: it was applied).

    The same reading as the driver's (``helixpy.driver.base.reply_error``), to statuses:
    INVALID_CONFIG 400 with its field (413 when the request was over the cluster's
    ``max_request_bytes``), NOT_FOUND 404, ALREADY_EXISTS 409, anything else 500.
    """
    if reply.code == pb.OK:
        return None
    if reply.code == pb.INVALID_CONFIG:
        field = reply.field or "request"
        return from_exception(InvalidConfig(field, reply.rule or reply.message))
    if reply.code == pb.NOT_FOUND:
        return ApiError("NOT_FOUND", reply.message)
    if reply.code == pb.ALREADY_EXISTS:
        return ApiError("ALREADY_EXISTS", reply.message)
    return ApiError("INTERNAL", f"reply code {reply.code}: {reply.message}")


@dataclass(frozen=True)
class Param:
    """A query parameter of a route, for the OpenAPI document."""

    name: str
    description: str
    schema: Mapping[str, Any] = field(default_factory=lambda: {"type": "string"})


@dataclass(frozen=True)
class Call:
    """One request, matched: path parameters (decoded), query parameters, body."""

    params: Mapping[str, str]
    query: Mapping[str, list[str]]
    body: bytes
    content_type: str
    headers: Mapping[str, str]
    #: the operation: what an ``Idempotency-Key`` is scoped to
    method: str = ""
    path: str = ""

    def flag(self, name: str) -> bool:
        """A boolean query parameter: absent is False; ``true``/``1`` and ``false``/``0``."""
        values = self.query.get(name)
        if not values:
            return False
        raw = values[-1].lower()
        if raw in ("true", "1", ""):
            return True
        if raw in ("false", "0"):
            return False
        raise ApiError("INVALID_CONFIG", f"{name}: must be true or false (got {raw!r})", name)


@dataclass(frozen=True)
class Route:
    """One operation: ``method`` on ``pattern`` (``{name}`` segments are parameters)."""

    method: str
    pattern: str
    handler: Callable[[Call], tuple[int, Any]]
    summary: str
    #: ``"workflow"``, ``"queue"``, ``"jobs"``... : the body it takes (None: no body)
    body: str | None = None
    query: Sequence[Param] = ()
    #: the status of success
    status: int = 200
    #: a mutation (goes to the leader) rather than a read (served from ZooKeeper here)
    mutation: bool = False
    tag: str = ""

    @property
    def segments(self) -> list[str]:
        return self.pattern.strip("/").split("/")

    @property
    def path_params(self) -> list[str]:
        return [s[1:-1] for s in self.segments if s.startswith("{") and s.endswith("}")]


def split_path(path: str) -> list[str]:
    """The decoded segments of a request path; an encoded ``/`` stays inside its segment."""
    return [urllib.parse.unquote(s) for s in path.strip("/").split("/")] if path.strip("/") else []


def _match(route: Route, segments: list[str]) -> dict[str, str] | None:
    pattern = route.segments
    if len(pattern) != len(segments):
        return None
    params: dict[str, str] = {}
    for want, got in zip(pattern, segments, strict=True):
        if want.startswith("{") and want.endswith("}"):
            if not got:
                return None
            params[want[1:-1]] = got
        elif want != got:
            return None
    return params


class Router:
    """Finds the route of a request. A path no route has answers 404 ``NO_SUCH_ROUTE``;
    a path routed for other methods only answers 405 naming them (``Allow``)."""

    def __init__(self, routes: Sequence[Route]) -> None:
        seen: set[tuple[str, str]] = set()
        for route in routes:
            key = (route.method, route.pattern)
            if key in seen:
                raise ValueError(f"route {route.method} {route.pattern} given twice")
            seen.add(key)
        self.routes = list(routes)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]]:
        segments = split_path(path)
        # HEAD is GET without the body (the server drops it).
        wanted = "GET" if method == "HEAD" else method
        allowed: list[str] = []
        for route in self.routes:
            params = _match(route, segments)
            if params is None:
                continue
            if route.method == wanted:
                return route, params
            allowed.append(route.method)
        if allowed:
            allow = ", ".join(sorted(set(allowed)))
            raise ApiError(
                "METHOD_NOT_ALLOWED",
                f"{method} is not allowed on {path} (allowed: {allow})",
                extra={"allow": sorted(set(allowed))},
                headers={"Allow": allow},
            )
        raise ApiError("NO_SUCH_ROUTE", f"no route {path} (see /openapi.json)")


def media_type(content_type: str) -> str:
    """``application/json`` of ``application/json; charset=utf-8``."""
    return content_type.split(";", 1)[0].strip().lower()


def parse_body(call: Call, what: str) -> Any:
    """The request body as data, read as JSON or YAML by its ``Content-Type`` (JSON when
    none is given). ``what`` names the body in errors."""
    if not call.body.strip():
        raise ApiError("BAD_REQUEST", f"{what}: the request has no body", what)
    kind = media_type(call.content_type) or JSON_TYPES[0]
    try:
        text = call.body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ApiError("BAD_REQUEST", f"{what}: the body is not UTF-8: {exc}", what) from None
    if kind in JSON_TYPES:
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ApiError("BAD_REQUEST", f"{what}: not valid JSON: {exc}", what) from None
    if kind in YAML_TYPES:
        try:
            return yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ApiError("BAD_REQUEST", f"{what}: not valid YAML: {exc}", what) from None
    raise ApiError(
        "UNSUPPORTED_MEDIA_TYPE",
        f"Content-Type {kind} is not read here (send {', '.join(JSON_TYPES + YAML_TYPES)})",
        "Content-Type",
    )


def is_yaml(call: Call) -> bool:
    return media_type(call.content_type) in YAML_TYPES
