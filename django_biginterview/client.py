"""HTTP client for the Big Interview Partner API, and nothing else.

No ORM and no Django request in here: the client can be used on its own in a script::

    with BigInterviewClient(base_url="https://acme.biginterview.com", api_key="...") as client:
        user = client.create_or_refresh_user("abc123", first_name="A", last_name="B",
                                             email="a@b.c")

Results are typed dataclasses (aware UTC datetimes, progress as ``Decimal``). Errors raise
the tree in ``exceptions.py``. No exception or log line from here carries the API key or an
SSO token: exceptions are built from the status and the parsed error body only (with the
key redacted should the service echo it), and are raised outside ``except`` blocks so no
``requests`` exception (whose ``request`` holds the ``Authorization`` header, whose JSON
error holds the body) is chained to them.

Odd data never gets further than here: a NUL character (which PostgreSQL cannot store) is
removed from every JSON body and logged, JSON nested deeper than ``MAX_JSON_DEPTH`` and
dates Python cannot hold raise ``UnexpectedResponse``. Every call ends by a deadline, retries
and waits included (see ``BigInterviewClient``).
"""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import random
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from http.cookiejar import DefaultCookiePolicy
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3 import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.exceptions import NewConnectionError
from urllib3.poolmanager import pool_classes_by_scheme as default_pool_classes

from . import __version__
from .exceptions import (
    APIError,
    AuthenticationError,
    JSONTooDeep,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    TransportError,
    UnexpectedResponse,
    ValidationError,
)
from .validators import is_valid_partner_id, validate_partner_id

logger = logging.getLogger(__name__)

USER_AGENT = f"django-biginterview/{__version__} python-requests/{requests.__version__}"

#: Statuses after which a request that is safe to repeat is retried.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

#: Replaces a secret the service echoed back in an error body.
REDACTED = "[redacted]"

#: Deepest nesting of objects and arrays accepted in JSON, from the API or a webhook. Big
#: Interview's documents nest four levels; the cap keeps every consumer safe: recursive
#: Python (the recursion limit is 1000 frames), SQLite's JSON functions (1000 levels) and
#: PostgreSQL's jsonb. ``clean_json`` enforces it.
MAX_JSON_DEPTH = 500

#: Dates in these years are refused: arithmetic a day away from Python's limits (a token's
#: refresh margin, an anonymous account's 24 hours, a local-time display) would overflow.
FIRST_YEAR = 2
LAST_YEAR = 9998

_T = TypeVar("_T")


# -- parsing helpers ---------------------------------------------------------------------


def parse_datetime(value: Any, name: str | None = None) -> datetime | None:
    """Parse the API's ISO 8601 timestamps (``2015-05-18T16:37:13.000Z``) as aware UTC.

    ``None`` or ``""`` give ``None``; anything else that is not a date raises
    :class:`UnexpectedResponse`, as does a date outside the years ``FIRST_YEAR`` to
    ``LAST_YEAR`` once in UTC (the message names the field ``name``, when given). A
    timestamp without an offset is taken as UTC.
    """
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise UnexpectedResponse(f"Expected an ISO 8601 date, got {type(value).__name__}.")
    try:
        parsed: datetime | None = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise UnexpectedResponse("Invalid ISO 8601 date in response.")
    try:
        in_utc: datetime | None = parsed.astimezone(UTC) if parsed.tzinfo else parsed
    except OverflowError:  # 0001-01-01T00:00:00+01:00 falls in year 0 once in UTC
        in_utc = None
    if in_utc is None or not FIRST_YEAR <= in_utc.year <= LAST_YEAR:
        field_name = f"field {name!r}" if name else "date"
        raise UnexpectedResponse(f"Response {field_name} holds a date out of range.")
    return in_utc.replace(tzinfo=UTC)


