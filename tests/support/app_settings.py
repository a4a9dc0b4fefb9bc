"""Overriding keys of the app's ``BIGINTERVIEW`` setting for one test."""

from __future__ import annotations

from typing import Any


def set_app_settings(settings: Any, **values: Any) -> None:
    """``BIGINTERVIEW`` with ``values`` over the current keys, through pytest-django's
    ``settings`` fixture (restored after the test)."""
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, **values}
