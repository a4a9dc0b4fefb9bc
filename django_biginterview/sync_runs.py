"""The life and the books of a "sync all" run, as plain functions; Celery is in ``tasks.py``.

A run:

1. begins holding the "sync all" lease (:func:`begin`), so two runs never overlap;
2. counts each account's outcome exactly once (:func:`record_results`), however often a
   redelivered or retried task reports it;
3. keeps the lease while it shows signs of life (:func:`keep_alive`): progress, or a retry
   waiting for its countdown;
4. finishes when every account is counted (:func:`finish_if_complete`), which releases the
   lease. A run whose lease lapsed (no sign of life for ``SYNC_LOCK_TIMEOUT``: its worker
   died with the messages) is closed as lost by :func:`close_lost_runs`, which counts the
   accounts that never reported; the next run syncs them. A report that arrives after
   that still moves its account from lost to its outcome, once.

Whichever of the two ends a run logs its summary (at ERROR when an account failed or
was lost) and sends ``sync_run_finished``; each run ends once, so both happen once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q, QuerySet
from django.utils import timezone

from . import coordination, sso
from .client import BigInterviewClient
from .conf import app_settings
from .models import Account, SyncRun, SyncRunOutcome
from .signals import sync_run_finished
from .sync import SyncResult, sync_account_safely

logger = logging.getLogger(__name__)

#: The name of the "sync all" lease in the coordination store.
LEASE = "sync-all"

#: A run keeps at most this many failure reasons (the counter stays exact), so a run
#: during an outage does not grow one JSON value without bound.
MAX_RECORDED_FAILURES = 200

#: How long the per-account outcomes of a run closed as lost are kept, so a late report
#: still counts once. Broker redelivery (Redis' ``visibility_timeout``) is far shorter.
OUTCOMES_KEPT_FOR = timedelta(days=1)


def lease_token(run_id: int) -> str:
    return f"run:{run_id}"


def lease_ttl() -> timedelta:
    ttl: timedelta = app_settings.SYNC_LOCK_TIMEOUT
    return ttl


# --- Which accounts a run visits --------------------------------------------------------


def accounts_to_sync() -> QuerySet[Account]:
    """Accounts a "sync all" visits: those not known to be missing on Big Interview
    (a 404 would only repeat; "sync now" in the admin still checks them), and not
    anonymous accounts past their 24-hour life (``sso.past_anonymous_life``)."""
    return Account.objects.filter(remote_missing_at__isnull=True).exclude(sso.past_anonymous_life())


def count_skipped_accounts() -> int:
    """The accounts :func:`accounts_to_sync` leaves out."""
    return Account.objects.filter(
        Q(remote_missing_at__isnull=False) | sso.past_anonymous_life()
    ).count()


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


def unreported(run_id: int, account_ids: Sequence[int]) -> list[int]:
    """Those of ``account_ids`` whose outcome the run has not counted yet, in order."""
    seen = set(
        SyncRunOutcome.objects.filter(run_id=run_id, account_id__in=account_ids).values_list(
            "account_id", flat=True
        )
    )
    return [pk for pk in account_ids if pk not in seen]


# --- Lease ------------------------------------------------------------------------------


def begin() -> SyncRun | None:
    """A new run holding the lease, or ``None`` while another live run holds it.

    Runs whose lease lapsed are closed as lost first, so they never stay open beside the
    new one.
    """
    close_lost_runs()
    token: str | None = None
    try:
        with transaction.atomic():
            run = SyncRun.objects.create()
            token = lease_token(run.pk)
            if not coordination.acquire_lock(LEASE, token, lease_ttl()):
                token = None
                transaction.set_rollback(True)
                return None
    except BaseException:
        if token is not None:
            coordination.release_lock(LEASE, token)
        raise
    return run


def keep_alive(run_id: int, *, waiting: float = 0.0) -> bool:
    """Renew the run's lease: for ``SYNC_LOCK_TIMEOUT``, plus ``waiting`` seconds when
    work of the run waits that long (a retry's countdown). ``False`` when the run does
    not hold it (any more), or the store is unreachable (logged)."""
    ttl = lease_ttl() + timedelta(seconds=max(0.0, waiting))
    try:
        return coordination.renew_lock(LEASE, lease_token(run_id), ttl)
    except Exception:  # store down: the lease cannot lapse unseen either (see close_lost_runs)
        logger.warning("Could not renew the lease of sync run #%s", run_id, exc_info=True)
        return False


class Heartbeat:
    """Calls :func:`keep_alive` at most every tenth of the lease's TTL, so a loop can
    call it after every account for the price of a clock read."""

    def __init__(self, run_id: int) -> None:
        self.run_id = run_id
        self._next = 0.0

    def __call__(self) -> None:
        now = time.monotonic()
        if now >= self._next:
            keep_alive(self.run_id)
            self._next = now + lease_ttl().total_seconds() / 10


# --- Books ------------------------------------------------------------------------------


def record_results(run_id: int, results: Sequence[SyncResult]) -> int:
    """Count each account's outcome in the run once; returns how many were new.

    The run row is locked while the outcomes are checked and inserted, so simultaneous
    reports of one account (a redelivered task beside its retry) count once. A report for
    a run already closed as lost moves its account from lost to its outcome; one for a
    run that finished complete is a repeat and counts nothing.
    """
    by_account = {result.account_id: result for result in results}
    if not by_account:
        return 0
    with transaction.atomic():
        run = (
            SyncRun.objects.select_for_update()
            .only("pk", "finished_at", "lost_reason", "accounts_lost", "failures")
            .filter(pk=run_id)
            .first()
        )
        if run is None:
            return 0
        late = run.finished_at is not None
        if late and not (
            run.lost_reason
            and run.accounts_lost
            and run.finished_at is not None
            and run.finished_at > timezone.now() - OUTCOMES_KEPT_FOR
        ):
            return 0
        fresh = [by_account[pk] for pk in unreported(run_id, list(by_account))]
        if late:
            fresh = fresh[: run.accounts_lost]
        if not fresh:
            return 0
        SyncRunOutcome.objects.bulk_create(
            SyncRunOutcome(run_id=run_id, account_id=r.account_id, outcome=r.outcome) for r in fresh
        )
        updates: dict[str, Any] = {
            "accounts_synced": F("accounts_synced") + sum(r.outcome == "synced" for r in fresh),
            "accounts_skipped": F("accounts_skipped") + sum(r.outcome == "skipped" for r in fresh),
            "accounts_failed": F("accounts_failed") + sum(r.outcome == "failed" for r in fresh),
        }
        failed = [(r.partner_id or None, r.error) for r in fresh if r.outcome == "failed"]
        if failed:
            updates["failures"] = _with_failures(run.failures, failed)
        if late:
            updates["accounts_lost"] = F("accounts_lost") - len(fresh)
        SyncRun.objects.filter(pk=run_id).update(**updates)
    return len(fresh)


def _with_failures(
    failures: list[dict[str, Any]] | None, reasons: Sequence[tuple[str | None, str]]
) -> list[dict[str, Any]]:
    kept = list(failures or [])
    room = max(0, MAX_RECORDED_FAILURES - len(kept))
    return kept + [{"partner_id": p, "error": reason} for p, reason in reasons[:room]]


def note_failure(run_id: int, reason: str) -> None:
    """Keep a reason that concerns the whole run (the fan-out stopped), counting nothing."""
    with transaction.atomic():
        run = SyncRun.objects.select_for_update().only("pk", "failures").filter(pk=run_id).first()
        if run is not None:
            SyncRun.objects.filter(pk=run_id).update(
                failures=_with_failures(run.failures, [(None, reason)])
            )


def close_fan_out(run_id: int, *, dispatched: int, skipped: int) -> None:
    """Fix the run's total once every account has been handed out; from now on the run
    finishes when its counters reach the total. ``skipped`` are the accounts known to be
    missing remotely, which the run does not visit."""
    SyncRun.objects.filter(pk=run_id).update(
        accounts_total=dispatched + skipped, accounts_skipped=F("accounts_skipped") + skipped
    )


def finish_if_complete(run_id: int) -> SyncRun | None:
    """Mark the run finished if every account is counted, release its lease and forget
    its per-account outcomes; returns the run to exactly one caller (the conditional
    UPDATE is the arbiter), ``None`` to everyone else. That caller announces the end
    (:func:`_announce_end`)."""
    done = (
        SyncRun.objects.filter(pk=run_id, finished_at__isnull=True, accounts_total__isnull=False)
        .filter(
            accounts_total__lte=F("accounts_synced") + F("accounts_failed") + F("accounts_skipped")
        )
        .update(finished_at=timezone.now())
    )
    if not done:
        return None
    SyncRunOutcome.objects.filter(run_id=run_id).delete()
    try:
        coordination.release_lock(LEASE, lease_token(run_id))
    except Exception:  # store down: the lease lapses by itself
        logger.warning("Could not release the lease of sync run #%s", run_id, exc_info=True)
    run = SyncRun.objects.get(pk=run_id)
    _announce_end(run)
    return run


def close_lost_runs(now: datetime | None = None) -> list[SyncRun]:
    """Close every unfinished run that no longer holds the lease; returns them. Also
    forgets the outcomes of runs finished more than ``OUTCOMES_KEPT_FOR`` ago.

    Such a run shows no sign of life: its lease lapsed (or a newer run holds it). Its
    accounts that never reported are counted as lost, with the reason. While the store
    is unreachable nothing is closed: a live run could not prove it is alive.
    """
    now = now or timezone.now()
    SyncRunOutcome.objects.filter(run__finished_at__lt=now - OUTCOMES_KEPT_FOR).delete()
    open_runs = list(SyncRun.objects.filter(finished_at__isnull=True).values_list("pk", flat=True))
    if not open_runs:
        return []
    try:
        holder = coordination.lock_holder(LEASE)
    except Exception:
        logger.warning("Lease store unreachable: no sync run closed", exc_info=True)
        return []
    closed = []
    for run_id in open_runs:
        if holder != lease_token(run_id):
            run = _close_as_lost(run_id, now)
            if run is not None:
                closed.append(run)
    return closed


def _close_as_lost(run_id: int, now: datetime) -> SyncRun | None:
    with transaction.atomic():
        run = SyncRun.objects.select_for_update().filter(pk=run_id).first()
        if run is None or run.finished_at is not None:
            return None
        counted = run.accounts_synced + run.accounts_failed + run.accounts_skipped
        if run.accounts_total is None:  # the fan-out itself died: count what it missed
            reported = SyncRunOutcome.objects.filter(run_id=run_id).values("account_id")
            lost = accounts_to_sync().exclude(pk__in=reported).count()
            total = counted + lost
        else:
            total = run.accounts_total
            lost = max(0, total - counted)
        run.finished_at = now
        run.accounts_total = total
        run.accounts_lost = lost
        if lost:
            minutes = lease_ttl().total_seconds() / 60
            run.lost_reason = (
                f"No sign of life for {minutes:g} minutes: {lost} account(s) were never "
                "reported (their worker was lost with its tasks). The next run syncs them."
            )
        run.save(update_fields=["finished_at", "accounts_total", "accounts_lost", "lost_reason"])
        _announce_end(run)
    if not lost:
        SyncRunOutcome.objects.filter(run_id=run_id).delete()
    return run


def _announce_end(run: SyncRun) -> None:
    """Log the summary of a run that just ended, at ERROR when an account failed or was
    lost (else INFO), and send ``sync_run_finished`` once the end is committed. Called
    only by the caller that ended the run, so once per run."""
    ok = not (run.accounts_failed or run.accounts_lost)
    logger.log(logging.INFO if ok else logging.ERROR, "%s", summarize_run(run))
    transaction.on_commit(lambda: sync_run_finished.send(sender=SyncRun, run=run, ok=ok))


def summarize_run(run: SyncRun) -> str:
    duration = run.duration
    took = f" in {duration.total_seconds():.1f} s" if duration is not None else " (running)"
    text = (
        f"Big Interview sync run #{run.pk}: {run.accounts_synced} synced, "
        f"{run.accounts_failed} failed, {run.accounts_skipped} skipped{took}"
    )
    if run.lost_reason:
        text += f"; closed as lost, {run.accounts_lost} account(s) lost: {run.lost_reason}"
    reasons = "; ".join(f"{f.get('partner_id')}: {f.get('error')}" for f in run.failures[:5])
    if reasons:
        more = len(run.failures) - 5
        text += f". Failures: {reasons}" + (f" (+{more} more)" if more > 0 else "")
    return text


# --- Running in this process ------------------------------------------------------------


def sync_all_inline(
    client: BigInterviewClient,
    *,
    chunk_size: int,
    on_result: Callable[[SyncResult], None] | None = None,
) -> SyncRun | None:
    """Sync every account in this process, one after another, with the same lease and
    books as a fanned-out run (the command without ``--async``). ``None`` while another
    run holds the lease."""
    run = begin()
    if run is None:
        return None
    heartbeat = Heartbeat(run.pk)
    skipped = count_skipped_accounts()
    dispatched = 0
    try:
        for ids in iter_account_id_chunks(chunk_size):
            for account in Account.objects.filter(pk__in=ids).order_by("pk"):
                result = sync_account_safely(account, client)
                record_results(run.pk, [result])
                dispatched += 1
                heartbeat()
                if on_result is not None:
                    on_result(result)
    finally:
        close_fan_out(run.pk, dispatched=dispatched, skipped=skipped)
        finished = finish_if_complete(run.pk)
        if finished is None:  # stopped early: the lease is released, the run is lost
            coordination.release_lock(LEASE, lease_token(run.pk))
            close_lost_runs()
    run.refresh_from_db()
    return run
