"""System checks for ``settings.BIGINTERVIEW``.

Types and bounds come from the declarations in ``conf.py``; the checks here add what a
declaration cannot say (an origin, a key's format, an importable path, the webhook route).

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
| E010 | ``WEBHOOK_RETENTION`` or ``WEBHOOK_FAILED_RETENTION`` is under 2 hours |
| W011 | ``BIGINTERVIEW`` has unknown keys (a typo) |
| W012 | ``BASE_URL`` points at a local host (the sandbox) while ``DEBUG`` is off |
| E013 | a timeout, count, size, rate, share or duration is not what its key declares |
| E014 | ``API_SCHEMA_ACCESS`` is not "authenticated", "staff" or "public" |
| W015 | ``PARTNER_ID_FUNCTION`` is set but the ``ADAPTER`` overrides ``partner_id_for_user`` |
| E016 | ``drf_spectacular_sidecar`` is not in ``INSTALLED_APPS`` (the API docs page's files) |
| W017 | no ``REDIS_URL``, and Django's default cache is not shared between processes |
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from typing import Any
from urllib.parse import SplitResult, urlsplit

from django.apps import apps
from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured
from django.urls import NoReverseMatch, reverse
from django.utils.module_loading import import_string

from .adapter import DefaultAdapter
from .conf import (
    DEFAULTS,
    SETTINGS_NAME,
    UNUSABLE_VALUE_ID,
    AppSettings,
    app_settings,
    declarations,
)

Messages = list[CheckMessage]

IMPORTABLE_ID = "biginterview.E009"

#: Errors that exist only under ``--deploy`` (escalated missing-key warnings).
DEPLOY_ERROR_IDS = frozenset(
    {"biginterview.E001", "biginterview.E003", "biginterview.E005", "biginterview.E007"}
)

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
    value = AppSettings.BASE_URL.raw()
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
    value = AppSettings.API_KEY.raw()
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
    value = AppSettings.WEBHOOK_KEYS.raw()
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
            hint="See the settings reference, docs/settings.md.",
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
            hint="Check the spelling against the settings reference, docs/settings.md.",
            id="biginterview.W011",
        )
    ]


def check_importables() -> Messages:
    messages: Messages = []
    for declaration in declarations():
        if declaration.check_id != IMPORTABLE_ID:
            continue
        path = declaration.raw()
        if not path:
            continue
        try:
            imported = import_string(path) if isinstance(path, str) else None
        except ImportError:
            imported = None
        if not callable(imported):
            messages.append(
                Error(
                    f"{SETTINGS_NAME}['{declaration.name}'] = {path!r} cannot be imported.",
                    hint="Give the dotted path of an importable class or function.",
                    id=IMPORTABLE_ID,
                )
            )
    return messages


def check_partner_id_decision() -> Messages:
    """W015: two answers to one decision; the adapter's override wins, silently otherwise."""
    if not AppSettings.PARTNER_ID_FUNCTION.raw():
        return []
    try:
        adapter_class = import_string(app_settings.ADAPTER)
    except (ImportError, ImproperlyConfigured):
        return []  # E009 or E013 says why
    if getattr(adapter_class, "partner_id_for_user", None) is DefaultAdapter.partner_id_for_user:
        return []
    return [
        Warning(
            f"{SETTINGS_NAME}['PARTNER_ID_FUNCTION'] is ignored: the ADAPTER overrides "
            "partner_id_for_user.",
            hint="Keep one of the two: remove the setting, or call it from your override.",
            id="biginterview.W015",
        )
    ]


#: Cache backends that keep their data in one process (or nowhere).
PER_PROCESS_CACHES = frozenset(
    {
        "django.core.cache.backends.locmem.LocMemCache",
        "django.core.cache.backends.dummy.DummyCache",
    }
)


def check_shared_store() -> Messages:
    """W017: without ``REDIS_URL`` the locks, pending-sync markers and the rate limit live
    in Django's default cache; one per process means a marker the worker clears stays set
    in the web server, and each process gets a rate limit of its own."""
    if AppSettings.REDIS_URL.raw():
        return []
    backend = settings.CACHES.get("default", {}).get("BACKEND", "")
    if backend not in PER_PROCESS_CACHES:
        return []
    return [
        Warning(
            f"{SETTINGS_NAME}['REDIS_URL'] is not set and the default cache "
            f"({backend.rsplit('.', 1)[-1]}) is not shared between processes.",
            hint="Set REDIS_URL (recommended), or a default cache every web and worker "
            "process shares (Redis, Memcached, database or file based).",
            id="biginterview.W017",
        )
    ]


def _refused_values(check_id: str) -> Messages:
    """An error for every key, declared with ``check_id``, whose value its declaration
    refuses (the message says what the key must be)."""
    messages: Messages = []
    for declaration in declarations():
        problem = declaration.problem() if declaration.check_id == check_id else None
        if problem:
            messages.append(Error(problem, hint=declaration.hint, id=check_id))
    return messages


def check_numbers() -> Messages:
    """E013: a timeout, count, size, rate, share or duration its declaration refuses."""
    return _refused_values(UNUSABLE_VALUE_ID)


def check_durations() -> Messages:
    """E010: a webhook retention shorter than Big Interview's retries."""
    return _refused_values("biginterview.E010")


def check_schema_access() -> Messages:
    """E014 before runtime: the schema view refuses to guess and answers 500 for any other
    value of ``API_SCHEMA_ACCESS``."""
    return _refused_values("biginterview.E014")


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
    messages.extend(check_partner_id_decision())
    messages.extend(check_shared_store())
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


@register(Tags.staticfiles)
def check_docs_assets(app_configs: Any = None, **kwargs: Any) -> Messages:
    """E016: the API docs page (``api/docs/``) loads Swagger UI from the static files of
    drf-spectacular-sidecar, which the static files finders only find in an installed
    app; without it the page stays blank."""
    if apps.is_installed("drf_spectacular_sidecar"):
        return []
    return [
        Error(
            "drf_spectacular_sidecar is not in INSTALLED_APPS: the API docs page "
            "(biginterview:api-docs) cannot load Swagger UI.",
            hint="Add 'drf_spectacular_sidecar' to INSTALLED_APPS (installed with "
            "django-biginterview): it serves Swagger UI's files from your site, not a CDN.",
            id="biginterview.E016",
        )
    ]
