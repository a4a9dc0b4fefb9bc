"""What a test does when a real service it needs (Redis, a browser, ...) is missing."""

from __future__ import annotations

import os

import pytest


def require_service(name: str, reason: str) -> None:
    """Fail under CI, skip elsewhere: a missing service must never turn CI green."""
    message = f"{name} is not available: {reason}"
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)
