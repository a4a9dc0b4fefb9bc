"""Single sign-on: give a visitor a valid Big Interview login URL, calling the API only
when the cached token cannot be used.

Plain functions over a client and model instances; no request, no view, no task. The view
(``views.practice``) translates HTTP into these calls and the exceptions back into pages.

Concurrency: a token refresh runs while holding the account row lock
(``select_for_update``), API call included. That is deliberate: it is the only way to
guarantee that two simultaneous clicks by one user make exactly one create-or-refresh
call; the lock is per user, is taken only when the cached token is stale (a few times in
48 hours), and lasts at most the click's time budget (``SSO_TIME_BUDGET``, which the view
puts on the client with ``BigInterviewClient.deadline``). Every other request is served
from the cached token without a transaction. Anonymous visitors have no row to lock: one
session's simultaneous clicks queue on a lock in the coordination store instead (see
:func:`get_anonymous_token`).

Budget: every API call of a click takes a slot of the interactive share of
``RATE_LIMIT`` first (:func:`sso_client`), and a new anonymous account also uses its
quotas; either refusal is a ``LimitReached``. No token is handed out with less than
``SSO_MIN_TOKEN_LIFE`` left. Tokens travel as ``client.Secret``, masked in error reports.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote, urlencode, urlsplit

from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from . import coordination
from .adapter import MissingProfileData, Profile, get_adapter
from .api_types import Secret, SSOToken, UserResult
from .client import BigInterviewClient, get_client
from .conf import app_settings, cleared_on_setting_change
from .exceptions import (
    APIError,
    AuthenticationError,
    Forbidden,
    LimitReached,
    UnexpectedResponse,
)
from .models import Account
from .signals import account_created, token_refreshed
from .validators import is_member_area_path

logger = logging.getLogger(__name__)

#: Big Interview may delete an anonymous account any time after 24 hours.
ANONYMOUS_ACCOUNT_LIFETIME = timedelta(hours=24)

#: At most this many retries and this long a backoff on the SSO path: the user is
#: waiting, and proxies in front of the site give up on a request after about 30 s.
SSO_MAX_RETRIES = 1
SSO_BACKOFF_MAX = 2.0

#: The longest a click waits for a slot of the interactive share of ``RATE_LIMIT`` (and
#: never more than half its ``SSO_TIME_BUDGET``, so the call itself has time left).
SSO_MAX_THROTTLE_WAIT = 3.0

#: How often a click waiting for the same session's other click looks again.
VISITOR_LOCK_POLL = 0.05

#: Anonymous accounts deleted per statement by :func:`purge_anonymous_accounts`.
PURGE_BATCH_SIZE = 500

#: Longest ``redirect_to`` forwarded; anything longer is dropped.
MAX_REDIRECT_TO_LENGTH = 2000

# What the browser sends must be printable ASCII: no spaces, tabs, newlines, NUL, DEL, or
# look-alike Unicode slashes. Decoded forms may hold spaces, but never control characters.
_PRINTABLE_ASCII = re.compile(r"[\x21-\x7e]+")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]")


def sso_client() -> BigInterviewClient:
    """The client for a user's click: the configured one, with fewer retries and a short
    backoff cap, so an outage ends in the "unavailable" page quickly. (A ``Retry-After``
    above the cap raises at once instead of sleeping; the page passes it on to the
    visitor.) What bounds the whole click is the ``SSO_TIME_BUDGET`` the view sets with
    ``client.deadline()``: retries alone cannot, as a response may trickle in slower than
    any read timeout notices.

    Every request, retries included, first takes a slot of the interactive share of
    ``RATE_LIMIT`` (``coordination.interactive_rate_limiter``). Background syncs never
    use that share, so a click never queues behind a "sync all"; a slot further away
    than ``SSO_MAX_THROTTLE_WAIT`` raises ``LimitReached`` instead of waiting.
    """
    max_wait = min(SSO_MAX_THROTTLE_WAIT, app_settings.SSO_TIME_BUDGET / 2)
    return get_client(
        max_retries=min(app_settings.MAX_RETRIES, SSO_MAX_RETRIES),
        backoff_max=min(app_settings.RETRY_BACKOFF_MAX, SSO_BACKOFF_MAX),
        throttle=_click_throttle(
            coordination.interactive_rate(),
            app_settings.BASE_URL,
            app_settings.REDIS_URL,
            max_wait,
        ),
    )


@cleared_on_setting_change(maxsize=4)
def _click_throttle(
    rate: float, base_url: str, redis_url: str | None, max_wait: float
) -> Callable[[], None]:
    """The interactive limiter, one per configuration (the arguments are the settings it
    reads, as the cache key), so ``get_client`` keeps handing out the same client."""
    limiter = coordination.interactive_rate_limiter(max_wait=max_wait)

    def throttle() -> None:
        try:
            limiter()
        except coordination.Throttled as exc:
            raise LimitReached(
                "The interactive share of RATE_LIMIT is used up", retry_after=exc.wait
            ) from None

    return throttle


# --- redirect_to / return_url ----------------------------------------------------------


def clean_redirect_to(value: str | None) -> str | None:
    """``value`` if it is safe to forward as ``redirect_to``, else ``None``.

    Only a member-area path passes (``validators.is_member_area_path``): printable ASCII
    starting with exactly one ``/``, with no scheme or host, no ``//`` and no backslash,
    under ``/members`` with no dot segment. The same rules (bar the
    ASCII one) apply to every percent-decoded form of it, so ``/%2F%2Fevil.com`` or
    ``/%5Cevil.com`` cannot turn into a host once Big Interview decodes it. Anything else
    is dropped, never repaired: the caller falls back to the default landing page.
    """
    if not value or len(value) > MAX_REDIRECT_TO_LENGTH or not _PRINTABLE_ASCII.fullmatch(value):
        return None
    candidate = value
    for _ in range(5):
        if not _is_plain_path(candidate) or not is_member_area_path(candidate):
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
    The URL logs its visitor in, so it is a :class:`~django_biginterview.client.Secret`,
    and no local variable here holds the token in the clear.
    """
    params: dict[str, str] = {
        "token": Secret(token.token if isinstance(token, SSOToken) else token)
    }
    if redirect_to:
        params["redirect_to"] = redirect_to
    if return_url:
        params["return_url"] = return_url
    login_path = "/" + app_settings.SSO_LOGIN_PATH.lstrip("/")
    return Secret(
        f"{app_settings.BASE_URL}{login_path}?{urlencode(params, quote_via=quote, safe='')}"
    )


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


