"""The package's one exception tree.

Callers catch by meaning (``NotFound``, ``RateLimited``), never by parsing a message. No
name here shadows Django's or DRF's (``PermissionDenied`` and ``ValidationError`` were
renamed ``Forbidden`` and ``AttributesRefused``; the old names still import, with a
``DeprecationWarning``, until the next release).
No exception here ever carries the API key, a webhook key or an SSO token: the client
builds them from the response status and parsed error body only.
"""

from __future__ import annotations

import warnings
from typing import Any

from django.core.exceptions import ImproperlyConfigured


def describe_error(exc: BaseException, limit: int = 500) -> str:
    """``Type: message``, cut to ``limit``: what a row stores as its last error.

    Safe to store and show because no exception this package raises carries a key or a
    token, and the client never chains the ``requests`` exception (which holds headers).
    """
    message = str(exc).strip()
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text[:limit]


class BigInterviewError(Exception):
    """Base class of every error this package raises on purpose."""


class MissingSetting(BigInterviewError, ImproperlyConfigured):
    """A required ``BIGINTERVIEW`` key is not configured; the message names the key."""


class InvalidSetting(BigInterviewError, ImproperlyConfigured):
    """A ``BIGINTERVIEW`` key holds a value of the wrong kind; the message names the key."""


class InvalidPartnerId(BigInterviewError, ValueError):
    """A ``partner_id`` breaks the documented rules (``[0-9A-Za-z_-]``, 1 to 64 chars)."""


class APIError(BigInterviewError):
    """Big Interview answered with an error, or could not be reached.

    ``status`` is the HTTP status (``None`` when no response arrived), ``error_type`` and
    ``error_message`` come from the documented ``{"error": {"type", "message"}}`` body when
    the body had that shape; ``retry_after`` is the seconds Big Interview asked us to wait
    (``Retry-After`` on a 429 or 503), if any.
    """

    #: Whether retrying the same request later may succeed.
    transient: bool = False

    def __init__(
        self,
        description: str,
        *,
        status: int | None = None,
        error_type: str | None = None,
        error_message: Any = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(description)
        self.description = description
        self.status = status
        self.error_type = error_type
        self.error_message = error_message
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return f"{type(self).__name__}(status={self.status!r}, error_type={self.error_type!r})"

    def __str__(self) -> str:
        parts = [self.description]
        if self.status is not None:
            parts.append(f"(HTTP {self.status})")
        if self.error_type:
            parts.append(f"[{self.error_type}]")
        return " ".join(parts)


class TransportError(APIError):
    """No usable response: connection refused, DNS failure, timeout, broken stream."""

    transient = True


class AuthenticationError(APIError):
    """401: the API key is missing, wrong or revoked."""


class Forbidden(APIError):
    """403: the key is accepted but this request is not allowed, e.g. anonymous users
    when Big Interview has not enabled them for the organisation."""


class NotFound(APIError):
    """404: the user (or endpoint) does not exist."""


class AttributesRefused(APIError):
    """422: the service refused the attributes; ``field_errors`` maps field to messages."""

    @property
    def field_errors(self) -> dict[str, list[str]]:
        message = self.error_message
        if not isinstance(message, dict):
            return {}
        return {
            str(field): [str(m) for m in (msgs if isinstance(msgs, list) else [msgs])]
            for field, msgs in message.items()
        }


class RateLimited(APIError):
    """429: slow down; ``retry_after`` (seconds) comes from the ``Retry-After`` header."""

    transient = True


class LimitReached(RateLimited):
    """A limit of this site refused the call before anything was sent (``status`` is
    ``None``): the interactive share of ``RATE_LIMIT`` is used up, an anonymous-account
    quota is, or those quotas cannot be checked (the coordination store is down). Handled
    like Big Interview's own 429: a still-valid cached token is used, or the visitor gets
    the "unavailable" page with ``retry_after``."""


class ServerError(APIError):
    """5xx from Big Interview or a proxy in front of it; a 503 may carry ``retry_after``
    (maintenance windows announce their end that way)."""

    transient = True


class UnexpectedResponse(APIError):
    """An answer the contract does not describe: a 2xx whose body is not the documented
    shape (not JSON, missing keys, a date out of range), or a 3xx. The parsers raise it
    for a webhook payload too, where the receiver answers it with a 400."""


class JSONTooDeep(BigInterviewError, ValueError):
    """JSON nested deeper than the package accepts (``client.MAX_JSON_DEPTH``).

    Raised by ``client.clean_json``; the client turns it into ``UnexpectedResponse`` and
    the webhook receiver into a 400, so deep nesting never reaches the database or
    recursive code as a ``RecursionError``.
    """


class WebhookValidationError(BigInterviewError):
    """A webhook delivery was refused; ``status_code`` is what the receiver answers."""

    def __init__(self, reason: str, *, status_code: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status_code = status_code


#: Old names, importable until the next release.
_DEPRECATED_NAMES = {"PermissionDenied": Forbidden, "ValidationError": AttributesRefused}


def __getattr__(name: str) -> Any:
    if name in _DEPRECATED_NAMES:
        replacement = _DEPRECATED_NAMES[name]
        warnings.warn(
            f"django_biginterview.exceptions.{name} is deprecated; use "
            f"{replacement.__name__}, which does not shadow Django's {name}.",
            DeprecationWarning,
            stacklevel=2,
        )
        return replacement
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
