"""Real Celery worker processes for the tests, and which broker the test process's
producers use.

A worker opens the test database this test created (``BI_WORKER_DB_NAME``), so a test
that runs one needs committed data (``transactional_db``). It consumes only the queue it
is given (one per test session: parallel runs on one Redis never take each other's
tasks) and gets the test's ``BIGINTERVIEW`` (the sandbox URL, ...) as it is when the
worker starts: request the sandbox fixture first.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import kombu.pools
import pytest
from django.conf import settings
from django.db import connection

from tests.support.paths import ROOT

#: How long a worker may take to answer its first ping.
START_TIMEOUT = 30.0


def _json_value(value: Any) -> Any:
    return value.total_seconds() if isinstance(value, timedelta) else str(value)


def worker_environment(queue: str, redis_url: str) -> dict[str, str]:
    """The environment of a worker process: this process's, plus the test database,
    the broker, the queue and the test's ``BIGINTERVIEW`` (read by ``tests.settings``)."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings"),
        "BI_WORKER_DB_NAME": str(connection.settings_dict["NAME"]),
        "BI_TEST_REDIS_URL": redis_url,
        "BI_TEST_QUEUE": queue,
        "BI_TEST_BIGINTERVIEW": json.dumps(
            getattr(settings, "BIGINTERVIEW", {}), default=_json_value
        ),
        "PYTHONPATH": str(ROOT),
    }


def start_worker(
    celery_app: Any,
    queue: str,
    log_path: Path,
    *,
    name: str = "",
    redis_url: str | None = None,
    also_consumes: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """A ``celery worker`` process (solo pool) of ``tests.celery_app`` consuming ``queue``
    (and ``also_consumes``) on ``redis_url`` (default: the settings' ``REDIS_URL``), its
    output in ``log_path``.

    Returns once the worker answers a ping; fails the test with the log if it exits or
    does not answer within :data:`START_TIMEOUT`. ``name`` tells two workers apart.
    """
    node = f"{f'{name}-' if name else ''}{queue}@{os.uname().nodename}"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker",
             "--pool=solo", "-Q", ",".join([queue, *also_consumes]), "--without-gossip",
             "--without-mingle", "--without-heartbeat", "-l", "INFO", "-n", node],
            cwd=ROOT,
            env=worker_environment(queue, redis_url or settings.REDIS_URL),
            stdout=log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Celery worker exited early:\n{log_path.read_text()}")
        if celery_app.control.ping(destination=[node], timeout=0.5):
            return process
    stop_worker(process)
    pytest.fail(f"Celery worker did not start:\n{log_path.read_text()}")


def stop_worker(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM (a warm shutdown); SIGKILL if it takes more than 15 s."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


def use_broker(app: Any, url: str) -> None:
    """Point a Celery app's producers at ``url``, dropping pooled connections.

    The app's pools are kombu's global ones, one per broker URL: they are closed and
    forgotten, so switching back to a URL makes a new pool instead of finding the closed
    one (which made the next ``control.ping`` fail with "Acquire on closed pool").
    """
    app.conf.broker_url = url
    kombu.pools.reset()
    app._pool = None
    if "amqp" in app.__dict__:
        app.amqp._producer_pool = None
