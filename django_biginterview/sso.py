"""Single sign-on: give a visitor a valid Big Interview login URL, calling the API only
when the cached token cannot be used.

Plain functions over a client and model instances; no request, no view, no task. The view
(``views.practice``) translates HTTP into these calls and the exceptions back into pages.

Concurrency: a token refresh runs while holding the account row lock
(``select_for_update``), API call included. That is deliberate: it is the only way to
guarantee that two simultaneous clicks by one user make exactly one create-or-refresh
call; the lock is per user, is taken only when the cached token is stale (a few times in
48 hours), and lasts at most the client's timeouts. Every other request is served from
the cached token without a transaction.
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from django.db import IntegrityError, transaction
from django.utils import timezone

from .adapter import MissingProfileData, Profile, get_adapter
from .client import BigInterviewClient, SSOToken, UserResult, get_client
from .conf import app_settings
from .exceptions import APIError, AuthenticationError, PermissionDenied
from .models import Account
from .signals import account_created, token_refreshed

logger = logging.getLogger(__name__)

#: Big Interview may delete an anonymous account any time after 24 hours.
ANONYMOUS_ACCOUNT_LIFETIME = timedelta(hours=24)

#: At most this many retries and this long a backoff on the SSO path: the user is
#: waiting, and proxies in front of the site give up on a request after about 30 s.
SSO_MAX_RETRIES = 1
SSO_BACKOFF_MAX = 2.0

#: Longest ``redirect_to`` forwarded; anything longer is dropped.
MAX_REDIRECT_TO_LENGTH = 2000

# What the browser sends must be printable ASCII: no spaces, tabs, newlines, NUL, DEL, or
# look-alike Unicode slashes. Decoded forms may hold spaces, but never control characters.
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def sso_client() -> BigInterviewClient:
    """The client for a user's click: the configured one, with fewer retries and a short
    backoff cap, so an outage ends in the "unavailable" page within one read timeout or
    two, never in the proxy's gateway timeout. (A ``Retry-After`` above the cap raises
    at once instead of sleeping; the page passes it on to the visitor.)"""
    return get_client(
        max_retries=min(int(app_settings.MAX_RETRIES), SSO_MAX_RETRIES),
        backoff_max=min(float(app_settings.RETRY_BACKOFF_MAX), SSO_BACKOFF_MAX),
    )


# --- redirect_to / return_url ----------------------------------------------------------


def clean_redirect_to(value: str | None) -> str | None:
    """``value`` if it is safe to forward as ``redirect_to``, else ``None``.

    Only a path inside Big Interview passes: printable ASCII starting with exactly one
    ``/``, with no scheme or host, no ``//`` and no backslash. The same rules (bar the
    ASCII one) apply to every percent-decoded form of it, so ``/%2F%2Fevil.com`` or
    ``/%5Cevil.com`` cannot turn into a host once Big Interview decodes it. Anything else
    is dropped, never repaired: the caller falls back to the default landing page.
    """
    if not value or len(value) > MAX_REDIRECT_TO_LENGTH or not _PRINTABLE_ASCII.fullmatch(value):
        return None
    candidate = value
    for _ in range(5):
        if not _is_plain_path(candidate):
            return None
        decoded = unquote(candidate)
        if decoded == candidate:
            return value
        candidate = decoded
    return None  # Encoded five times over: no honest link looks like that.


def _is_plain_path(value: str) -> bool:
    if _CONTROL_CHARACTERS.search(value) or "\\" in value or "//" in value:
        return False
    if not value.startswith("/"):
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc


def default_redirect_to() -> str | None:
    """The configured landing page (``DEFAULT_REDIRECT_TO``), if it is a safe path."""
    return clean_redirect_to(app_settings.DEFAULT_REDIRECT_TO)


def build_login_url(
    token: SSOToken | str, *, redirect_to: str | None = None, return_url: str | None = None
) -> str:
    """``{BASE_URL}{SSO_LOGIN_PATH}?token=...``, each parameter URL-encoded.

    Encoded with ``quote`` and no safe characters, as the contract shows:
    ``/members/curriculum?chapter=6`` becomes ``%2Fmembers%2Fcurriculum%3Fchapter%3D6``.
    Parameters that are ``None`` are left out (Big Interview then uses its defaults).
    """
    raw_token = token.token if isinstance(token, SSOToken) else token
    params: dict[str, str] = {"token": raw_token}
    if redirect_to:
        params["redirect_to"] = redirect_to
    if return_url:
        params["return_url"] = return_url
    login_path = "/" + str(app_settings.SSO_LOGIN_PATH).lstrip("/")
    query = urlencode(params, quote_via=quote, safe="")
    return f"{app_settings.BASE_URL}{login_path}?{query}"


# --- accounts of logged-in users --------------------------------------------------------


def find_account(user: Any) -> Account | None:
    """The user's account, or ``None`` (one query, no ORDER BY: it is on the hot path)."""
    try:
        return Account.objects.get(user_id=user.pk)
    except Account.DoesNotExist:
        return None


