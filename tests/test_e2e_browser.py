"""End to end in a real browser: the demo (portal + sandbox + Celery worker) driven by
headless Chromium.

Log into the portal → click "Practice interviews" → land logged in on the sandbox's
dashboard as that same user → start and complete an interview there → back in the
portal the interview shows as completed (webhook + worker) → mark a track step done
there, which sends no webhook → it shows in the portal within two minutes of viewing
(fresh progress) → the admin lists the interview; its status page and accounts list
render.

Screenshots of the portal, the sandbox's dashboard, the status page and the accounts
list go to ``test-results/e2e/`` (or ``BI_E2E_OUTPUT``) for a reviewer to look at.

The demo runs exactly as a partner starts it (``example_project/demo.py``), only with
free ports, a temporary data folder and fast webhook retries.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.urls import reverse

from tests.support.paths import ROOT
from tests.support.procfile import free_port
from tests.support.services import require_service

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
SCREENSHOTS = Path(os.environ.get("BI_E2E_OUTPUT", ROOT / "test-results" / "e2e"))
#: How long a step done on Big Interview may take to show in the portal while the user
#: keeps viewing it (issue #17's target: two minutes; PROGRESS_MAX_AGE is one).
FRESHNESS_TIMEOUT = 120.0
DEMO_USER = ("demo", "demo-password-1")
ADMIN_USER = ("admin", "admin-password-1")


@dataclass
class Demo:
    portal_url: str
    sandbox_url: str
    logs: Path


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    port, sandbox_port = free_port(), free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if key not in ("DJANGO_SETTINGS_MODULE", "DATABASE_URL", "CELERY_BROKER_URL")
    }
    env["PYTHONPATH"] = str(ROOT)
    output = (tmp_path / "demo.out").open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "example_project" / "demo.py"),
            "--no-install",
            "--port",
            str(port),
            "--sandbox-port",
            str(sandbox_port),
            "--data-dir",
            str(tmp_path / "demo"),
            "--webhook-retry-delay",
            "0.5",
        ],
        env=env,
        stdout=output,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    demo = Demo(
        f"http://127.0.0.1:{port}", f"http://127.0.0.1:{sandbox_port}", tmp_path / "demo" / "logs"
    )

    def describe() -> str:
        text = (tmp_path / "demo.out").read_text(errors="replace")
        for log in sorted(demo.logs.glob("*.log")) if demo.logs.exists() else []:
            text += f"\n--- {log.name} ---\n" + log.read_text(errors="replace")[-4000:]
        return text

    deadline = time.monotonic() + 90
    while "The portal is running" not in (tmp_path / "demo.out").read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            os.killpg(process.pid, signal.SIGTERM)
            pytest.fail(f"The demo did not start:\n{describe()}")
        time.sleep(0.3)
    try:
        yield demo
    except BaseException:
        print(describe())
        raise
    finally:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
        output.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        require_service("Chromium", f"{CHROMIUM} is not installed (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


def log_in(page, portal_url: str, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    page.goto(f"{portal_url}/login/")
    page.fill("input[name=username]", username)
    page.fill("input[name=password]", password)
    page.click("#login-submit")
    page.wait_for_load_state()


def screenshot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def me(context, portal_url: str) -> dict:  # type: ignore[no-untyped-def]
    answer = context.request.get(f"{portal_url}/biginterview/api/me/")
    assert answer.ok, answer.text()
    return dict(json.loads(answer.text()))


def wait_for_quiet_sync(context, portal_url: str) -> None:  # type: ignore[no-untyped-def]
    """Until the account has been synced and no sync has landed for 3 s: the syncs the
    interview's webhook asked for are over, so what comes next is fresh progress alone."""
    deadline = time.monotonic() + 60
    last = me(context, portal_url)["last_synced_at"]
    quiet_since = time.monotonic()
    while time.monotonic() < deadline:
        time.sleep(0.5)
        now = me(context, portal_url)["last_synced_at"]
        if now != last:
            last, quiet_since = now, time.monotonic()
        elif last and time.monotonic() - quiet_since >= 3:
            return
    pytest.fail("the account was never synced quietly")


def test_practice_interview_round_trip(demo: Demo, browser) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)

    log_in(page, demo.portal_url, *DEMO_USER)
    assert page.url.rstrip("/") == demo.portal_url, page.content()

    page.click("#practice-link")
    page.wait_for_url(f"{demo.sandbox_url}/members/dashboard**")
    partner_id_shown = page.inner_text("#member-partner-id").strip()
    screenshot(page, "sandbox-dashboard")

    # The portal's own API says which Big Interview account this portal user has.
    assert me(context, demo.portal_url)["partner_id"] == partner_id_shown

    page.click("#start-interview")
    page.wait_for_load_state()
    page.click(".complete-interview")
    page.wait_for_load_state()

    page.goto(f"{demo.portal_url}/")
    deadline = time.monotonic() + 30
    status = ""
    while time.monotonic() < deadline:
        statuses = page.locator("#interviews .interview-status").all_inner_texts()
        status = statuses[0].strip() if statuses else ""
        if status == "completed":
            break
        time.sleep(0.5)
        page.reload()
    assert status == "completed", page.content()
    title = page.inner_text("#interviews .interview-title").strip()

    # Fresh progress: a step marked done on Big Interview sends no webhook at all.
    wait_for_quiet_sync(context, demo.portal_url)
    page.reload()
    done_before = page.locator(".biginterview-step-completed").count()
    page.goto(f"{demo.sandbox_url}/members/dashboard")
    page.locator(".complete-step").first.click()
    page.wait_for_load_state()
    page.goto(f"{demo.portal_url}/")
    viewed = time.monotonic()
    while page.locator(".biginterview-step-completed").count() <= done_before:
        assert time.monotonic() - viewed < FRESHNESS_TIMEOUT, page.content()
        time.sleep(2)
        page.reload()
    print(f"fresh progress: the step showed {time.monotonic() - viewed:.1f} s after the view")
    steps = [step for track in me(context, demo.portal_url)["tracks"] for step in track["steps"]]
    assert sum(step["completed"] for step in steps) == done_before + 1
    screenshot(page, "portal")
    context.close()

    admin = browser.new_context()
    admin_page = admin.new_page()
    log_in(admin_page, demo.portal_url, *ADMIN_USER)
    admin_page.goto(f"{demo.portal_url}/admin/biginterview/interview/")
    assert title in admin_page.inner_text("#result_list")
    assert partner_id_shown in admin_page.content()

    admin_page.goto(f"{demo.portal_url}{reverse('admin:biginterview_account_changelist')}")
    assert partner_id_shown in admin_page.inner_text("#result_list")
    screenshot(admin_page, "admin-accounts")
    admin_page.goto(f"{demo.portal_url}{reverse('admin:biginterview_status')}")
    assert admin_page.locator("h1").first.inner_text().strip()
    screenshot(admin_page, "admin-status")
    admin.close()
