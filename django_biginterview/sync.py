"""Sync domain: mirror an account's tracks and interviews from Big Interview, and keep the
books of a "sync all" run. Plain functions; Celery lives in ``tasks.py``.

HTTP happens before any transaction opens, so a slow Big Interview never holds a row
lock. The write is one transaction behind ``mirror.lock_account``: two syncs of one
account (or a sync racing a webhook) serialise on the account row. The number of queries
does not depend on how many interviews an account has (see ``mirror.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

from django.db import transaction
from django.db.models import DateTimeField, F, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from . import mirror
from .client import BigInterviewClient
from .exceptions import APIError, InvalidPartnerId, NotFound, describe_error
from .models import Account, SyncRun

logger = logging.getLogger(__name__)

Outcome = Literal["synced", "failed", "skipped"]

#: A run keeps at most this many failure reasons (the counter stays exact), so a run
#: during an outage does not grow one JSON value without bound.
MAX_RECORDED_FAILURES = 200


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


def sync_account(account: Account, client: BigInterviewClient) -> SyncResult:
    """Mirror ``account``'s tracks and interviews; idempotent.

    Permanent API errors (401/403, 404, 422, a malformed answer) are recorded on the account
    and returned as a failed result: retrying cannot help. A 404 also marks the account
    missing remotely. Transient errors (``exc.transient``) are raised for the caller to
    retry later.
    """
    snapshot_started_at = timezone.now()
    try:
        tracks = client.list_tracks(account.partner_id)
        interviews = client.list_interviews(account.partner_id)
    except APIError as exc:
        if exc.transient:
            raise
        return record_sync_failure(account, exc)
    except InvalidPartnerId as exc:
        return record_sync_failure(account, exc)

    with transaction.atomic():
        try:
            locked = mirror.lock_account(account.pk)
        except Account.DoesNotExist:
            return SyncResult(account.pk, account.partner_id, "skipped", error="Account deleted.")
        tracks_changed = mirror.replace_tracks(locked, tracks)
        changes, deleted = mirror.sync_interviews(
            locked, interviews, snapshot_started_at=snapshot_started_at
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


# --- "Sync all" runs --------------------------------------------------------------------


def accounts_to_sync() -> Any:
    """Accounts a "sync all" visits: those not known to be missing on Big Interview
    (a 404 would only repeat; "sync now" in the admin still checks them)."""
    return Account.objects.filter(remote_missing_at__isnull=True)


def count_skipped_accounts() -> int:
    return Account.objects.filter(remote_missing_at__isnull=False).count()


def iter_account_id_chunks(chunk_size: int) -> Iterator[list[int]]:
    """Primary keys of ``accounts_to_sync()`` in ascending chunks (keyset pagination: never
    loads every account, and each chunk is one indexed query)."""
    chunk_size = max(1, int(chunk_size))
    last_pk = 0
    while True:
        ids = list(
            accounts_to_sync()
            .filter(pk__gt=last_pk)
            .order_by("pk")
            .values_list("pk", flat=True)[:chunk_size]
        )
        if not ids:
            return
        yield ids
        if len(ids) < chunk_size:
            return
        last_pk = ids[-1]


def partner_ids_of(account_ids: list[int]) -> dict[int, str]:
    """``{pk: partner_id}`` of the accounts that still exist, in one query."""
    return dict(Account.objects.filter(pk__in=account_ids).values_list("pk", "partner_id"))


def account_handle(pk: int, partner_id: str) -> Account:
    """An unsaved stand-in for an account whose ``pk`` and ``partner_id`` are known, for
    :func:`sync_account`, which reads nothing else before locking (and re-reading) the row.
    Never save it."""
    return Account(pk=pk, partner_id=partner_id)


def start_run() -> SyncRun:
    return SyncRun.objects.create()


def record_run_result(run_id: int, result: SyncResult) -> None:
    """Count one account's outcome in the run, atomically (many workers at once)."""
    runs = SyncRun.objects.filter(pk=run_id)
    if result.outcome == "synced":
        runs.update(accounts_synced=F("accounts_synced") + 1)
    elif result.outcome == "skipped":
        record_run_skipped(run_id, 1)
    else:
        add_run_failure(run_id, result.partner_id, result.error)


