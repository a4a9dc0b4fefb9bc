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
"""

from __future__ import annotations

import functools
import logging
import math
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from http.cookiejar import DefaultCookiePolicy
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from . import __version__
from .exceptions import (
    APIError,
    AuthenticationError,
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

_T = TypeVar("_T")


# -- parsing helpers ---------------------------------------------------------------------


def parse_datetime(value: Any) -> datetime | None:
    """Parse the API's ISO 8601 timestamps (``2015-05-18T16:37:13.000Z``) as aware UTC.

    ``None`` or ``""`` give ``None``; anything else that is not a date raises
    :class:`UnexpectedResponse`. A timestamp without an offset is taken as UTC.
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
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


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


@dataclass(frozen=True)
class SSOToken:
    """A 48-hour SSO login token. Its repr hides the token itself."""

    token: str = field(repr=False)
    expires_at: datetime


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
        expires_at = parse_datetime(_require(token, "expires_at", str))
        if expires_at is None:
            raise UnexpectedResponse("Response has an empty token expiry.")
        partner_id = _require(user, "partner_id", str)
        if not is_valid_partner_id(partner_id):
            raise UnexpectedResponse("Response has a partner_id that breaks the documented rules.")
        return cls(
            partner_id=partner_id,
            anonymous=_optional_bool(user, "anonymous"),
            created_at=parse_datetime(user.get("created_at")),
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
            created_at=parse_datetime(obj.get("created_at")),
            updated_at=parse_datetime(obj.get("updated_at")),
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


def _error_body(response: requests.Response) -> tuple[str | None, Any]:
    """``(type, message)`` from the documented ``{"error": {...}}`` body, if it has it.

    Copes with empty and non-JSON bodies (proxies, 502 pages) and with the near misses
    seen behind some gateways (``{"error": "text"}``, ``{"message": "text"}``).
    """
    try:
        body = response.json()
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
    error_type, error_message = _error_body(response)
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
        throttle: Callable[[], None] | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not base_url or urlsplit(base_url).scheme not in ("http", "https"):
            raise ValueError("base_url must be an http(s) origin.")
        if not api_key:
            raise ValueError("api_key is required.")
        if not (connect_timeout > 0 and read_timeout > 0):
            raise ValueError("Timeouts must be positive numbers of seconds.")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = (float(connect_timeout), float(read_timeout))
        self.max_retries = max(0, int(max_retries))
        self.backoff = max(0.0, float(backoff))
        self.backoff_max = max(0.0, float(backoff_max))
        self.throttle = throttle
        self.sleep = sleep
        self.session = session or requests.Session()
        # Our own retry loop decides; urllib3 must not re-send anything behind its back.
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})
        # Every call is authenticated by the key alone: a cookie set on one user's call
        # must never ride along on the next. With no cookie jar to write, nothing in the
        # session changes after this point, so one client can serve many threads (the
        # connection pool itself is thread-safe).
        self.session.cookies.set_policy(DefaultCookiePolicy(allowed_domains=[]))

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

    # -- endpoints ---------------------------------------------------------------------

    def create_or_refresh_user(
        self, partner_id: str, *, first_name: str, last_name: str, email: str
    ) -> UserResult:
        """``POST /api/users/{partner_id}``: create the user (201) or refresh its token (200).

        Idempotent, so it is retried like a read. The profile is required on creation and
        ignored by the service for an existing user.
        """
        validate_partner_id(partner_id)
        response = self._request(
            "POST",
            f"/api/users/{quote(partner_id, safe='')}",
            label="create_or_refresh_user",
            json={"first_name": first_name, "last_name": last_name, "email": email},
        )
        if response.status_code not in (200, 201):
            raise UnexpectedResponse(
                "Unexpected success status for create_or_refresh_user",
                status=response.status_code,
            )
        result = self._parse(
            response, lambda body: UserResult.from_api(body, created=response.status_code == 201)
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
        return self._parse(response, lambda body: UserResult.from_api(body, created=True))

    def list_tracks(self, partner_id: str) -> list[Track]:
        """``GET /api/users/{partner_id}/tracks``; ``NotFound`` if the user does not exist."""
        validate_partner_id(partner_id)
        response = self._request(
            "GET", f"/api/users/{quote(partner_id, safe='')}/tracks", label="list_tracks"
        )
        return self._parse(
            response,
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
            lambda body: [Interview.from_api(obj) for obj in _require(body, "interviews", list)],
        )

    # -- transport ---------------------------------------------------------------------

    @staticmethod
    def _parse(response: requests.Response, parse: Callable[[Any], _T]) -> _T:
        """``parse(body)``; a body that is not JSON or not the documented shape raises
        ``UnexpectedResponse`` carrying the status (and nothing of the body)."""
        try:
            body = response.json()
            parsed_ok = True
        except ValueError:
            body, parsed_ok = None, False
        if not parsed_ok:
            raise UnexpectedResponse(
                "Big Interview answered with a body that is not JSON", status=response.status_code
            )
        try:
            return parse(body)
        except UnexpectedResponse as exc:
            exc.status = response.status_code
            raise

    def _backoff_delay(self, attempt: int) -> float:
        # Full jitter: a random point in [0, backoff * 2**attempt], capped at backoff_max.
        return random.uniform(0, min(self.backoff_max, self.backoff * (2**attempt)))

    def _send(
        self, method: str, url: str, json: Any
    ) -> tuple[requests.Response | None, _Failure | None]:
        try:
            response = self.session.request(
                method,
                url,
                json=json,
                headers={"Authorization": self._api_key},
                timeout=self.timeout,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            # Only a summary leaves this block: the exception holds the request headers.
            return None, _classify(exc)
        return response, None

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
        attempt = 0
        while True:
            if self.throttle is not None:
                self.throttle()
            response, failure = self._send(method, url, json)
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


def _options_from_settings() -> tuple[tuple[str, Any], ...]:
    from .conf import app_settings

    return (
        ("base_url", app_settings.BASE_URL),
        ("api_key", app_settings.API_KEY),
        ("connect_timeout", float(app_settings.CONNECT_TIMEOUT)),
        ("read_timeout", float(app_settings.READ_TIMEOUT)),
        ("max_retries", int(app_settings.MAX_RETRIES)),
        ("backoff", float(app_settings.RETRY_BACKOFF)),
        ("backoff_max", float(app_settings.RETRY_BACKOFF_MAX)),
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
