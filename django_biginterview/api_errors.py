"""How an answer from Big Interview that is not a result becomes an exception: an error
status maps to the tree in ``exceptions.py`` (with any secret the service echoed back
redacted), and a request that got no response to a ``Failure`` that says whether sending
it again is safe. ``load_json`` reads every body, results' too.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import requests
from urllib3.exceptions import NewConnectionError

from .api_types import MAX_JSON_DEPTH, clean_json, describe_paths
from .exceptions import (
    APIError,
    AttributesRefused,
    AuthenticationError,
    Forbidden,
    JSONTooDeep,
    NotFound,
    RateLimited,
    ServerError,
    UnexpectedResponse,
)

# The client's logger, as before these helpers left client.py: hosts' LOGGING may name it.
logger = logging.getLogger("django_biginterview.client")

#: Replaces a secret the service echoed back in an error body.
REDACTED = "[redacted]"


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


def load_json(response: requests.Response, what: str, secrets: tuple[str, ...] = ()) -> Any:
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
        body = load_json(response, f"the error response to {label}", secrets)
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
        return Forbidden(description, **kwargs)
    if status == 404:
        return NotFound(description, **kwargs)
    if status == 422:
        return AttributesRefused(description, **kwargs)
    if status in (429, 503):
        kwargs["retry_after"] = parse_retry_after(response.headers.get("Retry-After"))
    if status == 429:
        return RateLimited(description, **kwargs)
    if status >= 500:
        return ServerError(description, **kwargs)
    return APIError(description, **kwargs)


@dataclass(frozen=True)
class Failure:
    """Why a request got no response, and whether sending it again is safe."""

    reason: str
    #: The request may have reached the server (so a non-idempotent call is not re-sent).
    may_have_arrived: bool
    #: Whether trying again can help at all (a TLS or URL error will not heal).
    transient: bool


def classify(exc: requests.RequestException) -> Failure:
    """Why ``exc`` left a request without a response, and what that means for a retry."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return Failure("connection timed out", may_have_arrived=False, transient=True)
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return Failure("read timed out", may_have_arrived=True, transient=True)
    if isinstance(exc, requests.exceptions.SSLError):
        return Failure("TLS error", may_have_arrived=False, transient=False)
    if isinstance(exc, requests.ConnectionError):
        if _is_connect_failure(exc):
            return Failure("connection failed", may_have_arrived=False, transient=True)
        return Failure("connection broken", may_have_arrived=True, transient=True)
    if isinstance(
        exc, requests.exceptions.ChunkedEncodingError | requests.exceptions.ContentDecodingError
    ):
        return Failure("response broken", may_have_arrived=True, transient=True)
    return Failure(type(exc).__name__, may_have_arrived=False, transient=False)


def _is_connect_failure(exc: requests.ConnectionError) -> bool:
    """Whether the TCP connection itself failed (refused, DNS), so nothing was sent."""
    reason: Any = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    return isinstance(reason, NewConnectionError | ConnectionRefusedError)
