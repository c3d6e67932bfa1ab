"""The controller's HTTP API end to end: real ZooKeeper, controller and participant
processes, gRPC between controllers; the client is ``urllib``."""

from __future__ import annotations

import json
import os
import re
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from helixpy import TaskState
from helixpy.controller.api.server import API_MAX_BODY
from helixpy.security import ClientTls
from helixpy.testing import LocalCluster
from tests.integration.helpers import dashboard_url

pytestmark = pytest.mark.cluster
TOKEN = "http-api-test-token"
WAIT = 60.0


#: a controller's HTTP base URL (http:// or https://), from the line it logs once it serves
http_url = dashboard_url


class Client:
    """A tiny JSON client of one controller's HTTP API."""

    def __init__(
        self, base: str, token: str | None = None, context: ssl.SSLContext | None = None
    ) -> None:
        self.base = base
        self.token = token
        self.context = context

    def call(
        self,
        method: str,
        path: str,
        body: bytes | dict[str, Any] | list[Any] | None = None,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        data = json.dumps(body).encode() if isinstance(body, dict | list) else body
        sent = {"Content-Type": content_type, **(headers or {})}
        if self.token is not None:
            sent["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.base + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(request, timeout=WAIT, context=self.context) as reply:
                raw = reply.read()
                status = reply.status
        except urllib.error.HTTPError as exc:
            raw, status = exc.read(), exc.code
        return status, json.loads(raw) if raw else None


def sleepy(name: str, seconds: str = "60") -> dict[str, Any]:
    return {
        "name": name,
        "jobs": {"a": {"command": "Sleep", "num_tasks": 2, "command_config": {"seconds": seconds}}},
    }


RETURNS_YAML = b"""\
name: vals
jobs:
  ret:
    command: Return
    num_tasks: 2
"""


def test_workflows_start_read_stop_resume_and_delete_over_http(zk_address: str) -> None:
    with LocalCluster(
        participants=2, zk=zk_address, controller_args=["--http-port", "0"]
    ) as cluster:
        api, driver = Client(http_url(cluster)), cluster.driver
        # Given a workflow started from JSON and another from YAML
        assert api.call("POST", "/api/v1/workflows", sleepy("slow"))[0] == 201
        status, body = api.call("POST", "/api/v1/workflows", RETURNS_YAML, "application/yaml")
        assert (status, body["name"]) == (201, "vals")
        assert driver.poll_for_workflow_state("vals", TaskState.COMPLETED, timeout=WAIT)
        # When they are listed and read
        status, listed = api.call("GET", "/api/v1/workflows")
        # Then both are there with their states, and every view answers
        assert status == 200
        assert {w["name"] for w in listed["workflows"]} == {"slow", "vals"}
        status, wf = api.call("GET", "/api/v1/workflows/vals")
        assert (wf["kind"], wf["state"], wf["jobs"]) == (
            "workflow",
            "COMPLETED",
            {"ret": "COMPLETED"},
        )
        assert api.call("GET", "/api/v1/workflows/vals/config")[1]["parents"] == {"ret": []}
        assert api.call("GET", "/api/v1/workflows/vals/context")[1]["state"] == "COMPLETED"
        jobs = api.call("GET", "/api/v1/workflows/vals/jobs")[1]["jobs"]
        assert jobs == [{"name": "ret", "state": "COMPLETED"}]
        job_cfg = api.call("GET", "/api/v1/workflows/vals/jobs/ret/config")[1]["config"]
        assert (job_cfg["command"], job_cfg["num_tasks"]) == ("Return", 2)
        ctx = api.call("GET", "/api/v1/workflows/vals/jobs/ret/context")[1]
        assert [t["state"] for t in ctx["tasks"]] == ["COMPLETED", "COMPLETED"]
        results = api.call("GET", "/api/v1/workflows/vals/jobs/ret/results")[1]["results"]
        assert results == driver.get_job_results("vals", "ret") and set(results) == {"0", "1"}
        status, one = api.call("GET", "/api/v1/workflows/vals/jobs/ret/tasks/1/result")
        assert (status, one["value"]) == (200, driver.get_task_result("vals", "ret", "1"))
        assert api.call("GET", "/api/v1/workflows/vals/view")[1]["jobs"][0]["total"] == 2
        # When the slow one is stopped, Then it stops
        driver.poll_for_job_state("slow", "a", TaskState.IN_PROGRESS, timeout=WAIT)
        assert api.call("POST", "/api/v1/workflows/slow/stop")[0] == 200
        driver.poll_for_workflow_state("slow", TaskState.STOPPED, timeout=WAIT)
        # When it is resumed, Then it runs again
        assert api.call("POST", "/api/v1/workflows/slow/resume")[0] == 200
        driver.poll_for_workflow_state("slow", TaskState.IN_PROGRESS, timeout=WAIT)
        # When both are deleted (one through the leader, one forced), Then both are gone
        assert api.call("DELETE", "/api/v1/workflows/slow")[0] == 200
        assert api.call("DELETE", "/api/v1/workflows/vals?force=true")[0] == 200
        assert driver.get_workflows() == {}
        assert api.call("GET", "/api/v1/workflows")[1] == {"workflows": []}
        # And the dashboard's first routes still answer
        assert api.call("GET", "/api/overview")[0] == 200


def test_errors_are_json_with_code_field_and_status(zk_address: str) -> None:
    with LocalCluster(
        participants=1, zk=zk_address, controller_args=["--http-port", "0"]
    ) as cluster:
        api = Client(http_url(cluster))
        assert api.call("POST", "/api/v1/workflows", sleepy("w", "0"))[0] == 201

        def error(method: str, path: str, *args: Any) -> tuple[int, str, str]:
            status, body = api.call(method, path, *args)
            assert set(body) >= {"code", "field", "message"}, body
            return status, body["code"], body["field"]

        bad_job = {"name": "b", "jobs": {"a": {"command": "Noop", "num_tasks": -1}}}
        # Given requests that break each rule, When each is sent, Then each status and code:
        # a config the model refuses names its field
        assert error("POST", "/api/v1/workflows", bad_job) == (
            400,
            "INVALID_CONFIG",
            "jobs.a.num_tasks",
        )
        # a YAML one names the line too
        yaml_bad = b"name: y\njobs:\n  a:\n    command: Noop\n    num_tasks: -1\n"
        assert error("POST", "/api/v1/workflows", yaml_bad, "application/yaml") == (
            400,
            "INVALID_CONFIG",
            "jobs.a.num_tasks",
        )
        # a bad name in the path names what it is
        assert error("POST", "/api/v1/workflows/bad%20name/stop")[:2] == (400, "INVALID_CONFIG")
        assert error("POST", "/api/v1/workflows", sleepy("w")) == (409, "ALREADY_EXISTS", "")
        assert error("POST", "/api/v1/workflows/nope/stop") == (404, "NOT_FOUND", "")
        assert error("GET", "/api/v1/workflows/nope/config") == (404, "NOT_FOUND", "")
        assert error("GET", "/api/v1/workflows/w/jobs/zz/context") == (404, "NOT_FOUND", "")
        assert error("GET", "/api/v1/nothing-here") == (404, "NO_SUCH_ROUTE", "")
        assert error("PUT", "/api/v1/workflows/w") == (405, "METHOD_NOT_ALLOWED", "")
        assert error("POST", "/api/v1/workflows", b"{", "application/json") == (
            400,
            "BAD_REQUEST",
            "workflow",
        )
        assert error("POST", "/api/v1/workflows", b"a=b", "application/x-www-form-urlencoded")[
            :2
        ] == (415, "UNSUPPORTED_MEDIA_TYPE")
        # a body over the hard limit is refused unread (the server's own 413: a unit test,
        # test_http_server.py, sends one); one over the cluster's max_request_bytes is
        # refused by the leader, 413 naming the request
        cluster.driver.set_cluster_config(max_request_bytes=4096)
        big = sleepy("big", "0")
        big["jobs"]["a"]["command_config"]["pad"] = "x" * 5000
        assert error("POST", "/api/v1/workflows", big) == (413, "PAYLOAD_TOO_LARGE", "request")
        cluster.driver.set_cluster_config(max_request_bytes=API_MAX_BODY)
        # a browser page elsewhere cannot post here
        status, body = api.call(
            "POST", "/api/v1/workflows/w/stop", headers={"Origin": "http://evil.example"}
        )
        assert (status, body["code"]) == (403, "FORBIDDEN")


def test_queues_and_instances_over_http(zk_address: str) -> None:
    with LocalCluster(
        participants=1, zk=zk_address, controller_args=["--http-port", "0"]
    ) as cluster:
        api, driver = Client(http_url(cluster)), cluster.driver
        # Given a queue created from YAML
        queue_yaml = b"name: q\nconfig: {parallel_jobs: 1}\njobs: {}\n"
        assert api.call("POST", "/api/v1/queues", queue_yaml, "application/yaml")[0] == 201
        # When jobs are enqueued (JSON, then YAML), Then they run in order and are listed
        first = {
            "j1": {"command": "Noop", "num_tasks": 1},
            "j2": {"command": "Noop", "num_tasks": 1},
        }
        status, body = api.call("POST", "/api/v1/queues/q/jobs", first)
        assert (status, body["jobs"]) == (200, ["j1", "j2"])
        more = b"j3: {command: Noop, num_tasks: 1}\n"
        assert api.call("POST", "/api/v1/queues/q/jobs", more, "application/yaml")[0] == 200
        driver.poll_for_job_state("q", "j3", TaskState.COMPLETED, timeout=WAIT)
        status, q = api.call("GET", "/api/v1/queues/q")
        assert (status, q["queue"]) == (200, ["j1", "j2", "j3"])
        assert [x["name"] for x in api.call("GET", "/api/v1/queues")[1]["queues"]] == ["q"]
        assert api.call("GET", "/api/v1/workflows")[1]["workflows"] == []
        # When a job is enqueued twice, Then 409; when one is removed, Then it is gone
        assert (
            api.call("POST", "/api/v1/queues/q/jobs", {"j3": {"command": "Noop", "num_tasks": 1}})[
                0
            ]
            == 409
        )
        assert api.call("DELETE", "/api/v1/queues/q/jobs/j1?force=true")[0] == 200
        assert api.call("POST", "/api/v1/queues/q/flush")[0] == 200
        assert api.call("GET", "/api/v1/queues/q")[1]["queue"] == []
        # Given a participant, When it is disabled over HTTP, Then the cluster sees it disabled
        inst = cluster.instances[0]
        assert api.call("GET", "/api/v1/instances")[1]["instances"][inst]["live"] is True
        assert api.call("POST", f"/api/v1/instances/{inst}/disable")[0] == 200
        assert driver.get_instances()[inst]["enabled"] is False
        assert api.call("GET", f"/api/v1/instances/{inst}")[1]["enabled"] is False
        # When it is enabled again, Then it is enabled
        assert api.call("POST", f"/api/v1/instances/{inst}/enable")[0] == 200
        assert driver.get_instances()[inst]["enabled"] is True
        assert api.call("GET", "/api/v1/instances/nobody")[0] == 404
        # And locks answer (none are held)
        assert api.call("GET", "/api/v1/locks") == (200, {"locks": {}})
        assert api.call("GET", "/api/v1/locks/db%2Ft")[1] == {"resource": "db/t", "locks": []}


def test_user_content_thread_pool_and_last_scheduled_task_over_http(zk_address: str) -> None:
    with LocalCluster(
        participants=1, zk=zk_address, controller_args=["--http-port", "0"]
    ) as cluster:
        api, driver = Client(http_url(cluster)), cluster.driver
        # Given a finished workflow whose tasks wrote content
        wf = {"name": "uc", "jobs": {"extract": {"command": "WriteContent", "num_tasks": 2}}}
        assert api.call("POST", "/api/v1/workflows", wf)[0] == 201
        driver.poll_for_workflow_state("uc", TaskState.COMPLETED, timeout=WAIT)
        # When keys are added at each scope over HTTP
        base = "/api/v1/workflows/uc"
        assert api.call("POST", f"{base}/content", {"owner": "ops"})[0] == 200
        assert api.call("POST", f"{base}/jobs/extract/content", {"checked": "yes"})[0] == 200
        assert api.call("POST", f"{base}/jobs/extract/tasks/1/content", {"n": "1"})[0] == 200
        # Then the maps have them beside the tasks' keys, read over HTTP and by the driver
        status, body = api.call("GET", f"{base}/content")
        assert (status, body["content"]) == (200, {"written_by": "extract", "owner": "ops"})
        status, body = api.call("GET", f"{base}/jobs/extract/tasks/1/content")
        assert body["content"] == {"task": "1", "n": "1"}
        assert driver.get_job_user_content_map("uc", "extract") == {
            "job": "extract",
            "checked": "yes",
        }
        # and a value that is not a string is refused naming it; a missing task is 404
        status, err = api.call("POST", f"{base}/content", {"n": 1})
        assert (status, err["field"]) == (400, "content.n")
        assert api.call("POST", f"{base}/jobs/extract/tasks/9/content", {"a": "b"})[0] == 404
        # and the last scheduled task is one of the job's
        status, body = api.call("GET", f"{base}/last-scheduled-task")
        assert status == 200 and body["task"]["job"] == "extract"
        assert body["task"]["state"] == "COMPLETED"
        # When an instance's target thread pool size is set, Then it is read back
        inst = cluster.instances[0]
        assert api.call("POST", f"/api/v1/instances/{inst}/thread-pool", {"size": 7})[0] == 200
        status, body = api.call("GET", f"/api/v1/instances/{inst}/thread-pool")
        assert body == {"instance": inst, "target": 7, "current": 40}
        assert driver.get_target_task_thread_pool_size(inst) == 7
        status, err = api.call("POST", f"/api/v1/instances/{inst}/thread-pool", {"size": 500})
        assert (status, err["field"]) == (400, "size")
        assert api.call("POST", f"/api/v1/instances/{inst}/thread-pool", {"size": None})[0] == 200
        assert driver.get_target_task_thread_pool_size(inst) is None
        # and a YAML body with a key that is not a string is refused naming the map
        status, err = api.call("POST", f"{base}/content", b"1: a\n", "application/yaml")
        assert (status, err["code"]) == (400, "INVALID_CONFIG") and err["field"] == "content.1"


def test_tasks_tags_partitions_configs_and_settings_over_http(zk_address: str) -> None:
    with LocalCluster(
        participants=1, zk=zk_address, controller_args=["--http-port", "0"]
    ) as cluster:
        api, driver = Client(http_url(cluster)), cluster.driver
        # Given a running job of one long task
        wf = {
            "name": "dyn",
            "jobs": {
                "j": {
                    "command": "Sleep",
                    "tasks": [{"id": "a", "config": {"seconds": "60"}}],
                    "num_concurrent_tasks_per_instance": 4,
                }
            },
        }
        assert api.call("POST", "/api/v1/workflows", wf)[0] == 201
        # When a short task is added and the long one deleted over HTTP
        short = {"id": "b", "config": {"seconds": "0.1"}}
        status, body = api.call("POST", "/api/v1/workflows/dyn/jobs/j/tasks", short)
        assert (status, body["task"]) == (201, "b")
        assert api.call("DELETE", "/api/v1/workflows/dyn/jobs/j/tasks/a")[0] == 200
        # Then the job runs only the added task to the end
        driver.poll_for_workflow_state("dyn", TaskState.COMPLETED, timeout=WAIT)
        assert [t.id for t in driver.get_job_config("dyn", "j").tasks] == ["b"]
        # and the rules still hold, named: a task id taken, a command on both job and task
        assert api.call("POST", "/api/v1/workflows/dyn/jobs/j/tasks", {"id": "b"})[0] in (
            400,
            409,
        )
        # When a queue's config is replaced, Then it applies
        assert api.call("POST", "/api/v1/queues", {"name": "q", "jobs": {}})[0] == 201
        assert api.call("POST", "/api/v1/workflows/q/config", {"parallel_jobs": 3})[0] == 200
        assert driver.get_workflow_config("q").parallel_jobs == 3
        status, err = api.call("POST", "/api/v1/workflows/dyn/config", {"parallel_jobs": 3})
        assert (status, err["field"]) == (400, "workflow")  # a finished plain workflow
        # When an instance is retagged and given a partition record, Then the cluster has them
        inst = cluster.instances[0]
        assert api.call("POST", f"/api/v1/instances/{inst}/tags", ["gpu", "ssd"])[0] == 200
        assert sorted(driver.get_instances()[inst]["tags"]) == ["gpu", "ssd"]
        status, err = api.call("POST", f"/api/v1/instances/{inst}/tags", [1])
        assert (status, err["field"]) == (400, "tags")
        path = f"/api/v1/instances/{inst}/partitions/db/p0"
        assert api.call("POST", path, {"state": "LEADER"})[0] == 200
        status, body = api.call("GET", f"/api/v1/instances/{inst}/partitions")
        assert body["partitions"] == {"db": {"p0": "LEADER"}}
        assert driver.get_partitions(inst) == {inst: {"db": {"p0": "LEADER"}}}
        assert api.call("DELETE", path)[0] == 200
        assert api.call("DELETE", path)[0] == 404
        # When cluster settings are set, Then they are merged; a bad one is named
        assert api.call("POST", "/api/v1/cluster/config", {"lock_audit_keep": 7})[0] == 200
        assert driver.get_cluster_config()["lock_audit_keep"] == 7
        status, err = api.call("POST", "/api/v1/cluster/config", {"nope": 1})
        assert (status, err["field"]) == (400, "cluster_config.nope")


def test_an_open_loopback_api_answers_only_loopback_host_names(zk_address: str) -> None:
    with LocalCluster(
        participants=0, zk=zk_address, controller_args=["--http-port", "0"]
    ) as cluster:
        api = Client(http_url(cluster))
        port = api.base.rsplit(":", 1)[1]
        # Given an API without a token on loopback: loopback names are answered
        for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
            assert api.call("GET", "/api/v1/workflows", headers={"Host": host})[0] == 200
        # When a page whose DNS name was rebound to 127.0.0.1 calls it (same origin to
        # the browser: Origin and Host both name the page)
        rebound = {"Host": f"evil.example:{port}", "Origin": f"http://evil.example:{port}"}
        # Then neither a read nor a mutation is answered
        status, err = api.call("GET", "/api/v1/workflows", headers=rebound)
        assert (status, err["code"], err["field"]) == (403, "FORBIDDEN", "Host")
        status, _ = api.call("POST", "/api/v1/workflows", sleepy("rebound"), headers=rebound)
        assert status == 403
        assert cluster.driver.get_workflows() == {}


def test_a_token_guards_every_api_route_but_not_the_page_or_the_document(
    zk_address: str,
) -> None:
    with LocalCluster(
        participants=0,
        zk=zk_address,
        extra_args=["--token", TOKEN],
        controller_args=["--http-port", "0"],
        driver_options={"token": TOKEN},
    ) as cluster:
        base = http_url(cluster)
        # Given a controller with a token, When the API is called without it or with another
        for client in (Client(base), Client(base, token="wrong")):
            status, body = client.call("GET", "/api/v1/workflows")
            # Then it is refused 401, naming the header
            assert (status, body["code"], body["field"]) == (
                401,
                "UNAUTHENTICATED",
                "Authorization",
            )
            assert client.call("POST", "/api/v1/workflows", sleepy("x"))[0] == 401
            assert client.call("GET", "/api/overview")[0] == 401
        # And with the token it answers, mutations included
        good = Client(base, token=TOKEN)
        assert good.call("GET", "/api/v1/workflows") == (200, {"workflows": []})
        assert good.call("POST", "/api/v1/workflows", sleepy("x", "0"))[0] == 201
        assert "x" in cluster.driver.get_workflows()
        # And the page and the OpenAPI document stay open (the page asks for the token)
        with urllib.request.urlopen(base + "/", timeout=WAIT) as page:
            assert b'id="login"' in page.read()
        with urllib.request.urlopen(base + "/openapi.json", timeout=WAIT) as doc:
            assert json.loads(doc.read())["paths"]["/api/v1/workflows"]["get"]["security"]


def test_a_standby_serves_reads_and_forwards_mutations_to_the_leader(zk_address: str) -> None:
    with LocalCluster(
        participants=1,
        zk=zk_address,
        controllers=2,
        extra_args=["--token", TOKEN],
        controller_args=["--http-port", "0"],
        driver_options={"token": TOKEN},
    ) as cluster:
        leader = cluster.leader()
        standby = next(c for c in ("controller-0", "controller-1") if c != leader)
        api = Client(http_url(cluster, standby), token=TOKEN)
        # Given the standby's HTTP API, When a workflow is started through it
        status, body = api.call("POST", "/api/v1/workflows", sleepy("fwd", "0"))
        # Then the leader applied it, and the standby reads it back
        assert (status, body["name"]) == (201, "fwd")
        assert cluster.driver.poll_for_workflow_state("fwd", TaskState.COMPLETED, timeout=WAIT)
        assert api.call("GET", "/api/v1/workflows/fwd")[1]["state"] == "COMPLETED"
        assert api.call("GET", "/api/v1/cluster")[1]["leader"]["id"] == leader
        # And refusals travel back from the leader as they are
        assert api.call("POST", "/api/v1/workflows", sleepy("fwd"))[0] == 409
        # And a retried request with the same Idempotency-Key is applied once
        key = {"Idempotency-Key": "enq-1"}
        assert api.call("POST", "/api/v1/queues", {"name": "q", "jobs": {}})[0] == 201
        job = {"j": {"command": "Noop", "num_tasks": 1}}
        assert api.call("POST", "/api/v1/queues/q/jobs", job, headers=key)[0] == 200
        assert api.call("POST", "/api/v1/queues/q/jobs", job, headers=key)[0] == 200
        assert api.call("GET", "/api/v1/queues/q")[1]["queue"] == ["j"]
        # And the same key on another operation is that operation's own: it is applied
        assert api.call("POST", "/api/v1/workflows", sleepy("keyed", "0"), headers=key)[0] == 201
        assert api.call("GET", "/api/v1/workflows/keyed")[0] == 200


def test_a_mutation_sent_to_a_standby_while_the_leader_dies_is_applied_by_the_next(
    zk_address: str,
) -> None:
    with LocalCluster(
        participants=1, zk=zk_address, controllers=2, controller_args=["--http-port", "0"]
    ) as cluster:
        leader = cluster.leader()
        standby = next(c for c in ("controller-0", "controller-1") if c != leader)
        api = Client(http_url(cluster, standby))
        # Given the leader is killed (its LEADER node lasts until its session expires)
        cluster.kill_controller()
        # When a workflow is started through the standby at once
        status, body = api.call("POST", "/api/v1/workflows", sleepy("late", "0"))
        # Then it is applied once the standby leads, and the standby says it leads
        assert status == 201, body
        assert cluster.wait_for_leader(exclude=leader) == standby
        assert cluster.driver.poll_for_workflow_state("late", TaskState.COMPLETED, timeout=WAIT)
        assert api.call("GET", "/api/v1/cluster")[1]["leader"]["id"] == standby


def test_every_documented_operation_is_routed(zk_address: str) -> None:
    with LocalCluster(
        participants=0, zk=zk_address, controller_args=["--http-port", "0"]
    ) as cluster:
        api = Client(http_url(cluster))
        # Given the OpenAPI document the controller serves
        status, doc = api.call("GET", "/openapi.json")
        assert status == 200 and doc["openapi"].startswith("3.")
        assert len(doc["paths"]) >= 25
        # When each documented operation is called with placeholder parameters
        for pattern, ops in doc["paths"].items():
            path = re.sub(r"\{[^}]+\}", "x", pattern)
            for method, op in ops.items():
                body = b"{}" if "requestBody" in op else None
                status, answer = api.call(method.upper(), path, body)
                # Then it reached its route: never "no such route" or "method not allowed",
                # and never an unhandled failure
                assert answer is not None, (method, pattern)
                assert answer.get("code") not in ("NO_SUCH_ROUTE", "METHOD_NOT_ALLOWED"), (
                    method,
                    pattern,
                    answer,
                )
                assert status < 500 or status == 503, (method, pattern, answer)
                assert str(status) in op["responses"], (method, pattern, status)


def test_without_a_token_a_reachable_address_is_refused_unless_insecure(
    zk_address: str, tmp_path: Path
) -> None:
    # Given no token, When a controller is told to serve HTTP on every address
    cli = [sys.executable, "-m", "helixpy.cli", "--zk", zk_address, "--cluster", "refused"]
    run = subprocess.run(
        [*cli, "controller", "--http-port", "0", "--http-host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env={k: v for k, v in os.environ.items() if k != "HELIXPY_TOKEN"},
        cwd=tmp_path,
    )
    # Then it refuses to start, naming the option and the way out
    assert run.returncode == 2, run.stderr
    assert "--http-host" in run.stderr and "--http-insecure" in run.stderr


@pytest.fixture()
def pki(tmp_path: Path) -> Path:
    pytest.importorskip("cryptography.x509")
    from tests.integration.test_grpc_security import _cert

    ca = _cert(tmp_path, "ca", None, ca=True)
    _cert(tmp_path, "server", ca)
    _cert(tmp_path, "client", ca)
    return tmp_path


def _tls_cluster(zk_address: str, pki: Path, *, forward_tls: bool) -> LocalCluster:
    p = str(pki)
    client = ["--tls-ca", f"{p}/ca.pem", "--tls-client-cert", f"{p}/client.pem"]
    client += ["--tls-client-key", f"{p}/client.key"]
    return LocalCluster(
        participants=1,
        zk=zk_address,
        controllers=2,
        extra_args=["--token", TOKEN, *(client if forward_tls else [])],
        controller_args=[
            "--http-port",
            "0",
            "--tls-cert",
            f"{p}/server.pem",
            "--tls-key",
            f"{p}/server.key",
            "--tls-client-ca",
            f"{p}/ca.pem",
        ],
        driver_options={
            "token": TOKEN,
            "tls": ClientTls.from_files(f"{p}/ca.pem", f"{p}/client.pem", f"{p}/client.key"),
        },
    )


def _https_context(pki: Path, with_cert: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki / "ca.pem"))
    if with_cert:
        context.load_cert_chain(str(pki / "client.pem"), str(pki / "client.key"))
    return context


def test_with_tls_the_api_is_https_and_a_standby_forwards_over_tls(
    zk_address: str, pki: Path
) -> None:
    with _tls_cluster(zk_address, pki, forward_tls=True) as cluster:
        leader = cluster.leader()
        standby = next(c for c in ("controller-0", "controller-1") if c != leader)
        base = http_url(cluster, standby)
        # Given controllers serving mutual TLS, Then their HTTP API is HTTPS too
        assert base.startswith("https://")
        api = Client(base, token=TOKEN, context=_https_context(pki))
        # When a workflow is started through the standby (which has client TLS settings)
        status, body = api.call("POST", "/api/v1/workflows", sleepy("tls", "0"))
        # Then the leader applied it
        assert status == 201, body
        assert cluster.driver.poll_for_workflow_state("tls", TaskState.COMPLETED, timeout=WAIT)
        # And a client without a certificate gets no connection at all
        bare = Client(base, token=TOKEN, context=_https_context(pki, with_cert=False))
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            bare.call("GET", "/api/v1/workflows")


def test_with_tls_and_no_client_settings_a_standby_refuses_naming_the_leader(
    zk_address: str, pki: Path
) -> None:
    with _tls_cluster(zk_address, pki, forward_tls=False) as cluster:
        leader = cluster.leader()
        standby = next(c for c in ("controller-0", "controller-1") if c != leader)
        api = Client(http_url(cluster, standby), token=TOKEN, context=_https_context(pki))
        # Given a standby that cannot verify the leader, When a mutation is sent to it
        status, body = api.call("POST", "/api/v1/workflows", sleepy("nope", "0"))
        # Then it refuses 503 naming the leader and the missing option; nothing was applied
        assert (status, body["code"], body["leader"]["id"]) == (503, "UNAVAILABLE", leader)
        assert "--tls-ca" in body["message"]
        assert "nope" not in cluster.driver.get_workflows()
        # And it still serves reads, and the leader's API applies it
        assert api.call("GET", "/api/v1/workflows")[0] == 200
        direct = Client(http_url(cluster, leader), token=TOKEN, context=_https_context(pki))
        assert direct.call("POST", "/api/v1/workflows", sleepy("nope", "0"))[0] == 201
