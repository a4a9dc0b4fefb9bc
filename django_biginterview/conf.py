"""The one accessor for ``settings.BIGINTERVIEW``.

Every value is read when it is used, never at import time, so ``override_settings`` works
in tests and nothing leaks between projects. Use the module-level ``app_settings``::

    from django_biginterview.conf import app_settings
    app_settings.BASE_URL
"""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.utils.module_loading import import_string

from .exceptions import InvalidSetting, MissingSetting

SETTINGS_NAME = "BIGINTERVIEW"

#: Documented defaults. ``None`` marks a key that has no usable default.
DEFAULTS: dict[str, Any] = {
    "BASE_URL": None,
    "API_KEY": None,
    "WEBHOOK_KEYS": [],
    "CONNECT_TIMEOUT": 3.05,
    "READ_TIMEOUT": 10.0,
    "MAX_RETRIES": 3,
    "RETRY_BACKOFF": 0.5,
    "RETRY_BACKOFF_MAX": 30.0,
    "REQUEST_DEADLINE": 30.0,
    "SSO_TIME_BUDGET": 10.0,
    "TOKEN_REFRESH_MARGIN": timedelta(hours=1),
    "SSO_LOGIN_PATH": "/sso/login",
    "DEFAULT_REDIRECT_TO": "/members/dashboard",
    "RETURN_URL": None,
    "ADAPTER": "django_biginterview.adapter.DefaultAdapter",
    "PARTNER_ID_FUNCTION": None,
    "PARTNER_ID_SECRET": None,
    "ANONYMOUS_USERS": False,
    "ANONYMOUS_ACCOUNTS_PER_HOUR": 100,
    "ANONYMOUS_ACCOUNTS_PER_SESSION": 2,
    "ANONYMOUS_ACCOUNTS_PER_RATE_KEY": 10,
    "INTERACTIVE_RATE_SHARE": 0.25,
    "SSO_MIN_TOKEN_LIFE": 60.0,
    "WEBHOOK_MAX_BODY_SIZE": 256 * 1024,
    "WEBHOOK_STUCK_AFTER": timedelta(minutes=5),
    "WEBHOOK_MAX_ATTEMPTS": 6,
    "WEBHOOK_RETRY_BACKOFF": timedelta(minutes=1),
    "WEBHOOK_RETENTION": timedelta(days=30),
    "WEBHOOK_FAILED_RETENTION": timedelta(days=90),
    "SYNC_CHUNK_SIZE": 500,
    "SYNC_LOCK_TIMEOUT": timedelta(minutes=5),
    "SYNC_PENDING_TIMEOUT": timedelta(minutes=30),
    "SYNC_MAX_RETRIES": 5,
    "SYNC_RETRY_BACKOFF": 10.0,
    "SYNC_RETRY_BACKOFF_MAX": 600.0,
    "SYNC_MAX_DELIVERIES": 3,
    "RATE_LIMIT": 10.0,
    "REDIS_URL": None,
    "TASK_SOFT_TIME_LIMIT": 120,
    "TASK_TIME_LIMIT": 180,
    "API_SCHEMA_ACCESS": "authenticated",
}

#: Big Interview re-sends a notification for an hour: a shorter retention would let a late
#: retry of a purged event be processed twice.
MIN_WEBHOOK_RETENTION = timedelta(hours=2)

_TIMEDELTA_KEYS = {
    "TOKEN_REFRESH_MARGIN",
    "WEBHOOK_STUCK_AFTER",
    "WEBHOOK_RETRY_BACKOFF",
    "WEBHOOK_RETENTION",
    "WEBHOOK_FAILED_RETENTION",
    "SYNC_LOCK_TIMEOUT",
    "SYNC_PENDING_TIMEOUT",
}


def _as_timedelta(name: str, value: Any) -> timedelta:
    """Accept a ``timedelta`` or a number of seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=value)
    raise InvalidSetting(
        f"{SETTINGS_NAME}['{name}'] must be a timedelta or a number of seconds, "
        f"not {type(value).__name__}."
    )


_UNSET: dict[str, Any] = {}


def _configured() -> dict[str, Any]:
    """``settings.BIGINTERVIEW`` itself, not a copy (read on every webhook delivery)."""
    configured = getattr(settings, SETTINGS_NAME, None)
    if configured is None:
        return _UNSET
    if not isinstance(configured, dict):
        raise InvalidSetting(f"{SETTINGS_NAME} must be a dict.")
    return configured


class AppSettings:
    """Typed, lazily read view of ``settings.BIGINTERVIEW``.

    Attribute access returns the configured value or the documented default. A required
    key with no value raises :class:`~django_biginterview.exceptions.MissingSetting`,
    which names the key; ``manage.py check`` reports the same problem before runtime.
    """

    @property
    def user_settings(self) -> dict[str, Any]:
        """The project's ``BIGINTERVIEW`` dict as it is right now (empty if unset)."""
        return dict(_configured())

    def get(self, name: str) -> Any:
        """The value of ``name`` (configured or default); durations come as ``timedelta``."""
        if name not in DEFAULTS:
            raise AttributeError(f"{SETTINGS_NAME} has no setting {name!r}")
        value = _configured().get(name, DEFAULTS[name])
        if name in _TIMEDELTA_KEYS and value is not None:
            return _as_timedelta(name, value)
        # A copy, so a caller that mutates the value never changes the defaults.
        return copy.copy(value)

    def require(self, name: str) -> Any:
        """The value of ``name``; raises ``MissingSetting`` if it is empty."""
        value = self.get(name)
        if value in (None, "", [], ()):
            raise MissingSetting(f"{SETTINGS_NAME}['{name}'] is not set.")
        return value

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_") or not name.isupper():
            raise AttributeError(name)
        return self.get(name)

    @property
    def BASE_URL(self) -> str:
        """Origin of the partner organisation, e.g. ``https://acme.biginterview.com``."""
        return str(self.require("BASE_URL")).rstrip("/")

    @property
    def API_KEY(self) -> str:
        """The organisation's API key, sent raw in ``Authorization``."""
        return str(self.require("API_KEY"))

    @property
    def WEBHOOK_KEYS(self) -> list[str]:
        """Verification keys accepted on the webhook endpoint (several, for rotation)."""
        value = self.get("WEBHOOK_KEYS") or []
        if isinstance(value, str):
            value = [value]
        return [key for key in value if key]

    def adapter(self) -> Any:
        """An instance of the configured adapter class (see ``adapter.py``)."""
        return import_string(self.get("ADAPTER"))()


app_settings = AppSettings()
