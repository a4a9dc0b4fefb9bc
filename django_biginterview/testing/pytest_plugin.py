"""pytest fixtures that run the sandbox for a host project's tests.

Enable with ``pytest_plugins = ["django_biginterview.testing.pytest_plugin"]``.

- ``biginterview_sandbox``: a started :class:`~django_biginterview.sandbox.Sandbox` that
  accepts ``settings.BIGINTERVIEW["API_KEY"]``, with ``settings.BIGINTERVIEW["BASE_URL"]``
  pointed at it for the duration of the test (through pytest-django's ``settings``
  fixture, so it is undone afterwards). Stopped after the test.
- ``biginterview_sandbox_factory(**kwargs)``: the same, with ``Sandbox`` constructor
  arguments (``webhook_url=...``, ``webhook_retry_delays=(0.2,)``, ...). Its webhook key
  defaults to the first of ``settings.BIGINTERVIEW["WEBHOOK_KEYS"]``, so deliveries pass
  the app's key check unless a test says otherwise.

Needs pytest-django (the ``settings`` fixture).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from django_biginterview.management.commands.biginterview_sandbox import default_webhook_key
from django_biginterview.sandbox import DEFAULT_API_KEY, Sandbox

SandboxFactory = Callable[..., Sandbox]


@pytest.fixture
def biginterview_sandbox_factory(settings: Any) -> Iterator[SandboxFactory]:
    started: list[Sandbox] = []

    def make(**kwargs: Any) -> Sandbox:
        config = dict(getattr(settings, "BIGINTERVIEW", None) or {})
        kwargs.setdefault("api_keys", [config.get("API_KEY") or DEFAULT_API_KEY])
        kwargs.setdefault("webhook_key", default_webhook_key(config))
        sandbox = Sandbox(**kwargs).start()
        started.append(sandbox)
        config["BASE_URL"] = sandbox.url
        if not config.get("API_KEY"):
            config["API_KEY"] = sandbox.api_key
        # Assigning (not mutating) lets pytest-django restore the original dict.
        settings.BIGINTERVIEW = config
        return sandbox

    try:
        yield make
    finally:
        for sandbox in started:
            sandbox.stop()


@pytest.fixture
def biginterview_sandbox(biginterview_sandbox_factory: SandboxFactory) -> Sandbox:
    return biginterview_sandbox_factory()
