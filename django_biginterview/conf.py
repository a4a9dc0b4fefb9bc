"""Every ``settings.BIGINTERVIEW`` key, declared once: its type, default, bounds and meaning.

Three readers use the declarations: ``app_settings`` returns each value parsed to its
type, ``checks.py`` validates every key from them, and ``settings_reference.py`` renders
the settings reference from them. Values are read when used, never at import time, so
``override_settings`` works in tests and nothing leaks between projects::

    from django_biginterview.conf import app_settings
    app_settings.READ_TIMEOUT  # a float

Caches built from settings register with :func:`cleared_on_setting_change`, so a test
that changes ``BIGINTERVIEW`` never meets a client built from the old values.
"""

from __future__ import annotations

import copy
import functools
from collections.abc import Callable, Iterator
from datetime import timedelta
from typing import Any, Generic, TypeVar, overload

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

from .exceptions import InvalidSetting, MissingSetting

SETTINGS_NAME = "BIGINTERVIEW"

#: Big Interview re-sends a notification for an hour: a shorter retention would let a late
#: retry of a purged event be processed twice.
MIN_WEBHOOK_RETENTION = timedelta(hours=2)

#: The check id of a value that is not what its declaration asks for.
UNUSABLE_VALUE_ID = "biginterview.E013"

_ABSENT = object()
_EMPTY: tuple[Any, ...] = (None, "", [], ())

T = TypeVar("T")


def _configured() -> dict[str, Any]:
    """``settings.BIGINTERVIEW`` itself, not a copy (read on every webhook delivery)."""
    configured = getattr(settings, SETTINGS_NAME, None)
    if configured is None:
        return {}
    if not isinstance(configured, dict):
        raise InvalidSetting(f"{SETTINGS_NAME} must be a dict.")
    return configured


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


class Setting(Generic[T]):
    """One key. Read on an ``AppSettings`` instance it is the parsed value; read on the
    class it is this declaration.

    ``check_id`` is the system check that reports a value the declaration refuses, with
    ``hint`` (by default: remove the key to get the default).
    """

    #: How the reference names the type.
    kind = "value"
    name = ""

    def __init__(
        self,
        default: Any,
        doc: str,
        *,
        required: bool = False,
        check_id: str = UNUSABLE_VALUE_ID,
        hint: str | None = None,
        default_text: str | None = None,
    ) -> None:
        self.default = default
        self.doc = doc
        self.required = required
        self.check_id = check_id
        self._hint = hint
        self._default_text = default_text

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    @overload
    def __get__(self, instance: None, owner: type) -> Setting[T]: ...

    @overload
    def __get__(self, instance: object, owner: type) -> T: ...

    def __get__(self, instance: object | None, owner: type) -> Setting[T] | T:
        if instance is None:
            return self
        return self.value()

    @property
    def requirement(self) -> str:
        """What a usable value is, in words ("a number above 0")."""
        return "set"

    @property
    def hint(self) -> str:
        return self._hint or f"Remove it to use the default ({self.default_text})."

    @property
    def default_text(self) -> str:
        if self._default_text is not None:
            return self._default_text
        return "required" if self.required else f"`{self.default!r}`"

    def raw(self) -> Any:
        """The configured value as written, or a copy of the default."""
        value = _configured().get(self.name, _ABSENT)
        return copy.copy(self.default) if value is _ABSENT else value

    def value(self) -> T:
        """The parsed value; ``MissingSetting`` for a required key left empty and
        ``InvalidSetting`` for a value the declaration refuses, each naming the key."""
        raw = self.raw()
        if self.required and raw in _EMPTY:
            raise MissingSetting(f"{SETTINGS_NAME}['{self.name}'] is not set.")
        return self.parse(raw)

    def problem(self) -> str | None:
        """Why the configured value is unusable, or ``None`` (also for a missing required
        key, which its own check reports)."""
        if self.required and self.raw() in _EMPTY:
            return None
        try:
            self.value()
        except InvalidSetting as exc:
            return str(exc)
        return None

    def parse(self, value: Any) -> T:
        raise NotImplementedError

    def refuse(self) -> InvalidSetting:
        return InvalidSetting(f"{SETTINGS_NAME}['{self.name}'] must be {self.requirement}.")


