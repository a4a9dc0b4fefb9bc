"""System checks for ``settings.BIGINTERVIEW``.

Ids are stable and never reused. A missing key is a warning (``biginterview.W0xx``) so a
project can install the app and ``migrate`` before its keys arrive; the same problem is an
error (``biginterview.E0xx``) under ``manage.py check --deploy``. Malformed values are
errors everywhere.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.urls import NoReverseMatch, reverse
from django.utils.module_loading import import_string

from .conf import DEFAULTS, SETTINGS_NAME, app_settings

Messages = list[CheckMessage]

MIN_WEBHOOK_RETENTION = timedelta(hours=2)

#: Errors that exist only under ``--deploy`` (escalated missing-key warnings).
DEPLOY_ERROR_IDS = frozenset(
    {"biginterview.E001", "biginterview.E003", "biginterview.E005", "biginterview.E007"}
)


def _message(deploy: bool, warning_id: str, error_id: str, msg: str, hint: str) -> CheckMessage:
    if deploy:
        return Error(msg, hint=hint, id=error_id)
    return Warning(msg, hint=hint, id=warning_id)


def _webhook_routed() -> bool:
    try:
        reverse("biginterview:webhook")
    except NoReverseMatch:
        return False
    return True


def check_base_url(deploy: bool = False) -> Messages:
    value = app_settings.get("BASE_URL")
    if not value:
        return [
            _message(
                deploy,
                "biginterview.W001",
                "biginterview.E001",
                f"{SETTINGS_NAME}['BASE_URL'] is not set.",
                "Set it to your organisation's origin, e.g. 'https://acme.biginterview.com'.",
            )
        ]
    parts = urlsplit(str(value)) if isinstance(value, str) else None
    if (
        parts is None
        or parts.scheme not in ("http", "https")
        or not parts.netloc
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
    ):
        return [
            Error(
                f"{SETTINGS_NAME}['BASE_URL'] is not an origin (scheme and host only).",
                hint="Use e.g. 'https://acme.biginterview.com', without a path or query.",
                id="biginterview.E002",
            )
        ]
    if parts.scheme != "https" and not settings.DEBUG:
        return [
            _message(
                deploy,
                "biginterview.W007",
                "biginterview.E007",
                f"{SETTINGS_NAME}['BASE_URL'] is not HTTPS while DEBUG is off.",
                "Plain HTTP is for the local sandbox only; production must use "
                "https://{org}.biginterview.com.",
            )
        ]
    return []


def check_api_key(deploy: bool = False) -> Messages:
    value = app_settings.get("API_KEY")
    if not value:
        return [
            _message(
                deploy,
                "biginterview.W003",
                "biginterview.E003",
                f"{SETTINGS_NAME}['API_KEY'] is not set.",
                "Create an API key in your Big Interview admin area and set it, ideally "
                "from an environment variable.",
            )
        ]
    if not isinstance(value, str) or value != value.strip() or any(c.isspace() for c in value):
        return [
            Error(
                f"{SETTINGS_NAME}['API_KEY'] is malformed (not a string, or contains spaces).",
                hint="The key is sent raw in the Authorization header; paste it exactly.",
                id="biginterview.E004",
            )
        ]
    return []


def check_webhook_keys(deploy: bool = False) -> Messages:
    value = app_settings.get("WEBHOOK_KEYS")
    if value and (
        not isinstance(value, list | tuple) or not all(isinstance(k, str) and k for k in value)
    ):
        return [
            Error(
                f"{SETTINGS_NAME}['WEBHOOK_KEYS'] must be a list of non-empty strings.",
                hint="Use a list so keys can be rotated: ['new-key', 'old-key'].",
                id="biginterview.E006",
            )
        ]
    if not value and _webhook_routed():
        return [
            _message(
                deploy,
                "biginterview.W005",
                "biginterview.E005",
                f"{SETTINGS_NAME}['WEBHOOK_KEYS'] is empty but the webhook URL is routed.",
                "Copy the verification key from Big Interview's webhook settings. Until "
                "then the endpoint answers 503 so Big Interview retries later.",
            )
        ]
    return []


def check_unknown_keys() -> Messages:
    configured = getattr(settings, SETTINGS_NAME, None)
    if configured is None:
        return []
    if not isinstance(configured, dict):
        return [
            Error(
                f"{SETTINGS_NAME} must be a dict.",
                hint="See the settings reference in the README.",
                id="biginterview.E008",
            )
        ]
    unknown = sorted(set(configured) - set(DEFAULTS))
    if unknown:
        return [
            Warning(
                f"{SETTINGS_NAME} has unknown keys: {', '.join(unknown)}.",
                hint="Check the spelling against the settings reference in the README.",
                id="biginterview.W008",
            )
        ]
    return []


def check_importables() -> Messages:
    messages: Messages = []
    for key in ("ADAPTER", "PARTNER_ID_FUNCTION"):
        path = app_settings.get(key)
        if not path:
            continue
        try:
            import_string(path)
        except ImportError:
            messages.append(
                Error(
                    f"{SETTINGS_NAME}['{key}'] = {path!r} cannot be imported.",
                    hint="Give a dotted path to an importable object.",
                    id="biginterview.E009",
                )
            )
    return messages


def check_durations() -> Messages:
    messages: Messages = []
    try:
        retention = app_settings.get("WEBHOOK_RETENTION")
    except (TypeError, ValueError):
        retention = None
    if retention is None or retention < MIN_WEBHOOK_RETENTION:
        messages.append(
            Error(
                f"{SETTINGS_NAME}['WEBHOOK_RETENTION'] must be at least 2 hours.",
                hint="Big Interview re-sends a notification for one hour; deleting events "
                "sooner would process a late retry twice.",
                id="biginterview.E010",
            )
        )
    return messages


SETTINGS_CHECKS: tuple[Callable[..., Messages], ...] = (
    check_base_url,
    check_api_key,
    check_webhook_keys,
)


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> Messages:
    messages = check_unknown_keys()
    if messages and messages[0].id == "biginterview.E008":
        return messages
    for check in SETTINGS_CHECKS:
        messages.extend(check(deploy=False))
    messages.extend(check_importables())
    messages.extend(check_durations())
    return messages


@register(Tags.security, deploy=True)
def check_settings_deploy(app_configs: Any = None, **kwargs: Any) -> Messages:
    """Under ``--deploy`` the missing-key warnings become errors."""
    if not isinstance(getattr(settings, SETTINGS_NAME, None) or {}, dict):
        return []
    messages: Messages = []
    for check in SETTINGS_CHECKS:
        # Only the escalated variants: malformed-value errors are already reported above.
        messages.extend(m for m in check(deploy=True) if m.id in DEPLOY_ERROR_IDS)
    return messages
