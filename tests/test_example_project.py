"""The example portal configures itself from environment variables with working defaults.

Its ``manage.py check`` and ``migrate`` run in a fresh process, as on a fresh machine:
none of the portal's variables is set except ``DATABASE_URL`` (a throwaway SQLite file).
"""

from __future__ import annotations

import http.client
import json
import os
import runpy
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import EXAMPLE, ROOT
from tests.support.procfile import (
    PORTAL_VARIABLES,
    free_port,
    procfile_command,
    procfile_lines,
)
from tests.support.webhooks import EXAMPLE_BODY, EXAMPLE_HEADERS, EXAMPLE_KEY


def portal_environment(tmp_path: Path, **variables: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(PORTAL_VARIABLES)}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'portal.sqlite3'}"
    env["CELERY_BROKER_FOLDER"] = str(tmp_path / "broker")
    return {**env, **variables}


def manage(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=EXAMPLE,
        env=portal_environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_example_project_checks_and_migrates_with_default_configuration(tmp_path: Path) -> None:
    checked = manage(tmp_path, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "System check identified no issues" in checked.stdout
    assert "biginterview." not in checked.stdout + checked.stderr  # the defaults are complete

    migrated = manage(tmp_path, "migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "Applying biginterview.0001_initial... OK" in migrated.stdout
    assert (tmp_path / "portal.sqlite3").stat().st_size > 0

    # Everything is applied: a second run has nothing left to do.
    again = manage(tmp_path, "migrate", "--check")
    assert again.returncode == 0, again.stdout + again.stderr


@pytest.fixture
def portal_under_gunicorn(tmp_path: Path) -> Iterator[int]:
    """The example portal served by gunicorn (a real WSGI server) on a free port."""
    migrated = manage(tmp_path, "migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    port = free_port()
    env = portal_environment(tmp_path, BIGINTERVIEW_WEBHOOK_KEYS=EXAMPLE_KEY, DJANGO_DEBUG="0")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "1",
         "example_project.wsgi:application"],
        cwd=EXAMPLE,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, "no gunicorn"
                time.sleep(0.1)
        yield port
    finally:
        server.terminate()
        server.wait(timeout=30)


def stored_notification_ids(tmp_path: Path) -> list[str]:
    with sqlite3.connect(tmp_path / "portal.sqlite3") as db:
        return [row[0] for row in db.execute("SELECT remote_id FROM biginterview_webhookevent")]


def test_gunicorn_receives_a_chunked_delivery_and_one_without_the_slash(
    tmp_path: Path, portal_under_gunicorn: int
) -> None:
    """Big Interview may stream the body (no ``Content-Length``) and a partner may register
    the URL without its trailing slash: both deliveries are stored, not lost."""
    headers = {
        name: value
        for name, value in EXAMPLE_HEADERS.items()
        if name not in ("Host", "Content-Length", "Connection")
    }
    chunked = json.loads(EXAMPLE_BODY)
    connection = http.client.HTTPConnection("127.0.0.1", portal_under_gunicorn, timeout=10)
    connection.request(
        "POST", "/biginterview/webhook/", body=iter([EXAMPLE_BODY[:50], EXAMPLE_BODY[50:]]),
        headers={**headers, "Transfer-Encoding": "chunked"}, encode_chunked=True,
    )  # fmt: skip
    answer = connection.getresponse()
    assert (answer.status, json.loads(answer.read())) == (200, {"status": "stored"})

    chunked["webhook"]["id"] = "no-slash-1"
    connection.request(
        "POST", "/biginterview/webhook", body=json.dumps(chunked).encode(), headers=headers
    )
    answer = connection.getresponse()
    assert (answer.status, json.loads(answer.read())) == (200, {"status": "stored"})
    connection.close()

    assert sorted(stored_notification_ids(tmp_path)) == ["123456789", "no-slash-1"]


def test_procfile_runs_the_portal_a_prefork_worker_on_every_queue_and_beat() -> None:
    """The Procfile is what partners, benchmarks and the fault drills run: a web server, one
    worker that consumes every queue the app uses (``celery`` and the example's
    ``INTERACTIVE_QUEUE``), and beat."""
    lines = procfile_lines()
    assert set(lines) == {"web", "worker", "beat"}

    web = procfile_command("web", {"PORT": "8123"})
    assert web[:2] == ["gunicorn", "example_project.wsgi"]
    assert "127.0.0.1:8123" in web
    assert "127.0.0.1:8000" in procfile_command("web", {})  # sh's ${PORT:-8000}

    worker = procfile_command("worker", {})
    assert worker[:4] == ["celery", "-A", "example_project", "worker"]
    assert worker[worker.index("--pool") + 1] == "prefork"
    assert worker[worker.index("-Q") + 1].split(",") == [
        "celery",
        runpy.run_path(str(EXAMPLE / "example_project" / "settings.py"))["BIGINTERVIEW"][
            "INTERACTIVE_QUEUE"
        ],
    ]

    beat = procfile_command("beat", {})
    assert beat[:4] == ["celery", "-A", "example_project", "beat"]
    schedule = EXAMPLE / beat[beat.index("--schedule") + 1]
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", str(schedule)], cwd=ROOT, check=False
    ).returncode
    assert ignored == 0, f"{schedule} is not ignored by git"