class _Bounded(Setting[T]):
    """A number with optional bounds: ``above`` and ``below`` exclude, ``at_least``
    includes."""

    noun = "number"

    def __init__(
        self,
        default: Any,
        doc: str,
        *,
        above: float | None = None,
        at_least: float | None = None,
        below: float | None = None,
        unit: str = "",
        **options: Any,
    ) -> None:
        super().__init__(default, doc, **options)
        self.above, self.at_least, self.below, self.unit = above, at_least, below, unit

    @property
    def kind(self) -> str:  # type: ignore[override]
        return f"{self.noun} ({self.unit})" if self.unit else self.noun

    @property
    def requirement(self) -> str:
        bounds = []
        if self.above is not None:
            bounds.append(f"above {self.above:g}")
        if self.at_least is not None:
            bounds.append("zero or more" if self.at_least == 0 else f"{self.at_least:g} or more")
        if self.below is not None:
            bounds.append(f"below {self.below:g}")
        return f"a {self.kind}, {' and '.join(bounds)}" if bounds else f"a {self.kind}"

    def _in_bounds(self, value: float) -> bool:
        return (
            (self.above is None or value > self.above)
            and (self.at_least is None or value >= self.at_least)
            and (self.below is None or value < self.below)
        )


class Number(_Bounded[float]):
    """A float; an ``int`` is accepted."""

    def parse(self, value: Any) -> float:
        if not _is_number(value) or not self._in_bounds(value):
            raise self.refuse()
        return float(value)


class Count(_Bounded[int]):
    """A whole number (a float such as ``6.0`` is accepted)."""

    noun = "whole number"

    def parse(self, value: Any) -> int:
        if not _is_number(value) or value != int(value) or not self._in_bounds(value):
            raise self.refuse()
        return int(value)


class Duration(Setting[timedelta]):
    """A ``timedelta``, or a number of seconds, zero or more.

    ``minimum`` is enforced by the system check only: a value under it still reads, so a
    project that ignores the check behaves as configured."""

    kind = "duration"

    def __init__(
        self, default: timedelta, doc: str, *, minimum: timedelta | None = None, **options: Any
    ) -> None:
        super().__init__(default, doc, **options)
        self.minimum = minimum

    @property
    def requirement(self) -> str:
        least = f"at least {_spoken(self.minimum)}" if self.minimum else "zero or more"
        return f"a timedelta or a number of seconds, {least}"

    @property
    def default_text(self) -> str:
        return _spoken(self.default)

    def parse(self, value: Any) -> timedelta:
        if _is_number(value):
            value = timedelta(seconds=value)
        if not isinstance(value, timedelta) or value < timedelta(0):
            raise self.refuse()
        return value

    def problem(self) -> str | None:
        problem = super().problem()
        if problem is None and self.minimum and self.value() < self.minimum:
            return str(self.refuse())
        return problem


class Text(Setting[str]):
    """A string; required ones may not be empty."""

    kind = "string"

    @property
    def requirement(self) -> str:
        return "a string"

    def parse(self, value: Any) -> str:
        if not isinstance(value, str):
            raise self.refuse()
        return value


class OptionalText(Setting["str | None"]):
    """A string, or ``None`` (also for an empty string) when unset."""

    kind = "string or None"

    @property
    def requirement(self) -> str:
        return "a string or None"

    def parse(self, value: Any) -> str | None:
        if value in _EMPTY:
            return None
        if not isinstance(value, str):
            raise self.refuse()
        return value


class Origin(Text):
    """An origin, without the trailing slash (the paths the client adds begin with one)."""

    kind = "URL"

    def parse(self, value: Any) -> str:
        return super().parse(value).rstrip("/")


class Choice(Text):
    """One of ``choices``."""

    def __init__(self, default: str, doc: str, *, choices: tuple[str, ...], **options: Any):
        super().__init__(default, doc, **options)
        self.choices = choices

    @property
    def kind(self) -> str:  # type: ignore[override]
        return " | ".join(repr(choice) for choice in self.choices)

    @property
    def requirement(self) -> str:
        return f"one of {', '.join(repr(choice) for choice in self.choices)}"

    def parse(self, value: Any) -> str:
        if value not in self.choices:
            raise InvalidSetting(
                f"{SETTINGS_NAME}['{self.name}'] must be {self.requirement}, not {value!r}."
            )
        return str(value)


