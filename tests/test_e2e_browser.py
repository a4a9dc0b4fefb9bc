"""End to end in a real browser: the demo (portal + sandbox + Celery worker) driven by
headless Chromium.

Log into the portal → click "Practice interviews" → land logged in on the sandbox's
dashboard as that same user → start and complete an interview there → back in the
portal the interview shows as completed (webhook + worker) → the admin lists it.

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


def test_practice_interview_round_trip(demo: Demo, browser) -> None:  # type: ignore[no-untyped-def]
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(15_000)

    log_in(page, demo.portal_url, *DEMO_USER)
    assert page.url.rstrip("/") == demo.portal_url, page.content()

    page.click("#practice-link")
    page.wait_for_url(f"{demo.sandbox_url}/members/dashboard**")
    partner_id_shown = page.inner_text("#member-partner-id").strip()

    # The portal's own API says which Big Interview account this portal user has.
    me = context.request.get(f"{demo.portal_url}/biginterview/api/me/")
    assert me.ok, me.text()
    assert json.loads(me.text())["partner_id"] == partner_id_shown

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
    context.close()

    admin = browser.new_context()
    admin_page = admin.new_page()
    log_in(admin_page, demo.portal_url, *ADMIN_USER)
    admin_page.goto(f"{demo.portal_url}/admin/biginterview/interview/")
    assert title in admin_page.inner_text("#result_list")
    assert partner_id_shown in admin_page.content()
    admin.close()
