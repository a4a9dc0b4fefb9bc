"""HTTP client for the Big Interview Partner API, and nothing else.

No ORM and no Django request in here: the client can be used on its own in a script::

    client = BigInterviewClient(base_url="https://acme.biginterview.com", api_key="...")
    user = client.create_or_refresh_user("abc123", first_name="A", last_name="B", email="a@b.c")

Results are typed dataclasses (aware datetimes, progress as ``Decimal``). Errors raise the
tree in ``exceptions.py``; their messages never contain the API key or an SSO token.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import quote

import requests
from requests.adapters import HTTPAdapter

from . import __version__
from .exceptions import (
    APIError,
    AuthenticationError,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    UnexpectedResponse,
    ValidationError,
)
from .validators import validate_partner_id

logger = logging.getLogger(__name__)

USER_AGENT = f"django-biginterview/{__version__} python-requests/{requests.__version__}"

#: Statuses after which a request that is safe to repeat is retried.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


def parse_datetime(value: Any) -> datetime | None:
    """Parse the API's ISO 8601 timestamps (``2015-05-18T16:37:13.000Z``) as aware UTC."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise UnexpectedResponse(f"Expected an ISO 8601 date, got {type(value).__name__}.")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise UnexpectedResponse("Invalid ISO 8601 date in response.") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