def clean_json(value: Any) -> tuple[Any, list[str]]:
    """``value`` (freshly parsed JSON, changed in place) without NUL characters, and the
    paths (``interviews[0].title``) where it had them, keys and values alike.

    PostgreSQL stores no U+0000 in text or jsonb, so one NUL in a title would make every
    later write of that object fail; the character carries nothing, so it is dropped and
    the rest kept. A key that loses a NUL and then equals another key of its object keeps
    the later value, as a repeated key in JSON text does. Raises ``JSONTooDeep`` for
    nesting deeper than ``MAX_JSON_DEPTH``. The walk uses its own stack, never recursion.
    """
    if isinstance(value, str):
        return (value.replace("\x00", ""), ["(the whole body)"]) if "\x00" in value else (value, [])
    cleaned: list[str] = []
    # Where a node sits is kept as a chain of (parent's place, key or index) and spelled
    # out only for a NUL found: most bodies have none, and every key of them is walked.
    pending: list[tuple[Any, _Place, int]] = [(value, None, 1)]
    while pending:
        node, place, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise JSONTooDeep(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
        entries: Iterable[tuple[Any, Any]]
        if isinstance(node, dict):
            if any("\x00" in key for key in node):
                cleaned.extend(_spell((place, key)) for key in node if "\x00" in key)
                items = [(key.replace("\x00", ""), item) for key, item in node.items()]
                node.clear()
                node.update(items)
            entries = node.items()
        elif isinstance(node, list):
            entries = enumerate(node)
        else:
            continue  # a body that is a single number, boolean or null
        for key, item in entries:
            if isinstance(item, str):
                if "\x00" in item:
                    node[key] = item.replace("\x00", "")  # a value: the shape stays
                    cleaned.append(_spell((place, key)))
            elif isinstance(item, dict | list):
                pending.append((item, (place, key), depth + 1))
    return value, cleaned


#: Where a JSON node sits: ``None`` for the root, else (its parent's place, its key or
#: list index).
_Place = tuple[Any, str | int] | None


def _spell(place: _Place) -> str:
    """``interviews[0].title`` for a place."""
    steps: list[str | int] = []
    while place is not None:
        place, step = place
        steps.append(step)
    path = ""
    for step in reversed(steps):
        path = f"{path}[{step}]" if isinstance(step, int) else _path(path, step)
    return path


def _path(parent: str, key: str) -> str:
    # Keys come from outside and end up in a log line: short, and no control characters.
    key = "".join(char if char.isprintable() else "?" for char in key.replace("\x00", "")[:50])
    return f"{parent}.{key}" if parent else key


def describe_paths(paths: list[str], limit: int = 5) -> str:
    """The first ``limit`` of ``paths``, for a log line that must stay short."""
    shown = ", ".join(path[:200] for path in paths[:limit])
    return f"{shown} and {len(paths) - limit} more" if len(paths) > limit else shown


def _require(obj: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    """``obj[key]`` if ``obj`` is an object holding a value of ``kind`` there."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(obj, Mapping) or key not in obj:
        raise UnexpectedResponse(f"Response object has no {key!r}.")
    value = obj[key]
    # JSON true/false are Python bools, which are ints: never accept one for a number.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise UnexpectedResponse(f"Response field {key!r} has an unexpected type.")
    return value


def _optional_str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise UnexpectedResponse(f"Response field {key!r} has an unexpected type.")
    return str(value)


def _optional_bool(obj: Mapping[str, Any], key: str, default: bool = False) -> bool:
    """A JSON boolean; ``bool("false")`` would be True, so strings are refused."""
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise UnexpectedResponse(f"Response field {key!r} is not a boolean.")


class Secret(str):
    """A string whose ``repr`` is ``'********'``: an SSO token, a login URL holding one,
    the API key.

    Error reports print a frame's locals and a query's parameters with ``repr`` (Django's
    ``ExceptionReporter``, even with ``DEBUG`` on, and Sentry's local variables), so a
    secret kept in this type shows masked there wherever it travels: into a model field,
    a dict, the ORM's SQL parameters. ``str()`` and every string operation still give the
    value, as they must: the database drivers, ``requests`` and Django's redirect checks
    all read it that way. So a message built with ``%s`` or an f-string shows the value:
    never log one.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'********'"


@dataclass(frozen=True)
class SSOToken:
    """A 48-hour SSO login token. Its repr hides the token itself, and the token is kept
    as a :class:`Secret` (wrapped on creation), so it stays masked wherever it is passed."""

    token: str = field(repr=False)
    expires_at: datetime

    def __post_init__(self) -> None:
        if not isinstance(self.token, Secret):
            object.__setattr__(self, "token", Secret(self.token))


@dataclass(frozen=True)
class UserResult:
    """A user as returned by the user endpoints.

    ``created`` is True when the call created the account (201), False when it already
    existed and only its token was refreshed (200). ``anonymous`` is the flag the service
    returned, never assumed from the endpoint.
    """

    partner_id: str
    anonymous: bool
    created_at: datetime | None
    token: SSOToken
    created: bool

    @classmethod
    def from_api(cls, body: Any, *, created: bool) -> UserResult:
        user = _require(body, "user", Mapping)
        token = _require(user, "token", Mapping)
        token_value = _require(token, "token", str)
        if not token_value:
            raise UnexpectedResponse("Response has an empty SSO token.")
        expires_at = parse_datetime(_require(token, "expires_at", str), "expires_at")
        if expires_at is None:
            raise UnexpectedResponse("Response has an empty token expiry.")
        partner_id = _require(user, "partner_id", str)
        if not is_valid_partner_id(partner_id):
            raise UnexpectedResponse("Response has a partner_id that breaks the documented rules.")
        return cls(
            partner_id=partner_id,
            anonymous=_optional_bool(user, "anonymous"),
            created_at=parse_datetime(user.get("created_at"), "created_at"),
            token=SSOToken(token=token_value, expires_at=expires_at),
            created=created,
        )


@dataclass(frozen=True)
class TrackStep:
    """One step of a track; ``link`` is a Big Interview path usable as ``redirect_to``."""

    step: int
    title: str
    link: str
    completed: bool

    @classmethod
    def from_api(cls, obj: Any) -> TrackStep:
        return cls(
            step=_require(obj, "step", int),
            title=_require(obj, "title", str),
            link=_optional_str(obj, "link"),
            completed=_optional_bool(obj, "completed"),
        )


@dataclass(frozen=True)
class Track:
    """A learning track; the API calls the step list ``tracks``, we call it ``steps``.

    ``progress`` is a ``Decimal`` from 0 to 1 with four places (the model's precision).
    """

    title: str
    progress: Decimal
    steps: tuple[TrackStep, ...]

    @classmethod
    def from_api(cls, obj: Any) -> Track:
        title = _require(obj, "title", str)
        raw_progress = _require(obj, "progress", (int, float, str))
        try:
            progress: Decimal | None = Decimal(str(raw_progress)).quantize(Decimal("0.0001"))
        except InvalidOperation:
            progress = None
        if progress is None or not progress.is_finite():
            raise UnexpectedResponse("Track progress is not a number.")
        if not Decimal(0) <= progress <= Decimal(1):
            raise UnexpectedResponse("Track progress is outside 0..1.")
        steps = obj.get("tracks")
        if steps is None:
            steps = []
        if not isinstance(steps, list):
            raise UnexpectedResponse("Track steps are not a list.")
        return cls(
            title=title,
            progress=progress,
            steps=tuple(TrackStep.from_api(step) for step in steps),
        )


@dataclass(frozen=True)
class Interview:
    """A mock interview. ``raw`` keeps the API object exactly as received."""

    id: int
    title: str
    interviewer_name: str
    category: str
    completed: bool
    created_at: datetime | None
    updated_at: datetime | None
    review_path: str
    retake_path: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, obj: Any) -> Interview:
        """Parse an interview object (from the list endpoint or a webhook ``api_object``)."""
        remote_id = _require(obj, "id", (int, str))
        if isinstance(remote_id, str):
            if not remote_id.isascii() or not remote_id.isdigit():
                raise UnexpectedResponse("Interview id is not an integer.")
            remote_id = int(remote_id)
        if not 0 <= remote_id < 2**63:  # what a database's 64-bit integer holds
            raise UnexpectedResponse("Interview id is out of range.")
        links = obj.get("links")
        if links is None:
            links = {}
        if not isinstance(links, Mapping):
            raise UnexpectedResponse("Interview links are not an object.")
        return cls(
            id=remote_id,
            title=_optional_str(obj, "title"),
            interviewer_name=_optional_str(obj, "interviewer_name"),
            category=_optional_str(obj, "category"),
            completed=_optional_bool(obj, "completed"),
            created_at=parse_datetime(obj.get("created_at"), "created_at"),
            updated_at=parse_datetime(obj.get("updated_at"), "updated_at"),
            review_path=_optional_str(links, "review"),
            retake_path=_optional_str(links, "retake"),
            raw=dict(obj),
        )


# -- error mapping -----------------------------------------------------------------------


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delay-seconds or an HTTP-date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds: float | None = float(value)
    except ValueError:
        seconds = None
    if seconds is not None:
        return max(0.0, seconds) if math.isfinite(seconds) else None
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _redact(value: Any, secrets: tuple[str, ...]) -> Any:
    """``value`` (a parsed JSON fragment) with every secret replaced by ``REDACTED``."""
    if isinstance(value, str):
        for secret in secrets:
            if secret:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, Mapping):
        return {_redact(str(k), secrets): _redact(v, secrets) for k, v in value.items()}
    if isinstance(value, list):
        return [_redact(item, secrets) for item in value]
    return value


def _load_json(response: requests.Response, what: str, secrets: tuple[str, ...] = ()) -> Any:
    """The response body as JSON, cleaned by ``clean_json`` (a removed NUL is logged with
    ``what`` and its path, never the value; ``secrets`` are redacted from the path).

    Raises ``ValueError`` for a body that is not JSON and ``JSONTooDeep`` (a
    ``ValueError`` too) for one nested too deeply, including one the JSON parser itself
    refuses with a ``RecursionError``.
    """
    try:
        body = response.json()
        parsed = True
    except RecursionError:
        parsed = False
    if not parsed:  # raised here, not in the handler, so nothing is chained to it
        raise JSONTooDeep(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    body, cleaned = clean_json(body)
    if cleaned:
        logger.warning(
            "Removed NUL characters (U+0000) from %s at %s",
            what,
            _redact(describe_paths(cleaned), secrets),
        )
    return body


def _error_body(
    response: requests.Response, label: str, secrets: tuple[str, ...]
) -> tuple[str | None, Any]:
    """``(type, message)`` from the documented ``{"error": {...}}`` body, if it has it.

    Copes with empty, non-JSON and too deeply nested bodies (proxies, 502 pages, garbage)
    and with the near misses seen behind some gateways (``{"error": "text"}``,
    ``{"message": "text"}``): the status alone then decides the exception.
    """
    try:
        body = _load_json(response, f"the error response to {label}", secrets)
    except ValueError:
        return None, None
    if not isinstance(body, Mapping):
        return None, None
    error = body.get("error")
    if isinstance(error, Mapping):
        error_type = error.get("type")
        return (str(error_type)[:100] if error_type is not None else None), error.get("message")
    if isinstance(error, str):
        return None, error
    if isinstance(body.get("message"), str):
        return None, body["message"]
    return None, None


def error_from_response(
    response: requests.Response, label: str, *, secrets: tuple[str, ...] = ()
) -> APIError:
    """Map an error response to the exception tree, by status."""
    error_type, error_message = _error_body(response, label, secrets)
    error_type = _redact(error_type, secrets)
    error_message = _redact(error_message, secrets)
    status = response.status_code
    kwargs: dict[str, Any] = {
        "status": status,
        "error_type": error_type,
        "error_message": error_message,
    }
    description = f"Big Interview refused {label}"
    if isinstance(error_message, str) and error_message.strip():
        description = f"{description}: {error_message.strip()[:200]}"
    elif isinstance(error_message, Mapping) and error_message:
        fields = ", ".join(sorted(str(name) for name in error_message))
        description = f"{description}: invalid {fields[:200]}"
    if 300 <= status < 400:
        return UnexpectedResponse(f"Big Interview redirected {label}", **kwargs)
    if status == 401:
        return AuthenticationError(description, **kwargs)
    if status == 403:
        return PermissionDenied(description, **kwargs)
    if status == 404:
        return NotFound(description, **kwargs)
    if status == 422:
        return ValidationError(description, **kwargs)
    if status in (429, 503):
        kwargs["retry_after"] = parse_retry_after(response.headers.get("Retry-After"))
    if status == 429:
        return RateLimited(description, **kwargs)
    if status >= 500:
        return ServerError(description, **kwargs)
    return APIError(description, **kwargs)


@dataclass(frozen=True)
class _Failure:
    """Why a request got no response, and whether sending it again is safe."""

    reason: str
    #: The request may have reached the server (so a non-idempotent call is not re-sent).
    may_have_arrived: bool
    #: Whether trying again can help at all (a TLS or URL error will not heal).
    transient: bool


def _classify(exc: requests.RequestException) -> _Failure:
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return _Failure("connection timed out", may_have_arrived=False, transient=True)
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return _Failure("read timed out", may_have_arrived=True, transient=True)
    if isinstance(exc, requests.exceptions.SSLError):
        return _Failure("TLS error", may_have_arrived=False, transient=False)
    if isinstance(exc, requests.ConnectionError):
        if _is_connect_failure(exc):
            return _Failure("connection failed", may_have_arrived=False, transient=True)
        return _Failure("connection broken", may_have_arrived=True, transient=True)
    if isinstance(
        exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError
    ):
        return _Failure("response broken", may_have_arrived=True, transient=True)
    return _Failure(type(exc).__name__, may_have_arrived=False, transient=False)


def _is_connect_failure(exc: requests.ConnectionError) -> bool:
    """Whether the TCP connection itself failed (refused, DNS), so nothing was sent."""
    reason: Any = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    return isinstance(reason, NewConnectionError | ConnectionRefusedError)


# -- deadlines ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Deadline:
    """When a call must be over (on the monotonic clock), and the budget it came from."""

    at: float
    seconds: float

    @classmethod
    def after(cls, seconds: float) -> _Deadline:
        return cls(time.monotonic() + seconds, seconds)

    def remaining(self) -> float:
        return self.at - time.monotonic()


#: Taken whenever a connection changes hands or a watchdog fires, so a watchdog can never
#: cut a connection that another request has checked out meanwhile.
_WATCH_LOCK = threading.Lock()
#: Connections checked out of a pool by an attempt that has a watchdog, and that watchdog.
_WATCHED: weakref.WeakKeyDictionary[_WatchedHTTPConnection, _Watchdog] = weakref.WeakKeyDictionary()
#: The watchdog of the attempt the current thread is making, if any.
_current = threading.local()


class _Watchdog:
    """Shuts down the socket of an attempt's connection when the attempt's time is up.

    Read timeouts apply to each socket read, so a server that sends a byte at a time
    never trips them; a second thread with a timer is what bounds the wall-clock time
    (urllib3's documentation recommends exactly that). The watchdog only reaches the
    connections its own thread checked out of the pool and has not returned: the pools
    below hand connections over under ``_WATCH_LOCK``, and once the attempt is over
    (``__exit__``) the watchdog never fires.
    """

    def __init__(self, seconds: float) -> None:
        self.fired = False
        self._over = False
        self._timer = threading.Timer(max(0.0, seconds), self._fire)
        self._timer.daemon = True

    def __enter__(self) -> _Watchdog:
        _current.watchdog = self
        self._timer.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._timer.cancel()
        with _WATCH_LOCK:
            self._over = True
        _current.watchdog = None

    def _fire(self) -> None:
        with _WATCH_LOCK:
            if self._over:
                return
            self.fired = True
            for connection, owner in list(_WATCHED.items()):
                sock = connection.watched_socket if owner is self else None
                if sock is not None:
                    # The plain socket's shutdown, also under TLS: it wakes the blocked
                    # read in the attempt's thread, which then fails like a dropped
                    # connection; urllib3 discards the connection.
                    with contextlib.suppress(OSError):
                        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _WatchedHTTPConnection(HTTPConnection):
    """A connection that remembers its socket: with ``Connection: close`` http.client
    drops the socket from the connection while the body is still read from it, and the
    watchdog must reach it then too."""

    watched_socket: socket.socket | None = None

    def connect(self) -> None:
        super().connect()
        self.watched_socket = self.sock


class _WatchedHTTPSConnection(_WatchedHTTPConnection, HTTPSConnection):
    """The same, over TLS."""


def _checked_out(connection: Any) -> Any:
    watchdog = getattr(_current, "watchdog", None)
    with _WATCH_LOCK:
        if watchdog is None:
            _WATCHED.pop(connection, None)
        else:
            _WATCHED[connection] = watchdog
    return connection


class _WatchedHTTPConnectionPool(HTTPConnectionPool):
    """A pool that tells ``_Watchdog`` which connection an attempt is using, and when the
    connection is back in the pool (and so no longer the attempt's)."""

    ConnectionCls = _WatchedHTTPConnection

    def _get_conn(self, timeout: float | None = None) -> Any:
        return _checked_out(super()._get_conn(timeout))

    def _put_conn(self, conn: Any) -> None:
        if conn is not None:
            with _WATCH_LOCK:
                _WATCHED.pop(conn, None)
        super()._put_conn(conn)


class _WatchedHTTPSConnectionPool(_WatchedHTTPConnectionPool, HTTPSConnectionPool):
    """The same, over TLS."""

    ConnectionCls = _WatchedHTTPSConnection


_WATCHED_POOL_CLASSES = {"http": _WatchedHTTPConnectionPool, "https": _WatchedHTTPSConnectionPool}


class _WatchedAdapter(HTTPAdapter):
    """requests' adapter with the watched pools, direct and through an HTTP(S) proxy (a
    SOCKS proxy brings its own pools and keeps them: timeouts alone bound it)."""

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOL_CLASSES

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if manager.pool_classes_by_scheme is default_pool_classes:
            manager.pool_classes_by_scheme = _WATCHED_POOL_CLASSES
        return manager


# -- the client --------------------------------------------------------------------------


class BigInterviewClient:
    """One organisation's Partner API, over one pooled ``requests.Session`` that keeps no
    cookies (so the process-wide client is shared by threads safely).

    Every request carries the connect and read timeouts. Retries use exponential backoff
    with full jitter on connection errors, timeouts, 429 and 502/503/504 (honouring
    ``Retry-After`` on a 429 or 503), at most ``max_retries`` times. The loop is written
    here rather than left to urllib3's ``Retry`` because the policy differs per endpoint:
    anonymous creation is not idempotent, so once the request may have reached the server
    (a read timeout, a broken connection, a 502/503/504) it is never re-sent; only a
    refused connection and a 429 are. A ``Retry-After`` longer than ``backoff_max``
    raises the error (with its ``retry_after``) at once instead of blocking a web request.

    Each call ends within ``request_deadline`` seconds, all attempts and waits included,
    or sooner inside a ``deadline()`` block: a wait that would pass the deadline raises
    the error instead, each attempt's timeouts are capped at the time left, and a
    watchdog thread cuts off a response still trickling in when the time is up, raising
    ``TransportError`` ("deadline of N s passed").

    ``throttle`` (optional) is called before every attempt; the sync tasks pass a shared
    rate limiter there. ``sleep`` is the pause between attempts (tests pass a recorder).
    """

    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        max_retries: int = 3,
        backoff: float = 0.5,
        backoff_max: float = 30.0,
        request_deadline: float = 30.0,
        throttle: Callable[[], None] | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not base_url or urlsplit(base_url).scheme not in ("http", "https"):
            raise ValueError("base_url must be an http(s) origin.")
        if not api_key:
            raise ValueError("api_key is required.")
        if not (connect_timeout > 0 and read_timeout > 0 and request_deadline > 0):
            raise ValueError("Timeouts must be positive numbers of seconds.")
        self.base_url = base_url.rstrip("/")
        self._api_key = Secret(api_key)
        self.timeout = (float(connect_timeout), float(read_timeout))
        self.max_retries = max(0, int(max_retries))
        self.backoff = max(0.0, float(backoff))
        self.backoff_max = max(0.0, float(backoff_max))
        self.request_deadline = float(request_deadline)
        self.throttle = throttle
        self.sleep = sleep
        self.session = session or requests.Session()
        # Our own retry loop decides; urllib3 must not re-send anything behind its back.
        adapter = _WatchedAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        # Every call is authenticated by the key alone: a cookie set on one user's call
        # must never ride along on the next. With no cookie jar to write, nothing in the
        # session changes after this point, so one client can serve many threads (the
        # connection pool itself is thread-safe).
        self.session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))
        # The deadline() budget of each thread: the client is shared by threads.
        self._budget = threading.local()

    def __repr__(self) -> str:
        return f"<BigInterviewClient base_url={self.base_url!r}>"

    def __enter__(self) -> BigInterviewClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @classmethod
    def from_settings(cls, **overrides: Any) -> BigInterviewClient:
        """A client configured from ``settings.BIGINTERVIEW`` (read now, not at import)."""
        options = dict(_options_from_settings())
        options.update(overrides)
        return cls(**options)

    def close(self) -> None:
        """Close the pooled connections."""
        self.session.close()

    @contextlib.contextmanager
    def deadline(self, seconds: float) -> Iterator[None]:
        """One time budget for every call this thread makes through this client inside
        the block, their retries and waits included: each ends by ``seconds`` after
        entering the block (``TransportError`` once the time is up), or by its own
        ``request_deadline`` if that comes first. For a visitor who is waiting (a practice
        click), whose proxy gives up after about 30 s however many calls there were.
        A nested block never extends the outer one.
        """
        if not seconds > 0:
            raise ValueError("A deadline must be a positive number of seconds.")
        outer: _Deadline | None = getattr(self._budget, "deadline", None)
        budget = _Deadline.after(float(seconds))
        self._budget.deadline = outer if outer is not None and outer.at <= budget.at else budget
        try:
            yield
        finally:
            self._budget.deadline = outer

    # -- endpoints ---------------------------------------------------------------------

    def create_or_refresh_user(
        self, partner_id: str, *, first_name: str, last_name: str, email: str
    ) -> UserResult:
        """``POST /api/users/{partner_id}``: create the user (201) or refresh its token (200).

        Idempotent, so it is retried like a read. The profile is required on creation and
        ignored by the service for an existing user.
        """
        validate_partner_id(partner_id)
        label = "create_or_refresh_user"
        response = self._request(
            "POST",
            f"/api/users/{quote(partner_id, safe='')}",
            label=label,
            json={"first_name": first_name, "last_name": last_name, "email": email},
        )
        if response.status_code not in (200, 201):
            raise UnexpectedResponse(
                "Unexpected success status for create_or_refresh_user",
                status=response.status_code,
            )
        result = self._parse(
            response,
            label,
            lambda body: UserResult.from_api(body, created=response.status_code == 201),
        )
        if result.partner_id != partner_id:
            # A token for another user must never be used to log this one in.
            raise UnexpectedResponse(
                "Big Interview answered create_or_refresh_user for another partner_id",
                status=response.status_code,
            )
        return result

    def create_anonymous_user(self) -> UserResult:
        """``POST /api/users/anonymous``: a new 24-hour account with a generated id.

        Not idempotent (each call creates an account), so it is never re-sent once it
        may have reached the server; only refused connections and 429 are retried.
        """
        response = self._request(
            "POST", "/api/users/anonymous", label="create_anonymous_user", idempotent=False
        )
        if response.status_code not in (200, 201):
            raise UnexpectedResponse(
                "Unexpected success status for create_anonymous_user",
                status=response.status_code,
            )
        return self._parse(
            response, "create_anonymous_user", lambda body: UserResult.from_api(body, created=True)
        )

    def list_tracks(self, partner_id: str) -> list[Track]:
        """``GET /api/users/{partner_id}/tracks``; ``NotFound`` if the user does not exist."""
        validate_partner_id(partner_id)
        response = self._request(
            "GET", f"/api/users/{quote(partner_id, safe='')}/tracks", label="list_tracks"
        )
        return self._parse(
            response,
            "list_tracks",
            lambda body: [Track.from_api(track) for track in _require(body, "tracks", list)],
        )

    def list_interviews(self, partner_id: str) -> list[Interview]:
        """``GET /api/users/{partner_id}/interviews``, most recently updated first."""
        validate_partner_id(partner_id)
        response = self._request(
            "GET",
            f"/api/users/{quote(partner_id, safe='')}/interviews",
            label="list_interviews",
        )
        return self._parse(
            response,
            "list_interviews",
            lambda body: [Interview.from_api(obj) for obj in _require(body, "interviews", list)],
        )

    # -- transport ---------------------------------------------------------------------

    def _parse(self, response: requests.Response, label: str, parse: Callable[[Any], _T]) -> _T:
        """``parse(body)``; a body that is not JSON, is nested too deeply or is not the
        documented shape raises ``UnexpectedResponse`` carrying the status (and nothing of
        the body)."""
        problem = None
        try:
            body = _load_json(response, f"the response to {label}", (self._api_key,))
        except JSONTooDeep:
            body, problem = None, f"JSON nested more than {MAX_JSON_DEPTH} levels deep"
        except ValueError:
            body, problem = None, "a body that is not JSON"
        if problem is not None:
            raise UnexpectedResponse(
                f"Big Interview answered {label} with {problem}", status=response.status_code
            )
        try:
            return parse(body)
        except UnexpectedResponse as exc:
            exc.status = response.status_code
            raise

    def _backoff_delay(self, attempt: int) -> float:
        # Full jitter: a random point in [0, backoff * 2**attempt], capped at backoff_max.
        return random.uniform(0, min(self.backoff_max, self.backoff * (2**attempt)))

    def _call_deadline(self) -> _Deadline:
        """This call's own deadline, or the thread's ``deadline()`` budget if sooner."""
        own = _Deadline.after(self.request_deadline)
        budget: _Deadline | None = getattr(self._budget, "deadline", None)
        return budget if budget is not None and budget.at < own.at else own

    def _send(
        self, method: str, url: str, json: Any, deadline: _Deadline
    ) -> tuple[requests.Response | None, _Failure | None]:
        remaining = deadline.remaining()
        connect_timeout, read_timeout = self.timeout
        response: requests.Response | None = None
        failure: _Failure | None = None
        with _Watchdog(remaining) as watchdog:
            try:
                response = self.session.request(
                    method,
                    url,
                    json=json,
                    headers={"Authorization": self._api_key},
                    timeout=(min(connect_timeout, remaining), min(read_timeout, remaining)),
                    allow_redirects=False,
                )
            except requests.RequestException as exc:
                # Only a summary leaves this block: the exception holds the request headers.
                failure = _classify(exc)
        if failure is not None and (watchdog.fired or deadline.remaining() <= 0):
            # Cut off by the watchdog, or a timeout capped at the time that was left.
            failure = replace(failure, reason=_deadline_passed(deadline))
        return response, failure

    def _request(
        self,
        method: str,
        path: str,
        *,
        label: str,
        idempotent: bool = True,
        json: Any = None,
    ) -> requests.Response:
        url = f"{self.base_url}{path}"
        deadline = self._call_deadline()
        attempt = 0
        while True:
            if self.throttle is not None:
                self.throttle()
            if deadline.remaining() <= 0:
                logger.info("Big Interview %s not attempted: %s", label, _deadline_passed(deadline))
                raise TransportError(f"Could not complete {label}: {_deadline_passed(deadline)}")
            response, failure = self._send(method, url, json, deadline)
            retry_after: float | None = None
            if response is not None:
                if response.status_code < 300:
                    return response
                error: APIError = error_from_response(response, label, secrets=(self._api_key,))
                status = response.status_code
                response.close()
                retryable = status in RETRY_STATUSES and (idempotent or status == 429)
                retry_after = error.retry_after
                if retry_after is not None and retry_after > self.backoff_max:
                    retryable = False
                outcome = f"HTTP {status}"
            else:
                assert failure is not None
                error = TransportError(f"Could not complete {label}: {failure.reason}")
                retryable = failure.transient and (idempotent or not failure.may_have_arrived)
                outcome = failure.reason
            if not retryable or attempt >= self.max_retries:
                logger.info("Big Interview %s failed: %s (attempt %d)", label, outcome, attempt + 1)
                raise error
            delay = retry_after if retry_after is not None else self._backoff_delay(attempt)
            if delay >= deadline.remaining():
                logger.info(
                    "Big Interview %s failed: %s (attempt %d); no time left to retry before "
                    "the deadline of %g s",
                    label,
                    outcome,
                    attempt + 1,
                    deadline.seconds,
                )
                raise error
            logger.warning(
                "Big Interview %s: %s; retry %d of %d in %.2fs",
                label,
                outcome,
                attempt + 1,
                self.max_retries,
                delay,
            )
            self.sleep(delay)
            attempt += 1


