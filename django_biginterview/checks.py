"""System checks for ``settings.BIGINTERVIEW``.

Ids are stable and never reused. A ``W0nn`` and an ``E0nn`` with the same number are the
same problem: a missing key is a warning so a project can install the app and ``migrate``
before its keys arrive, and becomes the error under ``manage.py check --deploy``. An id
that exists only as ``E0nn`` is a malformed value, an error everywhere.

| id | problem |
| --- | --- |
| W001 / E001 | ``BASE_URL`` is not set |
| E002 | ``BASE_URL`` is not an http(s) origin (path, query, credentials, bad port) |
| W003 / E003 | ``API_KEY`` is not set |
| E004 | ``API_KEY`` is malformed (not a string, spaces, a ``Bearer`` prefix) |
| W005 / E005 | ``WEBHOOK_KEYS`` is empty while the webhook URL is routed |
| E006 | ``WEBHOOK_KEYS`` is not a list of non-empty strings |
| W007 / E007 | ``BASE_URL`` is not HTTPS while ``DEBUG`` is off |
| E008 | ``BIGINTERVIEW`` is not a dict |
| E009 | ``ADAPTER`` or ``PARTNER_ID_FUNCTION`` cannot be imported |
| E010 | ``WEBHOOK_RETENTION`` is under 2 hours |
| W011 | ``BIGINTERVIEW`` has unknown keys (a typo) |
| W012 | ``BASE_URL`` points at a local host (the sandbox) while ``DEBUG`` is off |
| E013 | a timeout, deadline, retry count, duration or share is not a usable number |
| E014 | ``API_SCHEMA_ACCESS`` is not "authenticated", "staff" or "public" |
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import SplitResult, urlsplit

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.urls import NoReverseMatch, reverse
from django.utils.module_loading import import_string

from .api.permissions import SCHEMA_ACCESS_LEVELS
from .conf import _TIMEDELTA_KEYS, DEFAULTS, MIN_WEBHOOK_RETENTION, SETTINGS_NAME, app_settings
from .exceptions import InvalidSetting

Messages = list[CheckMessage]

#: Errors that exist only under ``--deploy`` (escalated missing-key warnings).
DEPLOY_ERROR_IDS = frozenset(
    {"biginterview.E001", "biginterview.E003", "biginterview.E005", "biginterview.E007"}
)

#: Keys that must be positive numbers (seconds, bytes or counts). Each is cast with
#: ``int()``/``float()`` where it is used: a bad value must show up here, not as a 500.
POSITIVE_NUMBER_KEYS = (
    "CONNECT_TIMEOUT",
    "READ_TIMEOUT",
    "REQUEST_DEADLINE",
    "SSO_TIME_BUDGET",
    "WEBHOOK_MAX_BODY_SIZE",
    "WEBHOOK_MAX_ATTEMPTS",
    "SYNC_CHUNK_SIZE",
    "SYNC_MAX_DELIVERIES",
    "TASK_SOFT_TIME_LIMIT",
    "TASK_TIME_LIMIT",
    "ANONYMOUS_ACCOUNTS_PER_HOUR",
    "ANONYMOUS_ACCOUNTS_PER_SESSION",
    "ANONYMOUS_ACCOUNTS_PER_RATE_KEY",
    "SSO_MIN_TOKEN_LIFE",
)
#: Keys that must be numbers that are zero or more (``RATE_LIMIT`` 0: no limit).
NON_NEGATIVE_NUMBER_KEYS = (
    "MAX_RETRIES",
    "RETRY_BACKOFF",
    "RETRY_BACKOFF_MAX",
    "SYNC_MAX_RETRIES",
    "SYNC_RETRY_BACKOFF",
    "SYNC_RETRY_BACKOFF_MAX",
    "RATE_LIMIT",
)
#: Keys that must be numbers above 0 and below 1 (shares of a budget: at 0 or 1 one of
#: the two parts would get no limit at all, since a rate of 0 means "unlimited").
SHARE_KEYS = ("INTERACTIVE_RATE_SHARE",)

LOCAL_HOST_NAMES = frozenset({"localhost", "sandbox", "host.docker.internal"})


def _message(deploy: bool, warning_id: str, error_id: str, msg: str, hint: str) -> CheckMessage:
    if deploy:
        return Error(msg, hint=hint, id=error_id)
    return Warning(msg, hint=hint, id=warning_id)


def _webhook_routed() -> bool:
    try:
        reverse("biginterview:webhook")
    except (NoReverseMatch, ImportError, ImproperlyConfigured, AttributeError):
        # A broken or missing URLconf (no ROOT_URLCONF) is reported by Django's own checks.
        return False
    return True


def _origin_parts(value: Any) -> SplitResult | None:
    """The split URL if ``value`` is an http(s) origin (scheme and host only), else None."""
    if not isinstance(value, str):
        return None
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        return None
    if (
        parts.scheme not in ("http", "https")
        or not parts.hostname
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or parts.username is not None
        or parts.password is not None
    ):
        return None
    return parts


def _is_local_host(hostname: str) -> bool:
    """Loopback, private addresses and local names: where the sandbox runs, not Big Interview."""
    if hostname in LOCAL_HOST_NAMES or hostname.endswith((".localhost", ".local", ".test")):
        return True
    try:
        address = ipaddress.ip_address(hostname)
    except ValueError:
        return False
    return address.is_loopback or address.is_private or address.is_unspecified


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
    parts = _origin_parts(value)
    if parts is None:
        return [
            Error(
                f"{SETTINGS_NAME}['BASE_URL'] is not an http(s) origin.",
                hint="Use the scheme and host only, e.g. 'https://acme.biginterview.com', "
                "without a path, query or credentials.",
                id="biginterview.E002",
            )
        ]
    if settings.DEBUG:
        return []
    messages: Messages = []
    if parts.scheme != "https":
        messages.append(
            _message(
                deploy,
                "biginterview.W007",
                "biginterview.E007",
                f"{SETTINGS_NAME}['BASE_URL'] is not HTTPS while DEBUG is off.",
                "Plain HTTP is for the local sandbox only; production must use "
                "https://{org}.biginterview.com.",
            )
        )
    if parts.hostname and _is_local_host(parts.hostname):
        messages.append(
            Warning(
                f"{SETTINGS_NAME}['BASE_URL'] points at a local host ({parts.hostname}) "
                "while DEBUG is off.",
                hint="That is the sandbox, not Big Interview: set your organisation's "
                "origin, e.g. 'https://acme.biginterview.com'.",
                id="biginterview.W012",
            )
        )
    return messages


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
    # Only visible ASCII: the key goes raw into a header, where a space means a "Bearer"
    # prefix or a pasted line, and a newline would be header injection.
    if not isinstance(value, str) or not all("!" <= char <= "~" for char in value):
        return [
            Error(
                f"{SETTINGS_NAME}['API_KEY'] is malformed (not a string, or contains spaces "
                "or control characters).",
                hint="The key is sent raw in the Authorization header, without 'Bearer': "
                "paste exactly the key Big Interview shows.",
                id="biginterview.E004",
            )
        ]
    return []


def check_webhook_keys(deploy: bool = False) -> Messages:
    value = app_settings.get("WEBHOOK_KEYS")
    if value and (
        not isinstance(value, list | tuple)
        or not all(isinstance(k, str) and k and k == k.strip() for k in value)
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


def check_is_dict() -> Messages:
    configured = getattr(settings, SETTINGS_NAME, None)
    if configured is None or isinstance(configured, dict):
        return []
    return [
        Error(
            f"{SETTINGS_NAME} must be a dict.",
            hint="See the settings reference in the README.",
            id="biginterview.E008",
        )
    ]


def check_unknown_keys() -> Messages:
    unknown = sorted(str(key) for key in app_settings.user_settings if key not in DEFAULTS)
    if not unknown:
        return []
    return [
        Warning(
            f"{SETTINGS_NAME} has unknown keys: {', '.join(unknown)}.",
            hint="Check the spelling against the settings reference in the README.",
            id="biginterview.W011",
        )
    ]


def check_importables() -> Messages:
    messages: Messages = []
    for key in ("ADAPTER", "PARTNER_ID_FUNCTION"):
        path = app_settings.get(key)
        if not path:
            continue
        try:
            imported = import_string(path) if isinstance(path, str) else None
        except ImportError:
            imported = None
        if not callable(imported):
            messages.append(
                Error(
                    f"{SETTINGS_NAME}['{key}'] = {path!r} cannot be imported.",
                    hint="Give the dotted path of an importable class or function.",
                    id="biginterview.E009",
                )
            )
    return messages


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def check_numbers() -> Messages:
    messages: Messages = []

    def invalid(key: str, requirement: str) -> None:
        messages.append(
            Error(
                f"{SETTINGS_NAME}['{key}'] must be {requirement}.",
                hint=f"Remove it to use the default ({DEFAULTS[key]!r}).",
                id="biginterview.E013",
            )
        )

    for key in POSITIVE_NUMBER_KEYS:
        value = app_settings.get(key)
        if not _is_number(value) or not value > 0:
            invalid(key, "a number of seconds above zero")
    for key in NON_NEGATIVE_NUMBER_KEYS:
        value = app_settings.get(key)
        if not _is_number(value) or not value >= 0:
            invalid(key, "a number, zero or more")
    for key in SHARE_KEYS:
        value = app_settings.get(key)
        if not _is_number(value) or not 0 < value < 1:
            invalid(key, "a number above 0 and below 1")
    for key in sorted(_TIMEDELTA_KEYS):
        try:
            duration = app_settings.get(key)
        except InvalidSetting:
            duration = None
        if duration is None or duration < timedelta(0):
            invalid(key, "a timedelta or a number of seconds, zero or more")
    return messages


def check_durations() -> Messages:
    messages: Messages = []
    for key in ("WEBHOOK_RETENTION", "WEBHOOK_FAILED_RETENTION"):
        try:
            retention = app_settings.get(key)
        except InvalidSetting:
            continue  # reported as E013
        if retention is not None and retention < MIN_WEBHOOK_RETENTION:
            messages.append(
                Error(
                    f"{SETTINGS_NAME}['{key}'] must be at least 2 hours.",
                    hint="Big Interview re-sends a notification for one hour; deleting "
                    "events sooner would process a late retry twice.",
                    id="biginterview.E010",
                )
            )
    return messages


def check_schema_access() -> Messages:
    """E014 before runtime: the schema view refuses to guess and answers 500 for any other
    value of ``API_SCHEMA_ACCESS``."""
    value = app_settings.get("API_SCHEMA_ACCESS")
    if value in SCHEMA_ACCESS_LEVELS:
        return []
    return [
        Error(
            f"{SETTINGS_NAME}['API_SCHEMA_ACCESS'] must be 'authenticated', 'staff' or "
            f"'public', not {value!r}.",
            hint="Remove it to let signed-in users read the API schema (the default).",
            id="biginterview.E014",
        )
    ]


#: The checks whose missing-key warnings become errors under ``--deploy``.
SETTINGS_CHECKS: tuple[Callable[..., Messages], ...] = (
    check_base_url,
    check_api_key,
    check_webhook_keys,
)


@register(Tags.compatibility)
def check_settings(app_configs: Any = None, **kwargs: Any) -> Messages:
    """Every ``BIGINTERVIEW`` problem, missing keys as warnings."""
    messages = check_is_dict()
    if messages:
        return messages
    messages.extend(check_unknown_keys())
    for check in SETTINGS_CHECKS:
        messages.extend(check(deploy=False))
    messages.extend(check_importables())
    messages.extend(check_numbers())
    messages.extend(check_durations())
    messages.extend(check_schema_access())
    return messages


@register(Tags.security, deploy=True)
def check_settings_deploy(app_configs: Any = None, **kwargs: Any) -> Messages:
    """Under ``--deploy`` the missing-key warnings become errors."""
    if check_is_dict():
        return []
    messages: Messages = []
    for check in SETTINGS_CHECKS:
        # Only the escalated variants: malformed-value errors are already reported above.
        messages.extend(m for m in check(deploy=True) if m.id in DEPLOY_ERROR_IDS)
    return messages