def _require(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if not isinstance(obj, Mapping) or key not in obj:
        raise UnexpectedResponse(f"Response object has no {key!r}.")
    value = obj[key]
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise UnexpectedResponse(f"Response field {key!r} has an unexpected type.")
    return value


@dataclass(frozen=True)
class SSOToken:
    """A 48-hour SSO login token. Its repr hides the token itself."""

    token: str = field(repr=False)
    expires_at: datetime


@dataclass(frozen=True)
class UserResult:
    """A user as returned by the user endpoints; ``created`` is True on 201."""

    partner_id: str
    anonymous: bool
    created_at: datetime | None
    token: SSOToken
    created: bool

    @classmethod
    def from_api(cls, body: Any, *, created: bool) -> UserResult:
        user = _require(body, "user", Mapping)
        token = _require(user, "token", Mapping)
        expires_at = parse_datetime(_require(token, "expires_at", str))
        assert expires_at is not None
        return cls(
            partner_id=_require(user, "partner_id", str),
            anonymous=bool(user.get("anonymous", False)),
            created_at=parse_datetime(user.get("created_at")),
            token=SSOToken(token=_require(token, "token", str), expires_at=expires_at),
            created=created,
        )


@dataclass(frozen=True)
class TrackStep:
    step: int
    title: str
    link: str
    completed: bool

    @classmethod
    def from_api(cls, obj: Any) -> TrackStep:
        return cls(
            step=_require(obj, "step", int),
            title=_require(obj, "title", str),
            link=str(obj.get("link") or ""),
            completed=bool(obj.get("completed", False)),
        )


@dataclass(frozen=True)
class Track:
    """A learning track; the API calls the step list ``tracks``, we call it ``steps``."""

    title: str
    progress: Decimal
    steps: tuple[TrackStep, ...]

    @classmethod
    def from_api(cls, obj: Any) -> Track:
        raw_progress = _require(obj, "progress", (int, float, str))
        try:
            progress = Decimal(str(raw_progress)).quantize(Decimal("0.0001"))
        except InvalidOperation as exc:
            raise UnexpectedResponse("Track progress is not a number.") from exc
        if not Decimal(0) <= progress <= Decimal(1):
            raise UnexpectedResponse("Track progress is outside 0..1.")
        steps = obj.get("tracks") or []
        if not isinstance(steps, list):
            raise UnexpectedResponse("Track steps are not a list.")
        return cls(
            title=_require(obj, "title", str),
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
        try:
            remote_id = int(remote_id)
        except ValueError as exc:
            raise UnexpectedResponse("Interview id is not an integer.") from exc
        links = obj.get("links") or {}
        if not isinstance(links, Mapping):
            raise UnexpectedResponse("Interview links are not an object.")
        return cls(
            id=remote_id,
            title=str(obj.get("title") or ""),
            interviewer_name=str(obj.get("interviewer_name") or ""),
            category=str(obj.get("category") or ""),
            completed=bool(obj.get("completed", False)),
            created_at=parse_datetime(obj.get("created_at")),
            updated_at=parse_datetime(obj.get("updated_at")),
            review_path=str(links.get("review") or ""),
            retake_path=str(links.get("retake") or ""),
            raw=dict(obj),
        )


def _retry_after_seconds(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


def _error_from_response(response: requests.Response, path_label: str) -> APIError:
    """Map an error response to the exception tree; copes with empty or non-JSON bodies."""
    error_type: str | None = None
    error_message: Any = None
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping) and isinstance(body.get("error"), Mapping):
        error_type = body["error"].get("type")
        error_type = str(error_type) if error_type is not None else None
        error_message = body["error"].get("message")
    status = response.status_code
    kwargs: dict[str, Any] = {
        "status": status,
        "error_type": error_type,
        "error_message": error_message,
    }
    description = f"Big Interview refused {path_label}"
    if isinstance(error_message, str) and error_message:
        description = f"{description}: {error_message[:200]}"
    if status in (401, 403):
        return AuthenticationError(description, **kwargs)
    if status == 404:
        return NotFound(description, **kwargs)
    if status == 422:
        return ValidationError(description, **kwargs)
    if status == 429:
        return RateLimited(description, retry_after=_retry_after_seconds(response), **kwargs)
    if status >= 500:
        return ServerError(description, **kwargs)
    return APIError(description, **kwargs)


class BigInterviewClient:
    """One organisation's Partner API, over one pooled ``requests.Session``.

    ``throttle`` (optional) is called before every request; the sync tasks pass a shared
    rate limiter there. Retries use exponential backoff with full jitter on connection
    errors, 429 (honouring ``Retry-After`` up to ``backoff_max``) and 502/503/504. The
    retry loop is written here rather than delegated to urllib3's ``Retry`` because the
    policy differs per endpoint (anonymous creation is not idempotent) and a long
    ``Retry-After`` must surface as ``RateLimited`` instead of blocking a web request.
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
    ) -> None:
        if not base_url:
            raise ValueError("base_url is required.")
        if not api_key:
            raise ValueError("api_key is required.")
        self.base_url = base_url.rstrip("/")
        self._api_key = api_key
        self.timeout = (connect_timeout, read_timeout)
        self.max_retries = max(0, int(max_retries))
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.throttle = throttle
        self.session = session or requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.session.headers.update({"Accept": "application/json", "User-Agent": USER_AGENT})

    def __repr__(self) -> str:
        return f"<BigInterviewClient base_url={self.base_url!r}>"

    @classmethod
    def from_settings(cls, **overrides: Any) -> BigInterviewClient:
        """A client configured from ``settings.BIGINTERVIEW`` (read now, not at import)."""
        options = dict(_options_from_settings())
        options.update(overrides)
        return cls(**options)

    def close(self) -> None:
        self.session.close()

    # -- endpoints ---------------------------------------------------------------------

    def create_or_refresh_user(
        self, partner_id: str, *, first_name: str, last_name: str, email: str
    ) -> UserResult:
        """``POST /api/users/{partner_id}``: create the user, or refresh its token (200)."""
        validate_partner_id(partner_id)
        response = self._request(
            "POST",
            f"/api/users/{quote(partner_id, safe='')}",
            label="create_or_refresh_user",
            json={"first_name": first_name, "last_name": last_name, "email": email},
            idempotent=True,
        )
        if response.status_code not in (200, 201):
            raise UnexpectedResponse(
                "Unexpected success status for create_or_refresh_user",
                status=response.status_code,
            )
        return UserResult.from_api(self._json(response), created=response.status_code == 201)

    def create_anonymous_user(self) -> UserResult:
        """``POST /api/users/anonymous``. Not idempotent: never re-sent once it may have
        reached the server; only refused connections and 429 are retried."""
        response = self._request(
            "POST", "/api/users/anonymous", label="create_anonymous_user", idempotent=False
        )
        return UserResult.from_api(self._json(response), created=True)

    def list_tracks(self, partner_id: str) -> list[Track]:
        """``GET /api/users/{partner_id}/tracks``; ``NotFound`` if the user does not exist."""
        validate_partner_id(partner_id)
        response = self._request(
            "GET", f"/api/users/{quote(partner_id, safe='')}/tracks", label="list_tracks"
        )
        tracks = _require(self._json(response), "tracks", list)
        return [Track.from_api(track) for track in tracks]

    def list_interviews(self, partner_id: str) -> list[Interview]:
        """``GET /api/users/{partner_id}/interviews``, most recently updated first."""
        validate_partner_id(partner_id)
        response = self._request(
            "GET",
            f"/api/users/{quote(partner_id, safe='')}/interviews",
            label="list_interviews",
        )
        interviews = _require(self._json(response), "interviews", list)
        return [Interview.from_api(obj) for obj in interviews]

    # -- transport ---------------------------------------------------------------------

    @staticmethod
    def _json(response: requests.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise UnexpectedResponse(
                "Big Interview answered with a body that is not JSON", status=response.status_code
            ) from exc

    def _sleep_before_retry(self, attempt: int, retry_after: float | None) -> None:
        if retry_after is not None:
            delay = retry_after
        else:
            # Full jitter: a random point in [0, backoff * 2**attempt], capped.
            delay = random.uniform(0, min(self.backoff_max, self.backoff * (2**attempt)))
        time.sleep(delay)

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
            try:
                response = self.session.request(
                    method,
                    url,
                    json=json,
                    headers={"Authorization": self._api_key},
                    timeout=self.timeout,
                )
            except requests.ConnectionError as exc:
                # A refused connection never reached the server; a read timeout or a
                # reset after sending may have, which matters for non-idempotent calls.
                never_sent = isinstance(exc, requests.exceptions.ConnectTimeout) or (
                    not isinstance(exc, requests.exceptions.ReadTimeout)
                    and _is_connect_failure(exc)
                )
                error = TransportError(f"Could not reach Big Interview for {label}")
                if attempt < self.max_retries and (idempotent or never_sent):
                    logger.warning("Big Interview %s: %s; retrying", label, type(exc).__name__)
                    self._sleep_before_retry(attempt, None)
                    attempt += 1
                    continue
                raise error from None
            except requests.Timeout:
                if attempt < self.max_retries and idempotent:
                    logger.warning("Big Interview %s timed out; retrying", label)
                    self._sleep_before_retry(attempt, None)
                    attempt += 1
                    continue
                raise TransportError(f"Big Interview timed out for {label}") from None
            except requests.RequestException as exc:
                raise TransportError(
                    f"Request to Big Interview failed for {label}: {type(exc).__name__}"
                ) from None

            if response.status_code < 400:
                return response
            error = _error_from_response(response, label)
            retryable = response.status_code in RETRY_STATUSES and (
                idempotent or response.status_code == 429
            )
            if retryable and attempt < self.max_retries:
                retry_after = getattr(error, "retry_after", None)
                if retry_after is not None and retry_after > self.backoff_max:
                    raise error
                logger.warning(
                    "Big Interview %s answered %s; retrying", label, response.status_code
                )
                self._sleep_before_retry(attempt, retry_after)
                attempt += 1
                continue
            raise error


def _is_connect_failure(exc: requests.ConnectionError) -> bool:
    """Whether the connection itself failed (so the request was never sent)."""
    from urllib3.exceptions import NewConnectionError

    reason: Any = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, NewConnectionError | ConnectionRefusedError)


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


def get_client() -> BigInterviewClient:
    """The process-wide client for the current settings (pooled connections are reused).

    Keyed on the settings values, so ``override_settings`` yields a matching client.
    """
    return _cached_client(_options_from_settings())
