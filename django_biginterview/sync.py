"""Sync domain: mirror one account's tracks and interviews from Big Interview. Plain
functions, and the rate-limited client the syncs use (``sync_client``); "sync all" runs
are in ``sync_runs.py``, Celery in ``tasks.py``.

HTTP happens before any transaction opens, so a slow Big Interview never holds a row
lock. The write is one transaction behind ``mirror.lock_account``: two syncs of one
account (or a sync racing a webhook) serialise on the account row. The number of queries
does not depend on how many interviews an account has (see ``mirror.py``).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Literal

from django.db import transaction
from django.db.models import DateTimeField, F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import api_types as api
from . import mirror
from .client import BigInterviewClient, options_from_settings
from .conf import app_settings, cleared_on_setting_change
from .coordination import RateLimiter, Throttled, background_rate, rate_limiter
from .exceptions import APIError, InvalidPartnerId, NotFound, describe_error
from .models import Account

logger = logging.getLogger(__name__)

Outcome = Literal["synced", "failed", "skipped"]


def sync_client(*, max_wait: float | None = None) -> BigInterviewClient:
    """The process-wide client for syncing: pooled connections, and every request goes
    through the rate limiter shared by all workers (the background share of
    ``RATE_LIMIT``: ``coordination.background_rate``). With ``max_wait``, a request
    whose slot is further away raises ``Throttled``."""
    return _throttled_client(
        options_from_settings(),
        background_rate(),
        app_settings.REDIS_URL,
        max_wait,
    )


@cleared_on_setting_change(maxsize=4)
def _throttled_client(
    options: tuple[tuple[str, Any], ...],
    rate: float,
    redis_url: str | None,
    max_wait: float | None,
) -> BigInterviewClient:
    return BigInterviewClient(**dict(options), throttle=rate_limiter(max_wait=max_wait))


def progress_is_stale(account: Account, now: datetime | None = None) -> bool:
    """Whether ``account``'s mirrored progress is older than ``PROGRESS_MAX_AGE``: its
    last sync, or its last failed sync (so a failing account is not asked again on every
    view), is that old or never happened. An account known to be missing on Big Interview
    is never stale: a sync would only repeat the 404 (the admin's "sync now" still can).
    """
    if account.remote_missing_at is not None:
        return False
    attempts = [t for t in (account.last_synced_at, account.last_sync_error_at) if t]
    if not attempts:
        return True
    return max(attempts) <= (now or timezone.now()) - app_settings.PROGRESS_MAX_AGE


@dataclass(frozen=True)
class SyncResult:
    """What one account's sync did. ``error`` is safe to show (no key, no token)."""

    account_id: int
    partner_id: str
    outcome: Outcome
    error: str = ""
    remote_missing: bool = False
    tracks_changed: bool = False
    interviews_created: int = 0
    interviews_updated: int = 0
    interviews_deleted: int = 0

    @property
    def changed(self) -> bool:
        return bool(
            self.tracks_changed
            or self.interviews_created
            or self.interviews_updated
            or self.interviews_deleted
        )

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Snapshot:
    """What Big Interview listed for one account, fetched before any transaction opens.
    ``started_at`` is when the fetch began: rows written after it are newer than the
    listing."""

    tracks: list[api.Track]
    interviews: list[api.Interview]
    started_at: datetime


def fetch(account: Account, client: BigInterviewClient, *, reserved: bool = False) -> Snapshot:
    """List the account's tracks and interviews, the two calls at once (the waiting
    overlaps). Raises what the client raises. ``reserved``: the two calls' request slots
    were reserved beforehand, and are due."""
    [outcome] = fetch_many([account], client, reserved=reserved)
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def fetch_many(
    accounts: Sequence[Account], client: BigInterviewClient, *, reserved: bool = False
) -> list[Snapshot | Exception]:
    """:func:`fetch` for several accounts at once: every call is sent from the process's
    fetch threads, so their waiting overlaps. Per account, the snapshot or what its first
    failing call raised.

    With the shared rate limiter on the client, each account's two calls take their
    request slots together, before either is sent: an account the limiter holds back
    (``Throttled``) costs no call, and so does every account after it, which get the same
    ``Throttled``.
    """
    started_at = timezone.now()
    pool = _fetch_pool()
    limiter = client.throttle if isinstance(client.throttle, RateLimiter) else None
    calls: list[tuple[Future[Any], Future[Any]] | Exception] = []
    held_back: Throttled | None = None
    for account in accounts:
        waits = [0.0, 0.0]
        if limiter is not None and held_back is None and not reserved:
            try:
                waits = limiter.reserve(2)
            except Throttled as exc:
                held_back = exc
        if held_back is not None:
            calls.append(held_back)
            continue
        calls.append(
            (
                pool.submit(_send, limiter, waits[0], client.list_tracks, account.partner_id),
                pool.submit(_send, limiter, waits[1], client.list_interviews, account.partner_id),
            )
        )
    outcomes: list[Snapshot | Exception] = []
    for call in calls:
        if isinstance(call, Exception):
            outcomes.append(call)
            continue
        tracks, interviews = call
        try:
            outcomes.append(Snapshot(tracks.result(), interviews.result(), started_at))
        except Exception as exc:
            interviews.exception()  # wait for the sibling call: nothing left running
            outcomes.append(exc)
    return outcomes


def _send(limiter: RateLimiter | None, wait: float, call: Callable[[str], Any], arg: str) -> Any:
    """``call(arg)`` at its reserved slot, ``wait`` seconds from now."""
    if limiter is None:
        return call(arg)
    if wait > 0:
        time.sleep(wait)
    with limiter.prepaid():
        return call(arg)


#: Threads that wait on Big Interview for a process (HTTP only: no database in them).
FETCH_THREADS = 16
_pool: tuple[int, ThreadPoolExecutor] | None = None


def _fetch_pool() -> ThreadPoolExecutor:
    """The process's fetch threads, made anew in a forked child (threads do not survive
    a fork, and the prefork pool forks its children)."""
    global _pool
    if _pool is None or _pool[0] != os.getpid():
        _pool = (os.getpid(), ThreadPoolExecutor(FETCH_THREADS, thread_name_prefix="bi-fetch"))
    return _pool[1]


def sync_account(
    account: Account, client: BigInterviewClient, *, reserved: bool = False
) -> SyncResult:
    """Mirror ``account``'s tracks and interviews; idempotent. ``reserved``: see
    :func:`fetch`.

    Permanent API errors (401/403, 404, 422, a malformed answer) are recorded on the account
    and returned as a failed result: retrying cannot help. A 404 also marks the account
    missing remotely. Transient errors (``exc.transient``) are raised for the caller to
    retry later.
    """
    try:
        snapshot = fetch(account, client, reserved=reserved)
    except (APIError, InvalidPartnerId) as exc:
        return apply_failure(account, exc)
    return apply_snapshot(account, snapshot)


def apply_failure(account: Account, error: APIError | InvalidPartnerId) -> SyncResult:
    """A fetch that raised: re-raise a transient error for the caller to retry later;
    record a permanent one (retrying cannot help) and return the failed result."""
    if isinstance(error, APIError) and error.transient:
        raise error
    return record_sync_failure(account, error)


def apply_snapshot(account: Account, snapshot: Snapshot) -> SyncResult:
    """Write ``snapshot`` in one transaction behind the account's row lock; a repeated
    snapshot writes nothing."""
    with transaction.atomic():
        try:
            locked = mirror.lock_account(account.pk)
        except Account.DoesNotExist:
            return SyncResult(account.pk, account.partner_id, "skipped", error="Account deleted.")
        tracks_changed = mirror.replace_tracks(locked, snapshot.tracks)
        changes, deleted = mirror.sync_interviews(
            locked, snapshot.interviews, snapshot_started_at=snapshot.started_at
        )
        now = timezone.now()
        Account.objects.filter(pk=locked.pk).update(
            last_synced_at=now, last_sync_error="", last_sync_error_at=None, remote_missing_at=None
        )
    account.last_synced_at = now
    account.last_sync_error, account.last_sync_error_at, account.remote_missing_at = "", None, None
    return SyncResult(
        account_id=account.pk,
        partner_id=account.partner_id,
        outcome="synced",
        tracks_changed=tracks_changed,
        interviews_created=sum(1 for c in changes if c.change == "created"),
        interviews_updated=sum(1 for c in changes if c.change != "created"),
        interviews_deleted=len(deleted),
    )


def record_sync_failure(account: Account, error: BaseException) -> SyncResult:
    """Store ``error`` on the account (and mark it missing remotely on a 404)."""
    now = timezone.now()
    message = describe_error(error)
    missing = isinstance(error, NotFound)
    updates: dict[str, Any] = {"last_sync_error": message, "last_sync_error_at": now}
    if missing:
        # Keep the first time it went missing.
        updates["remote_missing_at"] = Coalesce(
            F("remote_missing_at"), Value(now, output_field=DateTimeField())
        )
    Account.objects.filter(pk=account.pk).update(**updates)
    account.last_sync_error, account.last_sync_error_at = message, now
    if missing and account.remote_missing_at is None:
        account.remote_missing_at = now
    logger.warning("Big Interview sync of %s failed: %s", account.partner_id, message)
    return SyncResult(
        account.pk, account.partner_id, "failed", error=message, remote_missing=missing
    )


def sync_account_safely(account: Account, client: BigInterviewClient) -> SyncResult:
    """``sync_account`` for loops with no retry machinery (the inline command): every
    error, transient or not, becomes a recorded failure so the loop goes on."""
    try:
        return sync_account(account, client)
    except Exception as exc:  # one failing account never stops the rest
        if not isinstance(exc, APIError):
            logger.exception("Unexpected error while syncing %s", account.partner_id)
        return record_sync_failure(account, exc)


def account_handle(pk: int, partner_id: str) -> Account:
    """An unsaved stand-in for an account whose ``pk`` and ``partner_id`` are known, for
    :func:`sync_account`, which reads nothing else before locking (and re-reading) the row.
    Never save it."""
    return Account(pk=pk, partner_id=partner_id)
