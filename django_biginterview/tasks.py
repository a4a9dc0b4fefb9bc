"""Celery tasks: thin wrappers around the domain (``webhooks.py``, ``sync.py``).

They add what Celery is for (retries, time limits, fan-out, scheduling) and nothing else.
Task names are stable (``biginterview.*``) so ``CELERY_BEAT_SCHEDULE`` entries keep working.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, shared_task
from django.db import transaction

logger = logging.getLogger(__name__)


def enqueue_on_commit(task: Task, *args: Any) -> None:
    """Send ``task`` with ``args`` once the current transaction commits.

    A broker outage must not fail the caller (the webhook view answers 200 once the event
    is stored): the error is logged and the periodic sweeper picks the work up later.
    """

    def send() -> None:
        try:
            task.apply_async(args=args, retry=False)
        except Exception:  # noqa: BLE001 - any broker/transport error; the sweeper recovers
            logger.warning("Could not enqueue %s; the sweeper will retry", task.name,
                           exc_info=True)

    transaction.on_commit(send)


# --- Sync tasks (sync.py) ------------------------------------------------------------


def schedule_account_sync(account_id: int) -> None:
    """Schedule one sync of ``account_id`` on commit; at most one pending per account."""
    raise NotImplementedError  # implemented with the sync tasks


# --- Webhook tasks (webhooks.py) -------------------------------------------------------