def _min_life() -> timedelta:
    """``SSO_MIN_TOKEN_LIFE``: a token with less left is never handed to a visitor, who
    still has to follow the redirect (slow networks, a redirect chain)."""
    return timedelta(seconds=app_settings.SSO_MIN_TOKEN_LIFE)


def _refresh_margin() -> timedelta:
    """``TOKEN_REFRESH_MARGIN``, and never less than the minimum life: a cached token
    that could not be handed out is not fresh."""
    margin: timedelta = app_settings.TOKEN_REFRESH_MARGIN
    return max(margin, _min_life())


def _fallback_token(account: Account, now: datetime) -> SSOToken | None:
    """The cached token when a call for a new one failed: if it still has
    ``SSO_MIN_TOKEN_LIFE`` left (inside the refresh margin or not), and its user is not
    known to be missing remotely."""
    if account.remote_missing_at is not None:
        return None
    token = cached_token(account)
    if token is not None and token.expires_at - _min_life() >= now:
        return token
    return None


def _check_life(token: SSOToken, partner_id: str) -> SSOToken:
    """``token``, just received from Big Interview, if it lives ``SSO_MIN_TOKEN_LIFE``;
    else ``UnexpectedResponse`` (the service's clock, or an anonymous account near the
    end of its 24 hours)."""
    left = (token.expires_at - timezone.now()).total_seconds()
    if left < _min_life().total_seconds():
        raise UnexpectedResponse(
            f"Big Interview's new token for {partner_id} expires in {left:.0f} s, "
            "under SSO_MIN_TOKEN_LIFE"
        )
    return token


