"""The controller's web dashboard, end to end in headless Chromium (Playwright).

Needs Debian's ``chromium`` and the ``playwright`` package (``make test`` installs both);
without them these tests skip with the reason, except under ``CI=true``, where they fail.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import Any

import pytest

from helixpy import JobConfig, TaskState, Workflow
from helixpy.testing import LocalCluster
from tests.integration.helpers import dashboard_url

CHROMIUM = os.environ.get("HELIXPY_CHROMIUM") or shutil.which("chromium")
try:
    from playwright.sync_api import Page, sync_playwright
except ImportError as exc:  # the test extra is not installed
    _problem: str | None = f"playwright is not installed: {exc}"
else:
    _problem = None if CHROMIUM else "no chromium executable (apt-get install chromium)"
if _problem is not None and os.environ.get("CI") == "true":
    raise RuntimeError(f"CI=true requires the dashboard tests to run: {_problem}")
pytestmark = [pytest.mark.cluster, pytest.mark.skipif(_problem is not None, reason=str(_problem))]
WAIT_MS = 30_000


@pytest.fixture
def page() -> Iterator[Page]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            yield browser.new_page(viewport={"width": 1280, "height": 900})
        finally:
            browser.close()


def diamond(seconds: str) -> Workflow:
    b = Workflow.builder("dash")
    for name in "abcd":
        b.add_job(
            name, JobConfig(command="Sleep", num_tasks=2, command_config={"seconds": seconds})
        )
    for parent, child in (("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")):
        b.add_parent_child_dependency(parent, child)
    return b.build()


def job_states(page: Page) -> dict[str, Any]:
    return dict(
        page.eval_on_selector_all(
            "svg#dag g.job", "gs => gs.map(g => [g.dataset.job, g.dataset.state])"
        )
    )


def test_the_dag_renders_and_a_state_change_appears_without_reload(
    zk_address: str, page: Page
) -> None:
    with LocalCluster(
        participants=2, zk=zk_address, controller_args=["--http-port", "0"]
    ) as cluster:
        url = dashboard_url(cluster)
        # Given a running diamond workflow a -> (b, c) -> d whose first job sleeps
        cluster.driver.start(diamond("60"))
        # When its page is open
        page.goto(f"{url}/#/workflow/dash")
        page.wait_for_selector(
            'svg#dag g.job[data-job="a"][data-state="IN_PROGRESS"]', timeout=WAIT_MS
        )
        # Then the DAG is drawn: four jobs, four edges, a running and the rest waiting
        assert job_states(page) == {
            "a": "IN_PROGRESS",
            "b": "NOT_STARTED",
            "c": "NOT_STARTED",
            "d": "NOT_STARTED",
        }
        assert page.locator("svg#dag line.edge").count() == 4
        dag = page.locator("svg#dag")
        box = dag.bounding_box()
        assert box is not None and box["width"] > 400 and box["height"] > 80
        before = dag.screenshot()
        # When the workflow is stopped behind the page's back
        cluster.driver.stop("dash")
        # Then the page shows it without a reload, and the drawing changed with it
        page.wait_for_selector('#wf-state[data-state="STOPPED"]', timeout=WAIT_MS)
        page.wait_for_selector('svg#dag g.job[data-job="a"][data-state="STOPPED"]', timeout=WAIT_MS)
        assert dag.screenshot() != before
        assert page.evaluate("performance.getEntriesByType('navigation').length") == 1


def test_the_front_page_lists_workflows_and_instances_and_links_to_a_workflow(
    zk_address: str, page: Page
) -> None:
    with LocalCluster(
        participants=2, zk=zk_address, controller_args=["--http-port", "0"]
    ) as cluster:
        url = dashboard_url(cluster)
        cluster.driver.start(diamond("0"))
        assert (
            cluster.driver.poll_for_workflow_state("dash", TaskState.COMPLETED, timeout=60)
            is TaskState.COMPLETED
        )
        page.goto(f"{url}/#/")
        row = page.wait_for_selector('tr[data-workflow="dash"]', timeout=WAIT_MS)
        assert row is not None and "COMPLETED" in row.inner_text()
        for inst in cluster.instances:
            cells = page.locator(f'tr[data-instance="{inst}"] td').all_inner_texts()
            assert cells[:4] == [inst, "live", "enabled", "40"]
        page.click('tr[data-workflow="dash"] a')
        page.wait_for_selector(
            'svg#dag g.job[data-job="d"][data-state="COMPLETED"]', timeout=WAIT_MS
        )
        assert page.locator('table.tasks[data-job="d"] tr').count() == 3  # header + 2


def test_with_a_token_the_page_asks_for_it_keeps_it_for_the_tab_and_sends_it(
    zk_address: str, page: Page
) -> None:
    token = "dash-token"
    with LocalCluster(
        participants=1,
        zk=zk_address,
        extra_args=["--token", token],
        controller_args=["--http-port", "0"],
        driver_options={"token": token},
    ) as cluster:
        url = dashboard_url(cluster)
        cluster.driver.start(diamond("0"))
        cluster.driver.poll_for_workflow_state("dash", TaskState.COMPLETED, timeout=60)
        # Given a controller with a token, When its page is opened
        page.goto(f"{url}/#/")
        # Then it asks for the token, saying why
        page.wait_for_selector("#login", state="visible", timeout=WAIT_MS)
        assert "requires a token" in page.inner_text("#login-why")
        # When a wrong token is entered, Then it says the token was refused
        page.fill("#token", "guess")
        page.click('#login button[type="submit"]')
        page.wait_for_function(
            "document.getElementById('login-why').textContent.includes('refused')",
            timeout=WAIT_MS,
        )
        # When the right one is entered, Then the cluster shows, and the token is kept
        page.fill("#token", token)
        page.click('#login button[type="submit"]')
        page.wait_for_selector('tr[data-workflow="dash"]', timeout=WAIT_MS)
        assert page.is_hidden("#login")
        assert page.evaluate("sessionStorage.getItem('helixpy.token')") == token
        # And a reload in the same tab needs no new login
        page.reload()
        page.wait_for_selector('tr[data-workflow="dash"]', timeout=WAIT_MS)
        # And a task's result link fetches with the token and shows the JSON
        page.click('tr[data-workflow="dash"] a')
        page.wait_for_selector('table.tasks[data-job="d"] a.result', timeout=WAIT_MS)
        page.click('table.tasks[data-job="d"] a.result')
        page.wait_for_selector("#detail", state="visible", timeout=WAIT_MS)
        assert '"value"' in page.inner_text("#detail")
