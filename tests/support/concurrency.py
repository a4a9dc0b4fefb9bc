"""Real concurrency: one callable run in several threads released at the same instant."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import connections

T = TypeVar("T")


def run_concurrently(job: Callable[[], T], times: int, *, timeout: float = 30) -> list[T]:
    """Run ``job`` in ``times`` threads that wait at a barrier, so they start together;
    return what each returned (in thread order).

    Each thread closes its own database connections when it ends (Django opens one per
    thread). An exception raised in a thread is raised here once all have ended; a thread
    still running after ``timeout`` seconds fails the call.
    """
    barrier = threading.Barrier(times)
    results: dict[int, T] = {}
    errors: list[BaseException] = []

    def run(number: int) -> None:
        try:
            barrier.wait(timeout)
            results[number] = job()
        except BaseException as exc:  # re-raised in the calling thread
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(n,), daemon=True) for n in range(times)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + timeout
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()))
    if errors:
        raise errors[0]
    if any(thread.is_alive() for thread in threads):
        raise AssertionError(f"a thread of run_concurrently still ran after {timeout} s")
    return [results[number] for number in range(times)]
