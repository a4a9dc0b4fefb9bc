"""Every task of the app has soft and hard time limits, taken from settings."""

from __future__ import annotations

import pytest
from celery import current_app

import django_biginterview.tasks  # noqa: F401  (registers the tasks)

TASK_NAMES = sorted(name for name in current_app.tasks if name.startswith("biginterview."))


def test_the_app_registers_its_tasks() -> None:
    assert {
        "biginterview.sync_account",
        "biginterview.sync_all_accounts",
        "biginterview.process_webhook_event",
        "biginterview.sweep_webhook_events",
        "biginterview.purge_webhook_events",
    } <= set(TASK_NAMES)


@pytest.mark.parametrize("name", TASK_NAMES)
def test_every_task_has_time_limits_from_settings(settings, name: str) -> None:
    settings.BIGINTERVIEW = {
        **settings.BIGINTERVIEW,
        "TASK_SOFT_TIME_LIMIT": 42,
        "TASK_TIME_LIMIT": 50,
    }
    task = current_app.tasks[name]
    assert (task.soft_time_limit, task.time_limit) == (42, 50)