def _profile_for_refresh(account: Account) -> Profile:
    """The profile sent with create-or-refresh: the adapter's.

    Big Interview ignores the profile for an existing user, so a user whose email was
    removed after their account was created remotely can still refresh their token: the
    adapter's fallback names stand in for the profile it cannot give.
    """
    adapter = get_adapter()
    try:
        return adapter.profile_for_user(account.user)
    except MissingProfileData:
        if account.remote_created_at is None:
            raise
        return Profile(
            first_name=adapter.fallback_first_name, last_name=adapter.fallback_last_name, email=""
        )


def ensure_fresh_token(account: Account, client: BigInterviewClient) -> SSOToken:
    """A token valid for longer than ``TOKEN_REFRESH_MARGIN`` (and ``SSO_MIN_TOKEN_LIFE``),
    fetched only if needed.

    The cached token is returned without a query or API call while it is fresh. Otherwise
    the account row is locked and re-read (a concurrent click may have refreshed it
    meanwhile), and exactly one ``POST /api/users/{partner_id}`` replaces the token.
    When that call fails (or ``LimitReached`` refuses it) but the cached token still has
    ``SSO_MIN_TOKEN_LIFE`` left, the cached token is returned and the failure logged;
    otherwise the ``APIError`` (or ``MissingProfileData``) propagates. A new token with
    less than that life left is not stored and raises ``UnexpectedResponse``.
    ``account`` is updated in place.
    """
    margin = _refresh_margin()
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
            fallback = _fallback_token(locked, timezone.now())
            if fallback is None:
                raise
            _log_refresh_failure(exc, locked.partner_id, used_cached=True)
            return fallback
        _check_life(result.token, locked.partner_id)
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
    elif isinstance(exc, Forbidden):
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
    if account is not None and account.has_fresh_token(_refresh_margin()):
        return ensure_fresh_token(account, client)
    with transaction.atomic():
        if account is None:
            account = get_or_create_account(user)
        return ensure_fresh_token(account, client)


# --- anonymous visitors ----------------------------------------------------------------


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class AnonymousVisitor:
    """Who asks for an anonymous account, as its quotas and its lock see them.

    ``id`` is a hash of the visitor's session key (the key itself is a credential and is
    never stored); ``rate_key`` is what ``DefaultAdapter.anonymous_rate_key`` gave (an
    address the host trusts), or ``None``.
    """

    id: str
    rate_key: str | None = None

    @classmethod
    def for_session(cls, session_key: str, rate_key: str | None = None) -> AnonymousVisitor:
        return cls(id=_digest(session_key), rate_key=rate_key)


def _anonymous_scope() -> str:
    return f"anonymous:{coordination.organisation_scope()}"


def anonymous_quotas(visitor: AnonymousVisitor) -> list[coordination.Quota]:
    """What a new anonymous account uses up: one of ``ANONYMOUS_ACCOUNTS_PER_SESSION`` per
    24 hours for the visitor's session, of ``ANONYMOUS_ACCOUNTS_PER_RATE_KEY`` per hour for
    its rate key (when the adapter gives one), and of ``ANONYMOUS_ACCOUNTS_PER_HOUR`` for
    all visitors together."""
    scope = _anonymous_scope()
    hour = timedelta(hours=1)
    quotas = [
        coordination.Quota(
            f"{scope}:session:{visitor.id}",
            app_settings.ANONYMOUS_ACCOUNTS_PER_SESSION,
            ANONYMOUS_ACCOUNT_LIFETIME,
        )
    ]
    if visitor.rate_key is not None:
        quotas.append(
            coordination.Quota(
                f"{scope}:key:{_digest(visitor.rate_key)}",
                app_settings.ANONYMOUS_ACCOUNTS_PER_RATE_KEY,
                hour,
            )
        )
    quotas.append(
        coordination.Quota(f"{scope}:all", app_settings.ANONYMOUS_ACCOUNTS_PER_HOUR, hour)
    )
    return quotas


