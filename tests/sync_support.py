"""Shared helpers of the sync, API and admin tests (not a test module)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from django_biginterview.client import BigInterviewClient
from django_biginterview.coordination import KEY_PREFIX, _redis_for, redis_client
from django_biginterview.models import Account
from django_biginterview.sandbox import Sandbox
from django_biginterview.testing.factories import AccountFactory

ROOT = Path(__file__).resolve().parent.parent


def clear_coordination_keys() -> None:
    """Forget every lock, marker and rate-limit slot of the test Redis database."""
    client = redis_client()
    if client is None:
        return
    keys = list(client.scan_iter(match=f"{KEY_PREFIX}*", count=500))
    if keys:
        client.delete(*keys)


def fresh_coordination_state() -> Iterator[None]:
    """Body of a ``clean_redis`` fixture: no leftover lock or marker, before and after."""
    _redis_for.cache_clear()
    clear_coordination_keys()
    yield
    clear_coordination_keys()


def sandbox_client(sandbox: Sandbox, **options: Any) -> BigInterviewClient:
    """A client for the sandbox (fast retries, as in the test settings)."""
    options.setdefault("max_retries", 2)
    options.setdefault("backoff", 0.01)
    options.setdefault("backoff_max", 0.2)
    return BigInterviewClient(base_url=sandbox.url, api_key=sandbox.api_key, **options)


def remote_account(sandbox: Sandbox, partner_id: str, interviews: int = 0, **kw: Any) -> Account:
    """A local account whose user exists in the sandbox with ``interviews`` interviews."""
    sandbox.create_user(partner_id)
    for n in range(interviews):
        sandbox.start_interview(partner_id, title=f"Interview {n}")
    return AccountFactory(partner_id=partner_id, **kw)


def start_extra_worker(celery_app: Any, queue: str, name: str, log_path: Path) -> Any:
    """Another real Celery worker process on ``queue`` (same environment as the
    ``celery_worker_process`` fixture's), for tests that need two processes."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings"),
        "BI_WORKER_DB_NAME": str(connection.settings_dict["NAME"]),
        "BI_TEST_REDIS_URL": settings.REDIS_URL,
        "BI_TEST_QUEUE": queue,
        "BI_TEST_BIGINTERVIEW": json.dumps(
            settings.BIGINTERVIEW,
            default=lambda v: v.total_seconds() if isinstance(v, timedelta) else str(v),
        ),
        "PYTHONPATH": str(ROOT),
    }
    node = f"{name}-{queue}@{os.uname().nodename}"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "tests.celery_app", "worker", "--pool=solo",
         "-Q", queue, "--without-gossip", "--without-mingle", "--without-heartbeat",
         "-l", "INFO", "-n", node],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Celery worker exited early:\n{log_path.read_text()}")
        if celery_app.control.ping(destination=[node], timeout=0.5):
            return process
    process.terminate()
    pytest.fail(f"Celery worker did not start:\n{log_path.read_text()}")


def stop_worker(process: Any) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