def _deadline_passed(deadline: _Deadline) -> str:
    return f"deadline of {deadline.seconds:g} s passed"


def _options_from_settings() -> tuple[tuple[str, Any], ...]:
    from .conf import app_settings

    return (
        ("base_url", app_settings.BASE_URL),
        ("api_key", Secret(app_settings.API_KEY)),
        ("connect_timeout", float(app_settings.CONNECT_TIMEOUT)),
        ("read_timeout", float(app_settings.READ_TIMEOUT)),
        ("max_retries", int(app_settings.MAX_RETRIES)),
        ("backoff", float(app_settings.RETRY_BACKOFF)),
        ("backoff_max", float(app_settings.RETRY_BACKOFF_MAX)),
        ("request_deadline", float(app_settings.REQUEST_DEADLINE)),
    )


@functools.lru_cache(maxsize=8)
def _cached_client(options: tuple[tuple[str, Any], ...]) -> BigInterviewClient:
    return BigInterviewClient(**dict(options))


def get_client(**overrides: Any) -> BigInterviewClient:
    """The process-wide client for the current settings (pooled connections are reused).

    Keyed on the settings values (and ``overrides`` of constructor options), so
    ``override_settings`` yields a matching client and a changed key never reuses the old
    one. Raises ``MissingSetting`` if BASE_URL or API_KEY is not configured.
    """
    options = dict(_options_from_settings())
    options.update(overrides)
    return _cached_client(tuple(sorted(options.items())))