def _store_down(exc: Exception) -> LimitReached:
    """The error for a coordination store that failed: without it the quotas and the
    per-visitor lock cannot hold, so no anonymous account is made (fails closed)."""
    logger.warning(
        "Coordination store unavailable (%s): no anonymous account is created meanwhile",
        type(exc).__name__,
    )
    return LimitReached(
        "Anonymous accounts are paused: the coordination store is unavailable",
        retry_after=coordination.REDIS_RETRY_AFTER,
    )


@contextlib.contextmanager
def _visitor_lock(visitor: AnonymousVisitor) -> Iterator[None]:
    """Held while one visitor's account is looked up and created, so simultaneous clicks
    of one session create one account.

    A click waits for the other one at most ``SSO_TIME_BUDGET`` (the other's API calls
    end by then), then raises ``LimitReached``. The lock expires after twice that, should
    its holder die holding it.
    """
    name = f"{_anonymous_scope()}:visitor:{visitor.id}"
    holder = uuid.uuid4().hex
    budget = app_settings.SSO_TIME_BUDGET
    give_up_at = time.monotonic() + budget
    try:
        while not coordination.acquire_lock(name, holder, timedelta(seconds=2 * budget)):
            if time.monotonic() >= give_up_at:
                raise LimitReached(
                    "Another click of this visitor is still creating its anonymous account",
                    retry_after=1,
                )
            time.sleep(VISITOR_LOCK_POLL)
    except LimitReached:
        raise
    except Exception as exc:
        raise _store_down(exc) from None
    try:
        yield
    finally:
        try:
            coordination.release_lock(name, holder)
        except Exception:  # the lock's TTL frees it
            logger.warning("Could not release an anonymous visitor's lock", exc_info=True)


def _latest_account(visitor: AnonymousVisitor) -> Account | None:
    """The account last created for the visitor (by a click whose session data this
    click did not see yet)."""
    try:
        remembered = coordination.recall(f"{_anonymous_scope()}:account:{visitor.id}")
    except Exception as exc:
        raise _store_down(exc) from None
    return _find_anonymous_account(remembered)


def _remember_account(visitor: AnonymousVisitor, account: Account) -> None:
    try:
        coordination.remember(
            f"{_anonymous_scope()}:account:{visitor.id}",
            str(account.pk),
            ANONYMOUS_ACCOUNT_LIFETIME,
        )
    except Exception:  # the session keeps the account; only a simultaneous click misses it
        logger.warning("Could not remember a visitor's anonymous account", exc_info=True)


def get_anonymous_token(
    account_id: Any, client: BigInterviewClient, visitor: AnonymousVisitor
) -> tuple[Account, SSOToken]:
    """The visitor's anonymous account and token, creating a new account when needed.

    ``account_id`` is what the caller kept (in the session) from a previous call. That
    account is reused while its token is fresh; its ``sso_token_expires_at`` is capped at
    24 hours after creation, since Big Interview may delete anonymous accounts after that.
    Otherwise, holding the visitor's lock (simultaneous clicks of one session wait for
    each other and share the account the first one made), the visitor's quotas are used
    and ``POST /api/users/anonymous`` creates a new account (the call is not idempotent,
    so there is no refresh). If a quota refuses (``LimitReached``) or the call fails
    while the old token still has ``SSO_MIN_TOKEN_LIFE`` left, the old account is reused.
    """
    margin = _refresh_margin()
    previous = _find_anonymous_account(account_id)
    if previous is not None and previous.has_fresh_token(margin):
        return previous, _fresh_cached_token(previous)
    with _visitor_lock(visitor):
        latest = _latest_account(visitor) or previous
        if latest is not None and latest.has_fresh_token(margin):
            return latest, _fresh_cached_token(latest)
        try:
            _use_quotas(visitor)
            result = client.create_anonymous_user()
        except APIError as exc:
            fallback = _fallback_token(latest, timezone.now()) if latest else None
            if fallback is None or latest is None:
                raise
            _log_refresh_failure(exc, latest.partner_id, used_cached=True)
            return latest, fallback
        account = _store_anonymous_account(result)
        _remember_account(visitor, account)
    token = cached_token(account)
    assert token is not None
    return account, token


