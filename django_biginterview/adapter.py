"""Decisions a host project may want to change, in one swappable class.

Point ``BIGINTERVIEW["ADAPTER"]`` at a subclass of :class:`DefaultAdapter` to change how a
user's ``partner_id`` is derived, which profile is sent to Big Interview, or by what key
(an IP address) new anonymous accounts are counted. The app asks :func:`get_adapter`, and
only it, for each of these decisions.

Override a method to change a decision: the app waits for its answer. Connect a receiver
to a signal (``signals.py``) to react to something that happened (an account created, a
token refreshed, an interview changed): a receiver cannot change the outcome.
``BIGINTERVIEW["PARTNER_ID_FUNCTION"]`` is the default adapter's shortcut for the most
common override; an adapter that overrides ``partner_id_for_user`` ignores it, and
``manage.py check`` says so (``biginterview.W015``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from django.utils.crypto import salted_hmac
from django.utils.module_loading import import_string

from .conf import app_settings
from .exceptions import BigInterviewError
from .validators import validate_partner_id


class MissingProfileData(BigInterviewError):
    """The user lacks data Big Interview requires; ``missing`` lists the field names."""

    def __init__(self, missing: list[str]) -> None:
        super().__init__(f"Missing profile data: {', '.join(missing)}")
        self.missing = missing


@dataclass(frozen=True)
class Profile:
    first_name: str
    last_name: str
    email: str


class DefaultAdapter:
    """The default decisions. Subclass and override single methods."""

    #: Sent when a user has no first or last name (Big Interview requires both).
    fallback_first_name = "Member"
    fallback_last_name = "-"

    def partner_id_for_user(self, user: Any) -> str:
        """The user's ``partner_id``: ``PARTNER_ID_FUNCTION(user)`` when that is set, else
        an opaque, stable id, an HMAC of the user's primary key.

        The HMAC reveals neither the primary key nor the email, and is the same on every call
        for the same user and secret (``BIGINTERVIEW["PARTNER_ID_SECRET"]``, by default
        ``SECRET_KEY``). It is stored on the ``Account`` at creation and never recomputed,
        so rotating the secret later does not move existing users.
        """
        custom = app_settings.PARTNER_ID_FUNCTION
        if custom:
            return validate_partner_id(import_string(custom)(user))
        secret = app_settings.PARTNER_ID_SECRET or settings.SECRET_KEY
        digest = salted_hmac(
            "django_biginterview.partner_id", str(user.pk), secret=secret, algorithm="sha256"
        ).hexdigest()
        return validate_partner_id(f"u-{digest[:40]}")

    def profile_for_user(self, user: Any) -> Profile:
        """First name, last name and email sent when the account is created remotely.

        Missing names fall back to the username and to ``fallback_last_name``; a missing
        email cannot be invented and raises :class:`MissingProfileData`.
        """
        email = (getattr(user, "email", "") or "").strip()
        if not email:
            raise MissingProfileData(["email"])
        first_name = (getattr(user, "first_name", "") or "").strip()
        last_name = (getattr(user, "last_name", "") or "").strip()
        if not first_name:
            username = ""
            if hasattr(user, "get_username"):
                username = (user.get_username() or "").strip()
            first_name = username.split("@")[0] or self.fallback_first_name
        return Profile(
            first_name=first_name[:100],
            last_name=(last_name or self.fallback_last_name)[:100],
            email=email,
        )

    def anonymous_rate_key(self, request: HttpRequest) -> str | None:
        """What the ``ANONYMOUS_ACCOUNTS_PER_RATE_KEY`` quota counts new anonymous accounts
        by, usually the visitor's IP address; ``None`` (the default) for no such quota.

        The app never reads ``X-Forwarded-For``: only the host knows which proxies it
        trusts. Return ``request.META["REMOTE_ADDR"]`` when clients connect directly, or
        the address your trusted proxy setup derives (e.g. the last hop your load balancer
        appends). A value the client can choose freely defeats the quota.
        """
        return None


def get_adapter() -> DefaultAdapter:
    """An instance of ``BIGINTERVIEW["ADAPTER"]`` (read from settings on each call): the
    one way the app reaches the adapter."""
    adapter: DefaultAdapter = import_string(app_settings.ADAPTER)()
    return adapter