class Flag(Setting[bool]):
    kind = "bool"

    @property
    def requirement(self) -> str:
        return "True or False"

    def parse(self, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.refuse()
        return value


class KeyList(Setting[list[str]]):
    """A list of strings; a lone string is a list of one, empty entries are dropped.

    The lenient reading keeps the webhook endpoint answering while ``biginterview.E006``
    asks for the strict form."""

    kind = "list of strings"

    @property
    def requirement(self) -> str:
        return "a list of non-empty strings"

    def parse(self, value: Any) -> list[str]:
        if value in _EMPTY:
            return []
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list | tuple):
            raise self.refuse()
        return [str(key) for key in value if key]


class ImportPath(Text):
    """The dotted path of a class or function (``biginterview.E009`` checks it imports)."""

    kind = "dotted path"


class OptionalImportPath(OptionalText):
    """A dotted path, or ``None``."""

    kind = "dotted path or None"


def _spoken(duration: timedelta) -> str:
    """``timedelta(days=30)`` as "30 days"; the reference's way of writing a default."""
    seconds = int(duration.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds and seconds % size == 0:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return f"{duration.total_seconds():g} seconds"


class AppSettings:
    """The declarations. On the module-level ``app_settings`` each is its typed value."""

    # -- Big Interview ------------------------------------------------------------------
    BASE_URL = Origin(
        None,
        "Your organisation's origin, `https://{org}.biginterview.com`.",
        required=True,
        check_id="biginterview.E002",
    )
    API_KEY = Text(
        None,
        "The organisation's API key, sent raw in `Authorization`. Never logged.",
        required=True,
        check_id="biginterview.E004",
    )
    WEBHOOK_KEYS = KeyList(
        [],
        "Accepted webhook verification keys; several at once for rotation.",
        check_id="biginterview.E006",
    )

    # -- Requests -----------------------------------------------------------------------
    CONNECT_TIMEOUT = Number(3.05, "Connect timeout of every API request.", above=0, unit="seconds")
    READ_TIMEOUT = Number(10.0, "Read timeout of every API request.", above=0, unit="seconds")
    MAX_RETRIES = Count(
        3, "Retries of transient failures (connection errors, 429, 502/503/504).", at_least=0
    )
    RETRY_BACKOFF = Number(
        0.5,
        "Base of the exponential backoff between retries (full jitter).",
        at_least=0,
        unit="seconds",
    )
    RETRY_BACKOFF_MAX = Number(30.0, "Cap of that backoff.", at_least=0, unit="seconds")
    REQUEST_DEADLINE = Number(
        30.0,
        "How long one background API call may take in all (attempts, backoff, `Retry-After` "
        "waits); a response still arriving then is cut off.",
        above=0,
        unit="seconds",
    )
    RATE_LIMIT = Number(
        10.0,
        "API requests per second, shared by every worker process; 0 for no limit.",
        at_least=0,
        unit="per second",
    )
    INTERACTIVE_RATE_SHARE = Number(
        0.25,
        "Share of `RATE_LIMIT` kept for practice clicks; background syncs get the rest. "
        "Above 0 and below 1: a rate of 0 would mean no limit for one of the two.",
        above=0,
        below=1,
    )
    REDIS_URL = OptionalText(
        None, "Redis for the shared rate limit, locks and markers (else Django's cache)."
    )

    # -- SSO ----------------------------------------------------------------------------
    SSO_TIME_BUDGET = Number(
        10.0,
        "How long a practice click may spend on Big Interview in all, every call and retry "
        'included; then the visitor gets the "unavailable" page.',
        above=0,
        unit="seconds",
    )
    TOKEN_REFRESH_MARGIN = Duration(
        timedelta(hours=1), "A cached SSO token is refreshed when it expires sooner than this."
    )
    SSO_MIN_TOKEN_LIFE = Number(
        60.0,
        "How long a token must still be valid to be handed to a visitor; with less left it "
        'is refreshed, or the "unavailable" page shown.',
        above=0,
        unit="seconds",
    )
    SSO_LOGIN_PATH = Text("/sso/login", "Big Interview's SSO login path.")
    DEFAULT_REDIRECT_TO = OptionalText(
        "/members/dashboard", "Landing path after login; `None` for Big Interview's own."
    )
    RETURN_URL = OptionalText(None, "Where Big Interview sends users after logout.")

    # -- Users --------------------------------------------------------------------------
    ADAPTER = ImportPath(
        "django_biginterview.adapter.DefaultAdapter",
        "The adapter class: `partner_id`, profile and rate key decisions.",
        check_id="biginterview.E009",
    )
    PARTNER_ID_FUNCTION = OptionalImportPath(
        None,
        "Dotted path of `f(user) -> str`, used by the default adapter instead of its HMAC "
        "`partner_id`.",
        check_id="biginterview.E009",
    )
    PARTNER_ID_SECRET = OptionalText(
        None, "Secret of the default (HMAC) `partner_id`.", default_text="`SECRET_KEY`"
    )
    ANONYMOUS_USERS = Flag(False, "Logged-out visitors get an anonymous Big Interview account.")
    ANONYMOUS_ACCOUNTS_PER_HOUR = Count(
        100,
        "New anonymous accounts per hour, all visitors together (a window starts with its "
        "first account).",
        above=0,
    )
    ANONYMOUS_ACCOUNTS_PER_SESSION = Count(
        2, "New anonymous accounts per session per 24 hours.", above=0
    )
    ANONYMOUS_ACCOUNTS_PER_RATE_KEY = Count(
        10,
        "New anonymous accounts per hour per key from the adapter's "
        "`anonymous_rate_key(request)` (an IP address you trust); unused while it returns "
        "`None`, the default.",
        above=0,
    )

    # -- Webhooks -----------------------------------------------------------------------
    WEBHOOK_MAX_BODY_SIZE = Count(
        256 * 1024, "Larger deliveries get 413.", above=0, unit="bytes", default_text="256 KiB"
    )
    WEBHOOK_STUCK_AFTER = Duration(
        timedelta(minutes=5), "The sweeper re-enqueues events pending longer than this."
    )
    WEBHOOK_MAX_ATTEMPTS = Count(
        6,
        "Processing attempts (counted when each starts) before an event stays `failed`.",
        above=0,
    )
    WEBHOOK_RETRY_BACKOFF = Duration(
        timedelta(minutes=1), "Base of the sweeper's backoff for failed events."
    )
    WEBHOOK_RETENTION = Duration(
        timedelta(days=30),
        "Processed and ignored events older than this are purged.",
        minimum=MIN_WEBHOOK_RETENTION,
        check_id="biginterview.E010",
        hint="Big Interview re-sends a notification for one hour; deleting events sooner "
        "would process a late retry twice.",
    )
    WEBHOOK_FAILED_RETENTION = Duration(
        timedelta(days=90),
        "Failed events with no retry left are purged after this, once a person had time to look.",
        minimum=MIN_WEBHOOK_RETENTION,
        check_id="biginterview.E010",
        hint="Big Interview re-sends a notification for one hour; deleting events sooner "
        "would process a late retry twice.",
    )

    # -- Sync ---------------------------------------------------------------------------
    SYNC_CHUNK_SIZE = Count(500, 'Accounts per fan-out chunk of "sync all".', above=0)
    SYNC_LOCK_TIMEOUT = Duration(
        timedelta(minutes=5),
        'How long the "sync all" lease lasts without a sign of life; a run silent that '
        "long is closed as lost.",
    )
    SYNC_PENDING_TIMEOUT = Duration(
        timedelta(minutes=30), "How long a scheduled per-account sync counts as pending."
    )
    PROGRESS_MAX_AGE = Duration(
        timedelta(minutes=1),
        "How old a user's mirrored progress may be when they view it (`me/`, "
        "`{% biginterview_progress %}`) before a sync is requested in the background; the "
        "view never waits for it.",
    )
    INTERACTIVE_QUEUE = OptionalText(
        None,
        "Celery queue of the syncs a user is waiting for (progress viewed while stale). "
        "Name a queue the worker also consumes (`-Q celery,biginterview_interactive`), so "
        'they never wait behind a "sync all" in the default queue.',
    )
    SYNC_MAX_RETRIES = Count(5, "Retries of a sync task after transient errors.", at_least=0)
    SYNC_RETRY_BACKOFF = Number(10.0, "Base of their backoff.", at_least=0, unit="seconds")
    SYNC_RETRY_BACKOFF_MAX = Number(600.0, "Cap of their backoff.", at_least=0, unit="seconds")
    SYNC_MAX_DELIVERIES = Count(
        3,
        "Deliveries of a sync task whose worker died before it gives up on the account it "
        "was syncing.",
        above=0,
    )
    TASK_SOFT_TIME_LIMIT = Count(
        120, "Celery soft time limit of the tasks.", above=0, unit="seconds"
    )
    TASK_TIME_LIMIT = Count(180, "Celery hard time limit of the tasks.", above=0, unit="seconds")

    # -- REST API -----------------------------------------------------------------------
    API_SCHEMA_ACCESS = Choice(
        "authenticated",
        "Who may read `api/schema/` (this app's endpoints only) and `api/docs/`, which "
        "the API root lists only to them: signed-in users, staff, or anyone.",
        choices=("authenticated", "staff", "public"),
        check_id="biginterview.E014",
        hint="Remove it to let signed-in users read the API schema (the default).",
    )

    # -- Monitoring ---------------------------------------------------------------------
    HEALTH_TOKEN = OptionalText(
        None,
        "A long random secret that lets a monitor read `health/` with `Authorization: "
        "Bearer <token>`; unset, only staff who may view sync runs can. Never shown.",
    )
    HEALTH_WORKER_SILENT_AFTER = Duration(
        timedelta(minutes=5),
        "`health/` fails when no worker has run the webhook sweep (every minute under beat) "
        "for this long; 0 to not check.",
    )
    HEALTH_FAILED_EVENTS_WINDOW = Duration(
        timedelta(days=1),
        "`health/` fails while a webhook event received within this window has failed with "
        "no retry left; 0 to not check.",
    )
    HEALTH_SYNC_MAX_AGE = Duration(
        timedelta(days=1),
        '`health/` fails when the last "sync all" run started longer ago than this and is '
        "not running (or no run ever started); 0 to not check. A last run closed as lost "
        "fails it whatever this says.",
    )

    @property
    def user_settings(self) -> dict[str, Any]:
        """The project's ``BIGINTERVIEW`` dict as it is right now (empty if unset)."""
        return dict(_configured())

    def get(self, name: str) -> Any:
        """The parsed value of ``name``, ``None`` for an empty required key."""
        declaration = declared(name)
        if declaration.required and declaration.raw() in _EMPTY:
            return None
        return declaration.value()

    def require(self, name: str) -> Any:
        """The value of ``name``; raises ``MissingSetting`` if it is empty."""
        value = self.get(name)
        if value in _EMPTY:
            raise MissingSetting(f"{SETTINGS_NAME}['{name}'] is not set.")
        return value


def declarations() -> Iterator[Setting[Any]]:
    """Every declared key, in the order of the reference."""
    for value in vars(AppSettings).values():
        if isinstance(value, Setting):
            yield value


def declared(name: str) -> Setting[Any]:
    """The declaration of ``name``; ``AttributeError`` for a key that does not exist."""
    declaration = vars(AppSettings).get(name)
    if not isinstance(declaration, Setting):
        raise AttributeError(f"{SETTINGS_NAME} has no setting {name!r}")
    return declaration


#: Every key with its default (``None`` for a required key).
DEFAULTS: dict[str, Any] = {declaration.name: declaration.default for declaration in declarations()}

app_settings = AppSettings()

_SETTINGS_CACHES: list[Callable[[], None]] = []
#: Django settings whose change may invalidate a cached object.
_WATCHED_SETTINGS = frozenset({SETTINGS_NAME, "CACHES"})

F = TypeVar("F", bound=Callable[..., Any])


def cleared_on_setting_change(maxsize: int = 8) -> Callable[[F], F]:
    """``functools.lru_cache`` whose cache empties when ``BIGINTERVIEW`` (or ``CACHES``)
    changes, as ``override_settings`` and the pytest ``settings`` fixture do."""

    def decorate(function: F) -> F:
        cached = functools.lru_cache(maxsize=maxsize)(function)
        _SETTINGS_CACHES.append(cached.cache_clear)
        return cached  # type: ignore[return-value]

    return decorate


@receiver(setting_changed)
def _clear_settings_caches(*, setting: str, **kwargs: Any) -> None:
    if setting in _WATCHED_SETTINGS:
        for clear in _SETTINGS_CACHES:
            clear()
