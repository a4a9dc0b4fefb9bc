"""Shared fixtures: real services (the shared Redis cleaned, a Celery worker process, a
private redis-server), built on the helpers of ``tests/support``.

Under ``CI=true`` a test whose service is missing fails; elsewhere it is skipped with the
reason, so a laptop without Redis can still run the unit tests.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.db import connection

from tests.support.redis import PrivateRedis, fresh_coordination_state
from tests.support.services import require_service
from tests.support.workers import start_worker, stop_worker, use_broker

pytest_plugins = ["django_biginterview.testing.pytest_plugin"]


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    url = settings.REDIS_URL
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        require_service("Redis", f"{url}: {exc}")
    return url


@pytest.fixture
def clean_redis(redis_url: str) -> Iterator[None]:
    """No lock, marker or rate-limit slot of the app left in the shared Redis by another
    test, before or after this one."""
    yield from fresh_coordination_state()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the tests this environment's database or user model cannot run (the
    PostgreSQL environments run the ``postgresql`` ones): they are not collected here,
    rather than collected and skipped."""
    vendor_ok = connection.vendor == "postgresql"
    user_ok = settings.AUTH_USER_MODEL == "auth.User"
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        wanted = (vendor_ok or item.get_closest_marker("postgresql") is None) and (
            user_ok or item.get_closest_marker("auth_user") is None
        )
        (keep if wanted else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_configure(config: pytest.Config) -> None:
    # One queue per test session, so parallel runs on one Redis never take each other's
    # tasks. Set before the Celery app exists: the settings read it.
    os.environ.setdefault("BI_TEST_QUEUE", f"bi-test-{uuid.uuid4().hex[:12]}")
    import tests.celery_app  # noqa: F401  (the current Celery app of the test process)


@pytest.fixture(scope="session")
def celery_app() -> Any:
    """The Celery app of the test process (the producer side of the worker tests)."""
    from tests.celery_app import app

    # pytest-django may load the settings before ``pytest_configure`` sets BI_TEST_QUEUE,
    # so route this session's messages to the queue its workers consume explicitly.
    app.conf.task_default_queue = os.environ["BI_TEST_QUEUE"]
    return app


@pytest.fixture(scope="session")
def celery_queue() -> str:
    return os.environ["BI_TEST_QUEUE"]


@pytest.fixture
def celery_worker_process(
    transactional_db: None, redis_url: str, celery_app: Any, celery_queue: str, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``celery worker`` process consuming the real Redis broker (``redis_url``).

    It opens the test database this test created (``BI_WORKER_DB_NAME``), so tests using it
    need ``transactional_db`` (committed data), which this fixture requests. Tasks sent by
    the test process go to this session's queue, which only this worker consumes. Its log
    is ``tmp_path / "worker.log"``.
    """
    process = start_worker(celery_app, celery_queue, tmp_path / "worker.log", redis_url=redis_url)
    try:
        yield process
    finally:
        stop_worker(process)
        connection.close()


# --- Private redis-server (webhook broker-outage tests, drills, anonymous quotas) ------


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        require_service("redis-server", "the binary is not on PATH")
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def private_broker(private_redis: PrivateRedis, celery_app: Any) -> Iterator[PrivateRedis]:
    """The test process's Celery producers use the private Redis for this test only.

    To run a worker on it too, override ``redis_url`` with ``private_broker.url`` in the
    test's class or module; ``celery_worker_process`` passes that URL to the worker.
    """
    previous = celery_app.conf.broker_url
    use_broker(celery_app, private_redis.url)
    try:
        yield private_redis
    finally:
        use_broker(celery_app, previous)
