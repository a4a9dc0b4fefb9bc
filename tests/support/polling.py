"""Waiting for something another process or thread does: poll until it is true."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 15.0, interval: float = 0.1) -> T:
    """Poll ``predicate`` until it returns a truthy value or ``timeout`` passes; returns
    its last value (falsy on a time-out, so ``assert wait_for(...)`` fails)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)