def get_or_create_account(user: Any) -> Account:
    """The user's ``Account``, created locally on first use with the adapter's ``partner_id``.

    Raises :class:`~django_biginterview.adapter.MissingProfileData` *before* storing
    anything when Big Interview could not create the user (no email). Two simultaneous
    first visits race on the unique ``user`` column: the loser's ``IntegrityError`` is
    answered with the winner's row. ``account_created`` is sent after commit.
    """
    account = find_account(user)
    if account is not None:
        return account
    adapter = get_adapter()
    adapter.profile_for_user(user)  # Fail before storing anything.
    partner_id = adapter.partner_id_for_user(user)
    try:
        with transaction.atomic():
            account = Account.objects.create(user=user, partner_id=partner_id)
    except IntegrityError:
        existing = find_account(user)
        if existing is None:
            # Not the race: another account already holds this partner_id, which means
            # the project's PARTNER_ID_FUNCTION is not unique per user.
            logger.error(
                "Could not create a Big Interview account for user pk=%s: partner_id "
                "already taken by another account (check PARTNER_ID_FUNCTION/ADAPTER).",
                user.pk,
            )
            raise
        return existing
    created = account
    transaction.on_commit(lambda: account_created.send(sender=Account, account=created, user=user))
    return account


def cached_token(account: Account) -> SSOToken | None:
    """The token cached on ``account``, if there is one (expired or not)."""
    if not account.sso_token or account.sso_token_expires_at is None:
        return None
    return SSOToken(token=account.sso_token, expires_at=account.sso_token_expires_at)


def _usable_until_now(account: Account, now: datetime) -> SSOToken | None:
    """The cached token if it has not expired yet (inside the refresh margin or not), and
    its user is not known to be missing remotely."""
    if account.remote_missing_at is not None:
        return None
    token = cached_token(account)
    if token is not None and token.expires_at > now:
        return token
    return None


def _profile_for_refresh(account: Account) -> Profile:
    """The profile sent with create-or-refresh.

    Big Interview ignores the profile for an existing user, so a user whose email was
    removed after their account was created remotely can still refresh their token.
    """
    adapter = get_adapter()
    try:
        return adapter.profile_for_user(account.user)
    except MissingProfileData:
        if account.remote_created_at is None:
            raise
        user = account.user
        return Profile(
            first_name=(getattr(user, "first_name", "") or adapter.fallback_first_name)[:100],
            last_name=(getattr(user, "last_name", "") or adapter.fallback_last_name)[:100],
            email="",
        )


def ensure_fresh_token(account: Account, client: BigInterviewClient) -> SSOToken:
    """A token valid for longer than ``TOKEN_REFRESH_MARGIN``, fetched only if needed.

    The cached token is returned without a query or API call while it is fresh. Otherwise
    the account row is locked and re-read (a concurrent click may have refreshed it
    meanwhile), and exactly one ``POST /api/users/{partner_id}`` replaces the token.
    When that call fails but the cached token has not expired yet, the cached token is
    returned and the failure logged; otherwise the ``APIError`` (or
    ``MissingProfileData``) propagates. ``account`` is updated in place.
    """
    margin = app_settings.TOKEN_REFRESH_MARGIN
    if account.has_fresh_token(margin):
        token = cached_token(account)
        assert token is not None
        return token
    if account.anonymous:
        raise ValueError("Anonymous accounts are not refreshed; use get_anonymous_token().")
    with transaction.atomic():
        locked = Account.objects.select_for_update().get(pk=account.pk)
        _copy_token_state(locked, account)
        if locked.has_fresh_token(margin):
            token = cached_token(locked)
            assert token is not None
            return token
        profile = _profile_for_refresh(locked)
        try:
            result = client.create_or_refresh_user(
                locked.partner_id,
                first_name=profile.first_name,
                last_name=profile.last_name,
                email=profile.email,
            )
        except APIError as exc:
            fallback = _usable_until_now(locked, timezone.now())
            if fallback is None:
                raise
            _log_refresh_failure(exc, locked.partner_id, used_cached=True)
            return fallback
        _store_token(locked, result)
        _copy_token_state(locked, account)
        return result.token


def _copy_token_state(source: Account, target: Account) -> None:
    if source is target:
        return
    for name in ("sso_token", "sso_token_expires_at", "remote_created_at", "remote_missing_at"):
        setattr(target, name, getattr(source, name))


