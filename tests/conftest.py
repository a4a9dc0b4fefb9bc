"""Shared fixtures: real services (Redis, a Celery worker process), factories, clients.

Under ``CI=true`` a test whose service is missing fails; elsewhere it is skipped with the
reason, so a laptop without Redis can still run the unit tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connection

from django_biginterview.client import _cached_client

ROOT = Path(__file__).resolve().parent.parent

pytest_plugins = ["django_biginterview.testing.pytest_plugin"]


def require_service(name: str, reason: str) -> None:
    """Fail under CI, skip elsewhere: a missing service must never turn CI green."""
    message = f"{name} is not available: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(autouse=True)
def _fresh_client_cache() -> Iterator[None]:
    """``get_client()`` caches per settings; tests that override settings start clean."""
    _cached_client.cache_clear()
    yield
    _cached_client.cache_clear()


@pytest.fixture(scope="session")
def redis_url() -> str:
    import redis

    url = settings.REDIS_URL
    try:
        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except redis.RedisError as exc:
        require_service("Redis", f"{url}: {exc}")
    return url


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Leave out the tests this environment's database or user model cannot run (the
    PostgreSQL environments run the ``postgresql`` ones): they are not collected here,
    rather than collected and skipped."""
    vendor_ok = connection.vendor == "postgresql"
    user_ok = settings.AUTH_USER_MODEL == "auth.User"
    keep, drop = [], []
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
def celery_app():  # type: ignore[no-untyped-def]
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
    transactional_db: None, redis_url: str, celery_app, celery_queue: str, tmp_path: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``celery worker`` process consuming the real Redis broker.

    It opens the test database this test created (``BI_WORKER_DB_NAME``), so tests using it
    need ``transactional_db`` (committed data), which this fixture requests. Tasks sent by
    the test process go to this session's queue, which only this worker consumes.
    """
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "tests.settings"),
        "BI_WORKER_DB_NAME": str(connection.settings_dict["NAME"]),
        "BI_TEST_REDIS_URL": redis_url,
        "BI_TEST_QUEUE": celery_queue,
        # The test's BIGINTERVIEW (sandbox URL, ...): request the sandbox fixture first.
        "BI_TEST_BIGINTERVIEW": json.dumps(
            getattr(settings, "BIGINTERVIEW", {}),
            default=lambda v: v.total_seconds() if isinstance(v, timedelta) else str(v),
        ),
        "PYTHONPATH": str(ROOT),
    }
    log_path = tmp_path / "worker.log"
    log = log_path.open("wb")
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "tests.celery_app",
            "worker",
            "--pool=solo",
            "-Q",
            celery_queue,
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "-l",
            "INFO",
            "-n",
            f"{celery_queue}@%h",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Celery worker exited early:\n{log_path.read_text()}")
        replies = celery_app.control.ping(
            destination=[f"{celery_queue}@{os.uname().nodename}"], timeout=0.5
        )
        if replies:
            break
    else:
        process.terminate()
        pytest.fail(f"Celery worker did not start:\n{log_path.read_text()}")
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()
        connection.close()


def wait_for(predicate, timeout: float = 15.0, interval: float = 0.1):  # type: ignore[no-untyped-def]
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# --- Private redis-server (webhook broker-outage tests) --------------------------------
# A Redis of the test's own, on a free port, which the test may kill and restart. Never
# the shared one on 6379: other test runs on this machine use it.


class PrivateRedis:
    """A ``redis-server`` subprocess on a free loopback port, without persistence."""

    def __init__(self, workdir: Path) -> None:
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        import redis

        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        client = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        if not wait_for(lambda: _pings(client), timeout=10, interval=0.05):
            self.kill()
            pytest.fail(f"private redis-server did not start on port {self.port}")

    def kill(self) -> None:
        """SIGKILL: the broker vanishes mid-flight, as in a crash."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


def _pings(client) -> bool:  # type: ignore[no-untyped-def]
    import redis

    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def _use_broker(app, url: str) -> None:  # type: ignore[no-untyped-def]
    """Point a Celery app's producers at ``url``, dropping pooled connections."""
    app.conf.broker_url = url
    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    if "amqp" in app.__dict__:
        app.amqp._producer_pool = None


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[PrivateRedis]:
    import shutil

    if shutil.which("redis-server") is None:
        require_service("redis-server", "the binary is not on PATH")
    server = PrivateRedis(tmp_path)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture
def private_broker(private_redis: PrivateRedis, celery_app) -> Iterator[PrivateRedis]:  # type: ignore[no-untyped-def]
    """The test process's Celery producers use the private Redis for this test only.

    To run a worker on it too, override ``redis_url`` with ``private_broker.url`` in the
    test's class or module; ``celery_worker_process`` passes that URL to the worker.
    """
    previous = celery_app.conf.broker_url
    _use_broker(celery_app, private_redis.url)
    try:
        yield private_redis
    finally:
        _use_broker(celery_app, previous)
