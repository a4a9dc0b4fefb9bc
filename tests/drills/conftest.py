"""The fault drills' fixtures: the example project's Procfile processes, really started.

- ``drill_redis``: a private ``redis-server`` on a free port, the Celery broker of the
  worker, of the web server and of this process's producers (queue ``celery``, the one
  the Procfile's worker consumes), and the ``REDIS_URL`` of all of them (the "sync all"
  lock and the shared rate limit live there). A drill may kill and restart it.
- ``drill_sandbox``: the sandbox, answering every API call after 250 ms.
- ``start_process("worker")`` / ``start_process("web", PORT=...)``: the Procfile's line,
  split as sh splits it, run from ``example_project/`` with this virtualenv's ``bin``
  first on ``PATH``, against this test's PostgreSQL database (``DATABASE_URL``), with
  ``tests.drills.worker_settings`` (the example's settings plus fault injection).
- ``report``: prints a line even while output is captured, so the CI log shows how long
  each recovery took.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from django_biginterview.sandbox import Sandbox
from tests.drills.harness import API_LATENCY, QUEUE, accepts_connections
from tests.support.procfile import WORKER_READY, ProcfileProcess, portal_environment
from tests.support.redis import PrivateRedis

StartProcess = Callable[..., ProcfileProcess]


@pytest.fixture
def report(capsys: pytest.CaptureFixture[str]) -> Callable[[str], None]:
    def write(line: str) -> None:
        with capsys.disabled():
            print(f"\n[drill] {line}", flush=True)

    return write


@pytest.fixture
def drill_redis(
    private_broker: PrivateRedis, celery_app: Any, settings: Any
) -> Iterator[PrivateRedis]:
    """The private Redis as this process's broker (queue ``celery``) and ``REDIS_URL``."""
    previous = celery_app.conf.task_default_queue
    _route_to(celery_app, QUEUE)
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "REDIS_URL": private_broker.url}
    try:
        yield private_broker
    finally:
        _route_to(celery_app, previous)


def _route_to(app: Any, queue: str) -> None:
    app.conf.task_default_queue = queue
    app.amqp.__dict__.pop("default_queue", None)  # a cached property naming the old queue


@pytest.fixture
def drill_sandbox(biginterview_sandbox_factory: Any) -> Sandbox:
    sandbox: Sandbox = biginterview_sandbox_factory()
    sandbox.set_faults(latency=API_LATENCY)
    return sandbox


@pytest.fixture
def drill_environment(
    transactional_db: None, drill_redis: PrivateRedis, drill_sandbox: Sandbox
) -> dict[str, str]:
    """The environment of the Procfile's processes (``bench/procfile.py``'s: nothing of the
    developer's shell that the portal reads, this virtualenv first on ``PATH``, the
    repository on ``PYTHONPATH`` for ``tests.drills.worker_settings``): this test's
    database, broker, Redis and sandbox, and the drills' settings module."""
    if connection.vendor != "postgresql":
        pytest.skip("the drills need PostgreSQL (DJANGO_SETTINGS_MODULE=tests.settings_postgres)")
    db = connection.settings_dict
    return portal_environment(
        DJANGO_DEBUG="1",  # the example's default, which the drills have always run with
        DJANGO_SETTINGS_MODULE="tests.drills.worker_settings",
        DATABASE_URL=(
            f"postgres://{db['USER'] or 'postgres'}@{db['HOST'] or '127.0.0.1'}:"
            f"{db['PORT'] or 5432}/{db['NAME']}"
        ),
        CELERY_BROKER_URL=drill_redis.url,
        REDIS_URL=drill_redis.url,
        BIGINTERVIEW_BASE_URL=drill_sandbox.url,
        BIGINTERVIEW_API_KEY=drill_sandbox.api_key,
        BIGINTERVIEW_WEBHOOK_KEYS=str(drill_sandbox.webhook_key),
    )


@pytest.fixture
def start_process(drill_environment: dict[str, str], tmp_path: Path) -> Iterator[StartProcess]:
    """``start_process(name, **env)`` runs the Procfile's ``name`` line with extra
    environment variables (fault injection, ``PORT``) and waits until it serves; every
    process started is stopped after the test."""
    started: list[ProcfileProcess] = []

    def start(name: str, log_name: str | None = None, **extra: str) -> ProcfileProcess:
        env = {**drill_environment, **extra}
        process = ProcfileProcess(name, env, tmp_path / f"{log_name or name}.log")
        started.append(process)
        if name == "worker":
            process.wait_until(lambda: bool(WORKER_READY.search(process.log())), "ready line")
        elif name == "web":
            process.wait_until(lambda: accepts_connections(int(env["PORT"])), "open port")
        return process

    try:
        yield start
    finally:
        for process in reversed(started):
            process.stop()
        connection.close()