def record_run_results(run_id: int, results: list[SyncResult]) -> None:
    """Count several accounts' outcomes in the run at once: one ``UPDATE`` for the
    synced and skipped, one locked read-modify-write for the failures (if any)."""
    synced = sum(1 for result in results if result.outcome == "synced")
    skipped = sum(1 for result in results if result.outcome == "skipped")
    if synced or skipped:
        SyncRun.objects.filter(pk=run_id).update(
            accounts_synced=F("accounts_synced") + synced,
            accounts_skipped=F("accounts_skipped") + skipped,
        )
    failed = [(r.partner_id, r.error) for r in results if r.outcome == "failed"]
    if failed:
        add_run_failures(run_id, failed)


def record_run_skipped(run_id: int, count: int) -> None:
    SyncRun.objects.filter(pk=run_id).update(accounts_skipped=F("accounts_skipped") + count)


def add_run_failure(run_id: int, partner_id: str | None, reason: str, *, count: int = 1) -> None:
    """Count ``count`` failures and keep the reason (the list is capped, the count not)."""
    add_run_failures(run_id, [(partner_id, reason)], count=count)


def add_run_failures(
    run_id: int, reasons: Sequence[tuple[str | None, str]], *, count: int | None = None
) -> None:
    """Count ``count`` failures (default: one per reason) and keep the ``(partner_id,
    reason)`` pairs, up to ``MAX_RECORDED_FAILURES`` in all."""
    with transaction.atomic():
        run = SyncRun.objects.select_for_update().only("pk", "failures").filter(pk=run_id).first()
        if run is None:
            return
        failures = list(run.failures or [])
        room = max(0, MAX_RECORDED_FAILURES - len(failures))
        failures += [{"partner_id": p, "error": reason} for p, reason in reasons[:room]]
        SyncRun.objects.filter(pk=run_id).update(
            accounts_failed=F("accounts_failed") + (len(reasons) if count is None else count),
            failures=failures,
        )


def close_fan_out(run_id: int, *, dispatched: int, skipped: int) -> None:
    """Fix the run's total once every account has been handed out; from now on the run
    finishes when its counters reach the total."""
    SyncRun.objects.filter(pk=run_id).update(
        accounts_total=dispatched + skipped, accounts_skipped=F("accounts_skipped") + skipped
    )


def finish_run_if_complete(run_id: int) -> SyncRun | None:
    """Mark the run finished if every account is counted; returns it to exactly one
    caller (the conditional UPDATE is the arbiter), ``None`` to everyone else."""
    done = (
        SyncRun.objects.filter(pk=run_id, finished_at__isnull=True, accounts_total__isnull=False)
        .filter(
            accounts_total__lte=F("accounts_synced") + F("accounts_failed") + F("accounts_skipped")
        )
        .update(finished_at=timezone.now())
    )
    if not done:
        return None
    run = SyncRun.objects.get(pk=run_id)
    logger.info("%s", summarize_run(run))
    return run


def summarize_run(run: SyncRun) -> str:
    duration = run.duration
    took = f" in {duration.total_seconds():.1f} s" if duration is not None else " (running)"
    text = (
        f"Big Interview sync run #{run.pk}: {run.accounts_synced} synced, "
        f"{run.accounts_failed} failed, {run.accounts_skipped} skipped{took}"
    )
    reasons = "; ".join(f"{f.get('partner_id')}: {f.get('error')}" for f in run.failures[:5])
    if reasons:
        more = len(run.failures) - 5
        text += f". Failures: {reasons}" + (f" (+{more} more)" if more > 0 else "")
    return text


def sync_all_inline(
    run: SyncRun,
    client: BigInterviewClient,
    *,
    chunk_size: int,
    on_result: Callable[[SyncResult], None] | None = None,
) -> SyncRun:
    """Sync every account in this process, one after another, counting into ``run``.

    For the management command without ``--async``; production runs fan out instead.
    """
    skipped = count_skipped_accounts()
    dispatched = 0
    try:
        for ids in iter_account_id_chunks(chunk_size):
            for account in Account.objects.filter(pk__in=ids).order_by("pk"):
                result = sync_account_safely(account, client)
                record_run_result(run.pk, result)
                dispatched += 1
                if on_result is not None:
                    on_result(result)
    finally:
        close_fan_out(run.pk, dispatched=dispatched, skipped=skipped)
    finished = finish_run_if_complete(run.pk)
    run.refresh_from_db()
    return finished or run
