"""Helper of ``sync_throughput.py``: the worker's Celery app, plus a count of every SQL
statement the worker runs (published to Redis after each task), so the benchmark reports
queries per account for the real Celery path, bookkeeping included."""

from __future__ import annotations

import os
import threading
from typing import Any

from celery import Celery
from celery.signals import task_postrun

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bench.sync_bench_settings")

app = Celery("bench_sync")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

QUERY_COUNT_KEY = "bench:sync:queries"
_lock = threading.Lock()
_queries = 0


def _count(execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
    global _queries
    with _lock:
        _queries += 1
    return execute(sql, params, many, context)


def _on_connection(sender: Any, connection: Any, **kwargs: Any) -> None:
    # Sent on every (re)connection of the same wrapper: count each statement once.
    if _count not in connection.execute_wrappers:
        connection.execute_wrappers.append(_count)


def _publish(**kwargs: Any) -> None:
    from django_biginterview.coordination import redis_client

    client = redis_client()
    if client is not None:
        client.set(f"{QUERY_COUNT_KEY}:{os.getpid()}", _queries)


def _install() -> None:
    from django.db.backends.signals import connection_created

    connection_created.connect(_on_connection, weak=False)
    task_postrun.connect(_publish, weak=False)


_install()
