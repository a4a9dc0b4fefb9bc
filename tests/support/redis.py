"""Redis for the tests: the shared one cleaned of the app's coordination keys, or a
``redis-server`` of the test's own that it may kill and restart."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bench.procfile import free_port
from django_biginterview.coordination import KEY_PREFIX, redis_client
from tests.support.polling import wait_for


def clear_coordination_keys() -> None:
    """Forget every lock, marker and rate-limit slot of the test Redis database."""
    client = redis_client()
    if client is None:
        return
    keys = list(client.scan_iter(match=f"{KEY_PREFIX}*", count=500))
    if keys:
        client.delete(*keys)


def fresh_coordination_state() -> Iterator[None]:
    """Body of the ``clean_redis`` fixture: no leftover lock or marker, before and after."""
    clear_coordination_keys()
    yield
    clear_coordination_keys()


# A Redis of the test's own, on a free port, which the test may kill and restart. Never
# the shared one on 6379: other test runs on this machine use it.


class PrivateRedis:
    """A ``redis-server`` subprocess on a free loopback port, without persistence."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
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


def _pings(client: redis.Redis) -> bool:
    try:
        return bool(client.ping())
    except redis.RedisError:
        return False


def use_own_store(settings: Any, private_redis: PrivateRedis) -> None:
    """Keep the coordination state (quotas, locks, rate-limit slots) in a Redis of the
    test's own (the ``private_redis`` fixture): other test runs share the default one, and
    their fixtures wipe its keys, which would reset a quota in the middle of a test."""
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "REDIS_URL": private_redis.url}
