"""``/openapi.json``: the OpenAPI 3.1 document of the HTTP API, generated from the route
table, so every route is documented and every documented operation is routed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from helixpy.controller.api.routing import JSON_TYPES, STATUS, YAML_TYPES, Route

_BODIES = {
    "workflow": (
        "A workflow: the JSON of Workflow.to_dict(), or the workflow YAML file schema "
        "(docs/workflow-yaml.md) with Content-Type application/yaml."
    ),
    "queue": "A job queue: {name, config, jobs} (JobQueue.to_dict()), as JSON or YAML.",
    "jobs": "A mapping of job name to job fields (JobConfig.to_dict()), in enqueue order.",
    "content": "A JSON object of string keys to string values, merged into the map.",
    "thread pool": '{"size": N}: N from 1 to 100, or null to clear the target.',
    "config": "A WorkflowConfig as an object (WorkflowConfig.to_dict()), JSON or YAML.",
    "task": "A task config: {id, command?, target_partition?, config?}.",
    "tags": "A JSON list of tags (names).",
    "partition": '{"state": S}: the state the instance hosts the partition in.',
    "cluster_config": "An object of cluster settings (see set_cluster_config).",
}
_ERROR = {"$ref": "#/components/schemas/Error"}


def _operation_id(route: Route) -> str:
    words = [s.strip("{}") for s in route.segments[2:]]  # after api/v1
    return route.method.lower() + "".join(w[:1].upper() + w[1:] for w in words)


def _errors(route: Route) -> dict[str, Any]:
    codes = {"400", "404"}
    if route.mutation:
        codes |= {"409", "503"}
    if route.body is not None:
        codes |= {"413", "415"}
    codes |= {"401", "405"}
    names = {str(s): [c for c, st in STATUS.items() if str(st) == s] for s in codes}
    return {
        s: {
            "description": " or ".join(names[s]),
            "content": {"application/json": {"schema": _ERROR}},
        }
        for s in sorted(codes)
    }


def _operation(route: Route, secured: bool) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": p, "in": "path", "required": True, "schema": {"type": "string"}}
        for p in route.path_params
    ]
    params += [
        {"name": q.name, "in": "query", "description": q.description, "schema": dict(q.schema)}
        for q in route.query
    ]
    if route.mutation:
        params.append(
            {
                "name": "Idempotency-Key",
                "in": "header",
                "description": "A request id: a retry with the same key is applied once.",
                "schema": {"type": "string"},
            }
        )
    op: dict[str, Any] = {
        "operationId": _operation_id(route),
        "summary": route.summary,
        "tags": [route.tag] if route.tag else [],
        "parameters": params,
        "responses": {
            str(route.status): {
                "description": "applied" if route.mutation else "the data",
                "content": {"application/json": {"schema": {"type": "object"}}},
            },
            **_errors(route),
        },
        "x-helixpy-mutation": route.mutation,
    }
    if route.body is not None:
        schema = {"type": "object", "description": _BODIES.get(route.body, route.body)}
        op["requestBody"] = {
            "required": True,
            "content": {t: {"schema": schema} for t in (*JSON_TYPES, *YAML_TYPES)},
        }
    if secured:
        op["security"] = [{"bearer": []}]
    return op


def document(routes: Sequence[Route], *, secured: bool, version: str) -> dict[str, Any]:
    """The OpenAPI document of ``routes``; ``secured``: every operation needs the bearer
    token (the controller has one)."""
    paths: dict[str, dict[str, Any]] = {}
    for route in routes:
        paths.setdefault(route.pattern, {})[route.method.lower()] = _operation(route, secured)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "helixpy controller HTTP API",
            "version": version,
            "description": (
                "Reads are served by every controller from ZooKeeper; mutations are applied "
                "by the leader (a standby forwards them). Errors are JSON {code, field, "
                "message}. See docs/guide/http-api.md."
            ),
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["code", "field", "message"],
                    "properties": {
                        "code": {"type": "string", "enum": sorted(STATUS)},
                        "field": {
                            "type": "string",
                            "description": "the offending input, '' when none",
                        },
                        "message": {"type": "string"},
                        "leader": {
                            "type": "object",
                            "description": "on 503: the leader's id, gRPC endpoint, epoch",
                        },
                    },
                }
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
