"""HTTP client for the Big Interview Partner API: its endpoints and the retry loop.

No ORM and no Django request in here: the client can be used on its own in a script::

    with BigInterviewClient(base_url="https://acme.biginterview.com", api_key="...") as client:
        user = client.create_or_refresh_user("abc123", first_name="A", last_name="B",
                                             email="a@b.c")

This module holds ``BigInterviewClient`` and the process-wide factory ``get_client``,
which builds it from ``BIGINTERVIEW`` and builds it again when those settings change.
Results are the typed dataclasses of ``api_types`` (aware UTC datetimes, progress as
``Decimal``); errors raise the tree in ``exceptions.py``, mapped from responses by
``api_errors``; ``transport`` enforces each call's deadline.
The names callers used before those modules split off are importable from here still.

No exception or log line from here carries the API key or an SSO token: exceptions are
built from the status and the parsed error body only (with the key redacted should the
service echo it), and are raised outside ``except`` blocks so no ``requests`` exception
(whose ``request`` holds the ``Authorization`` header, whose JSON error holds the body) is
chained to them.

Odd data never gets further than here: a NUL character (which PostgreSQL cannot store) is
removed from every JSON body and logged, JSON nested deeper than ``MAX_JSON_DEPTH`` and
dates Python cannot hold raise ``UnexpectedResponse``. Every call ends by a deadline, retries
and waits included (see ``BigInterviewClient``).
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from http.cookiejar import DefaultCookiePolicy
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

import requests

from . import __version__
from .api_errors import (
    REDACTED,
    Failure,
    classify,
    error_from_response,
    load_json,
    parse_retry_after,
)
from .api_types import (
    FIRST_YEAR,
    LAST_YEAR,
    MAX_JSON_DEPTH,
    Interview,
    Secret,
    SSOToken,
    Track,
    TrackStep,
    UserResult,
    clean_json,
    describe_paths,
    parse_datetime,
    require,
)
from .conf import app_settings, cleared_on_setting_change
from .exceptions import APIError, JSONTooDeep, TransportError, UnexpectedResponse
from .transport import Deadline, Watchdog, WatchedAdapter
from .validators import validate_partner_id

__all__ = [
    "FIRST_YEAR",
    "LAST_YEAR",
    "MAX_JSON_DEPTH",
    "REDACTED",
    "RETRY_STATUSES",
    "USER_AGENT",
    "BigInterviewClient",
    "Interview",
    "SSOToken",
    "Secret",
    "Track",
    "TrackStep",
    "UserResult",
    "clean_json",
    "describe_paths",
    "error_from_response",
    "get_client",
    "options_from_settings",
    "parse_datetime",
    "parse_retry_after",
]

logger = logging.getLogger(__name__)

USER_AGENT = f"django-biginterview/{__version__} python-requests/{requests.__version__}"

#: Statuses after which a request that is safe to repeat is retried.
RETRY_STATUSES = frozenset({429, 502, 503, 504})

_T = TypeVar("_T")


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
        adapter = WatchedAdapter(pool_connections=4, pool_maxsize=32, max_retries=0)
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
        options = dict(options_from_settings())
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
        outer: Deadline | None = getattr(self._budget, "deadline", None)
        budget = Deadline.after(float(seconds))
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
            lambda body: [Track.from_api(track) for track in require(body, "tracks", list)],
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
            lambda body: [Interview.from_api(obj) for obj in require(body, "interviews", list)],
        )

    # -- transport ---------------------------------------------------------------------

    def _parse(self, response: requests.Response, label: str, parse: Callable[[Any], _T]) -> _T:
        """``parse(body)``; a body that is not JSON, is nested too deeply or is not the
        documented shape raises ``UnexpectedResponse`` carrying the status (and nothing of
        the body)."""
        problem = None
        try:
            body = load_json(response, f"the response to {label}", (self._api_key,))
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

    def _call_deadline(self) -> Deadline:
        """This call's own deadline, or the thread's ``deadline()`` budget if sooner."""
        own = Deadline.after(self.request_deadline)
        budget: Deadline | None = getattr(self._budget, "deadline", None)
        return budget if budget is not None and budget.at < own.at else own

    def _send(
        self, method: str, url: str, json: Any, deadline: Deadline
    ) -> tuple[requests.Response | None, Failure | None]:
        remaining = deadline.remaining()
        connect_timeout, read_timeout = self.timeout
        response: requests.Response | None = None
        failure: Failure | None = None
        with Watchdog(remaining) as watchdog:
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
                failure = classify(exc)
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


def _deadline_passed(deadline: Deadline) -> str:
    return f"deadline of {deadline.seconds:g} s passed"


def options_from_settings() -> tuple[tuple[str, Any], ...]:
    """The ``BigInterviewClient`` options ``BIGINTERVIEW`` gives, as a hashable key for
    the caches of built clients. Raises ``MissingSetting`` if BASE_URL or API_KEY is not
    configured."""
    return (
        ("base_url", app_settings.BASE_URL),
        ("api_key", Secret(app_settings.API_KEY)),
        ("connect_timeout", app_settings.CONNECT_TIMEOUT),
        ("read_timeout", app_settings.READ_TIMEOUT),
        ("max_retries", app_settings.MAX_RETRIES),
        ("backoff", app_settings.RETRY_BACKOFF),
        ("backoff_max", app_settings.RETRY_BACKOFF_MAX),
        ("request_deadline", app_settings.REQUEST_DEADLINE),
    )


@cleared_on_setting_change(maxsize=8)
def _cached_client(options: tuple[tuple[str, Any], ...]) -> BigInterviewClient:
    return BigInterviewClient(**dict(options))


def get_client(**overrides: Any) -> BigInterviewClient:
    """The process-wide client for the current settings (pooled connections are reused).

    Keyed on the settings values (and ``overrides`` of constructor options), so
    ``override_settings`` yields a matching client and a changed key never reuses the old
    one. Raises ``MissingSetting`` if BASE_URL or API_KEY is not configured.
    """
    options = dict(options_from_settings())
    options.update(overrides)
    return _cached_client(tuple(sorted(options.items())))
