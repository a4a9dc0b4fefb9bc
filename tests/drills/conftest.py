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

import os
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from django_biginterview.sandbox import Sandbox
from tests.conftest import PrivateRedis
from tests.drills.harness import API_LATENCY, QUEUE, ProcfileProcess, accepts_connections
from tests.drills.procfile import EXAMPLE, procfile_command
from tests.test_example_project import PORTAL_VARIABLES

WORKER_READY = re.compile(r"celery@\S+ ready\.")

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
def portal_environment(
    transactional_db: None, drill_redis: PrivateRedis, drill_sandbox: Sandbox
) -> dict[str, str]:
    """The environment of the Procfile's processes: this test's database, broker, Redis
    and sandbox, and the drills' settings module; nothing of the developer's shell that
    the portal reads."""
    if connection.vendor != "postgresql":
        pytest.skip("the drills need PostgreSQL (DJANGO_SETTINGS_MODULE=tests.settings_postgres)")
    db = connection.settings_dict
    env = {key: value for key, value in os.environ.items() if not key.startswith(PORTAL_VARIABLES)}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(EXAMPLE.parent),  # for tests.drills.worker_settings
        PYTHONUNBUFFERED="1",
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
    return env


@pytest.fixture
def start_process(portal_environment: dict[str, str], tmp_path: Path) -> Iterator[StartProcess]:
    """``start_process(name, **env)`` runs the Procfile's ``name`` line with extra
    environment variables (fault injection, ``PORT``) and waits until it serves; every
    process started is stopped after the test."""
    started: list[ProcfileProcess] = []

    def start(name: str, log_name: str | None = None, **extra: str) -> ProcfileProcess:
        env = {**portal_environment, **extra}
        log_path = tmp_path / f"{log_name or name}.log"
        with log_path.open("wb") as log:
            popen = subprocess.Popen(
                procfile_command(name, env),
                cwd=EXAMPLE,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        process = ProcfileProcess(name, popen, log_path)
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