def _store_token(account: Account, result: UserResult) -> None:
    """Cache the new token on the (locked) row and announce it after commit."""
    account.sso_token = result.token.token
    account.sso_token_expires_at = result.token.expires_at
    if account.remote_created_at is None:
        account.remote_created_at = result.created_at or timezone.now()
    # The call creates the user when missing, so the user exists remotely now.
    account.remote_missing_at = None
    account.save(
        update_fields=[
            "sso_token",
            "sso_token_expires_at",
            "remote_created_at",
            "remote_missing_at",
        ]
    )
    created_remotely = result.created
    transaction.on_commit(
        lambda: token_refreshed.send(
            sender=Account, account=account, created_remotely=created_remotely
        )
    )


def _log_refresh_failure(exc: APIError, partner_id: str, *, used_cached: bool) -> None:
    """Log a failed token call; the exception's text never holds the key or a token."""
    suffix = "; the still-valid cached token was used" if used_cached else ""
    if isinstance(exc, AuthenticationError):
        logger.error(
            "Big Interview rejected the API key (HTTP %s) while refreshing the SSO token of "
            "%s%s. Check BIGINTERVIEW['API_KEY'].",
            exc.status,
            partner_id,
            suffix,
        )
    elif isinstance(exc, PermissionDenied):
        logger.error(
            "Big Interview refused the SSO token request of %s (HTTP 403)%s.", partner_id, suffix
        )
    else:
        logger.warning("Could not refresh the SSO token of %s: %s%s", partner_id, exc, suffix)


def practice_token_for_user(user: Any, client: BigInterviewClient) -> SSOToken:
    """A fresh SSO token for a logged-in user, creating their account on first use.

    The common case (account exists, token fresh) costs one query and no API call. On a
    first visit the local ``Account`` row and the remote creation share one transaction:
    a concurrent first click waits on the new row's unique key and then reuses it, and
    a failed remote call leaves no half-made local account behind.
    """
    account = find_account(user)
    if account is not None and account.has_fresh_token(app_settings.TOKEN_REFRESH_MARGIN):
        return ensure_fresh_token(account, client)
    with transaction.atomic():
        if account is None:
            account = get_or_create_account(user)
        return ensure_fresh_token(account, client)


# --- anonymous visitors ----------------------------------------------------------------


def get_anonymous_token(account_id: Any, client: BigInterviewClient) -> tuple[Account, SSOToken]:
    """The visitor's anonymous account and token, creating a new account when needed.

    ``account_id`` is what the caller kept (in the session) from a previous call. That
    account is reused while its token is fresh; its ``sso_token_expires_at`` is capped at
    24 hours after creation, since Big Interview may delete anonymous accounts after that.
    Otherwise ``POST /api/users/anonymous`` creates a new one (the call is not idempotent,
    so there is no refresh). If that call fails while the old token has not expired yet,
    the old account is reused.
    """
    previous = _find_anonymous_account(account_id)
    if previous is not None and previous.has_fresh_token(app_settings.TOKEN_REFRESH_MARGIN):
        token = cached_token(previous)
        assert token is not None
        return previous, token
    try:
        result = client.create_anonymous_user()
    except APIError as exc:
        fallback = _usable_until_now(previous, timezone.now()) if previous else None
        if fallback is None or previous is None:
            raise
        _log_refresh_failure(exc, previous.partner_id, used_cached=True)
        return previous, fallback
    if not result.anonymous:
        logger.warning(
            "Big Interview did not flag new user %s as anonymous; treating it as an "
            "anonymous (24-hour) account anyway.",
            result.partner_id,
        )
    created_at = result.created_at or timezone.now()
    expires_at = min(result.token.expires_at, created_at + ANONYMOUS_ACCOUNT_LIFETIME)
    with transaction.atomic():
        account = Account.objects.create(
            partner_id=result.partner_id,
            anonymous=True,
            sso_token=result.token.token,
            sso_token_expires_at=expires_at,
            remote_created_at=created_at,
        )
        transaction.on_commit(
            lambda: account_created.send(sender=Account, account=account, user=None)
        )
        transaction.on_commit(
            lambda: token_refreshed.send(sender=Account, account=account, created_remotely=True)
        )
    return account, SSOToken(token=result.token.token, expires_at=expires_at)


def _find_anonymous_account(account_id: Any) -> Account | None:
    if account_id is None:
        return None
    try:
        pk = int(account_id)
    except (TypeError, ValueError):
        return None
    return Account.objects.filter(pk=pk, anonymous=True, user__isnull=True).first()