def _fresh_cached_token(account: Account) -> SSOToken:
    token = cached_token(account)
    assert token is not None
    return token


def _use_quotas(visitor: AnonymousVisitor) -> None:
    try:
        coordination.use_quotas(anonymous_quotas(visitor))
    except coordination.QuotaExceeded as exc:
        raise LimitReached(f"No new anonymous account: {exc}", retry_after=exc.wait) from None
    except Exception as exc:
        raise _store_down(exc) from None


def _store_anonymous_account(result: UserResult) -> Account:
    """The local row of a new anonymous account, announced after commit.

    A ``partner_id`` an account here already has (Big Interview handing out an id twice)
    is refused with ``UnexpectedResponse``, logged, and nothing is stored: reusing that
    row would give its old visitor's session this visitor's token.
    """
    if not result.anonymous:
        logger.warning(
            "Big Interview did not flag new user %s as anonymous; treating it as an "
            "anonymous (24-hour) account anyway.",
            result.partner_id,
        )
    created_at = result.created_at or timezone.now()
    token = _check_life(
        SSOToken(
            token=result.token.token,
            expires_at=min(result.token.expires_at, created_at + ANONYMOUS_ACCOUNT_LIFETIME),
        ),
        result.partner_id,
    )
    account: Account | None
    try:
        with transaction.atomic():
            account = Account.objects.create(
                partner_id=result.partner_id,
                anonymous=True,
                sso_token=token.token,
                sso_token_expires_at=token.expires_at,
                remote_created_at=created_at,
            )
    except IntegrityError:
        if not Account.objects.filter(partner_id=result.partner_id).exists():
            raise
        account = None
    if account is None:  # raised here, not in the handler: the IntegrityError stays unchained
        logger.error(
            "Big Interview answered create_anonymous_user with partner_id %s, which an "
            "account here already has; the new remote account was not stored.",
            result.partner_id,
        )
        raise UnexpectedResponse(
            "Big Interview answered create_anonymous_user with a partner_id already in use"
        )
    created = account
    transaction.on_commit(lambda: account_created.send(sender=Account, account=created, user=None))
    transaction.on_commit(
        lambda: token_refreshed.send(sender=Account, account=created, created_remotely=True)
    )
    return account


def _find_anonymous_account(account_id: Any) -> Account | None:
    if account_id is None:
        return None
    try:
        pk = int(account_id)
    except (TypeError, ValueError):
        return None
    return Account.objects.filter(pk=pk, anonymous=True, user__isnull=True).first()


# --- anonymous accounts past their life ------------------------------------------------


def past_anonymous_life(now: datetime | None = None) -> Q:
    """Anonymous accounts past their 24-hour life, counted from their creation on Big
    Interview (or here, when that is unknown). Big Interview may have deleted them and
    their token has expired, so no visitor gets one again: a sync would only spend API
    calls on them, and :func:`purge_anonymous_accounts` deletes them."""
    cutoff = (now or timezone.now()) - ANONYMOUS_ACCOUNT_LIFETIME
    return Q(anonymous=True, user__isnull=True) & (
        Q(remote_created_at__lt=cutoff) | Q(remote_created_at__isnull=True, created_at__lt=cutoff)
    )


def purge_anonymous_accounts(now: datetime | None = None) -> int:
    """Delete the anonymous accounts past their life, with their tracks, steps and
    interviews, ``PURGE_BATCH_SIZE`` at a time; returns how many were deleted."""
    past_life = past_anonymous_life(now)
    deleted = 0
    while True:
        batch = list(
            Account.objects.filter(past_life).values_list("pk", flat=True)[:PURGE_BATCH_SIZE]
        )
        if not batch:
            return deleted
        Account.objects.filter(pk__in=batch).delete()
        deleted += len(batch)
