"""Celery tasks: thin wrappers around the domain (``webhooks.py``, ``sync.py``).

They add what Celery is for (retries, time limits, fan-out, scheduling) and nothing else.
Task names are stable (``biginterview.*``) so ``CELERY_BEAT_SCHEDULE`` entries keep working.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from collections.abc import Callable, Iterable
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from . import coordination, sync, webhooks
from .client import BigInterviewClient, _options_from_settings
from .conf import app_settings
from .exceptions import APIError
from .models import Account, SyncRun

logger = logging.getLogger(__name__)


# --- Sync tasks (sync.py) ------------------------------------------------------------
#
# Periodic schedule (works as is with django-celery-beat: a task name, no arguments):
#
#     CELERY_BEAT_SCHEDULE = {
#         "biginterview-sync-all": {
#             "task": "biginterview.sync_all_accounts",
#             "schedule": timedelta(hours=6),
#         },
#     }

SYNC_ALL_LOCK = "sync-all"


class SettingsTimeLimitTask(Task):
    """A task whose soft and hard time limits come from ``BIGINTERVIEW`` settings
    (``TASK_SOFT_TIME_LIMIT``, ``TASK_TIME_LIMIT``), read when the worker prepares it.

    A value set on the task (``@shared_task(soft_time_limit=...)``) wins over the setting.
    """

    _soft_time_limit: int | None = None
    _time_limit: int | None = None

    @property
    def soft_time_limit(self) -> int | None:
        if self._soft_time_limit is not None:
            return self._soft_time_limit
        return int(app_settings.TASK_SOFT_TIME_LIMIT)

    @soft_time_limit.setter
    def soft_time_limit(self, value: int | None) -> None:
        self._soft_time_limit = value

    @property
    def time_limit(self) -> int | None:
        if self._time_limit is not None:
            return self._time_limit
        return int(app_settings.TASK_TIME_LIMIT)

    @time_limit.setter
    def time_limit(self, value: int | None) -> None:
        self._time_limit = value


@functools.lru_cache(maxsize=4)
def _throttled_client(
    options: tuple[tuple[str, Any], ...], rate: float, redis_url: str | None
) -> BigInterviewClient:
    return BigInterviewClient(**dict(options), throttle=coordination.rate_limiter())


def sync_client() -> BigInterviewClient:
    """The process-wide client for syncing: pooled connections, and every request goes
    through the rate limiter shared by all workers (``RATE_LIMIT`` requests/s)."""
    return _throttled_client(
        _options_from_settings(), float(app_settings.RATE_LIMIT or 0), app_settings.REDIS_URL
    )


def sync_retry_delay(retries: int, retry_after: float | None = None) -> float:
    """Seconds before retry number ``retries + 1``: exponential backoff with full jitter,
    and never sooner than the service's ``Retry-After``."""
    base = float(app_settings.SYNC_RETRY_BACKOFF)
    cap = float(app_settings.SYNC_RETRY_BACKOFF_MAX)
    delay = random.uniform(0, min(cap, base * (2**retries)))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def _pending_name(account_id: int) -> str:
    return f"sync-account:{account_id}"


def _run_token(run_id: int) -> str:
    return f"run:{run_id}"


def _count_in_run(run_id: int | None, result: sync.SyncResult) -> None:
    if run_id is None:
        return
    sync.record_run_result(run_id, result)
    _finish_run(run_id)


def _finish_run(run_id: int) -> None:
    if sync.finish_run_if_complete(run_id) is not None:
        coordination.release_lock(SYNC_ALL_LOCK, _run_token(run_id))


@shared_task(bind=True, base=SettingsTimeLimitTask, name="biginterview.sync_account")
def sync_account(
    self: Task, account_id: int, run_id: int | None = None, partner_id: str | None = None
) -> dict[str, Any]:
    """Sync one account. Transient API errors retry with backoff; permanent ones are
    recorded on the account by the domain. Counts the outcome in ``run_id`` if given.

    A run passes ``partner_id`` along (read once per chunk), which saves loading the
    account: the sync locks and re-reads the row anyway before writing.
    """
    if run_id is None and self.request.retries == 0:
        # From now on a new change needs a new sync: this one may fetch too early.
        try:
            coordination.clear_pending(_pending_name(account_id))
        except Exception:  # store down: the marker's TTL clears it; the sync still runs
            logger.warning("Could not clear the pending-sync marker", exc_info=True)
    if partner_id is not None:
        account: Account | None = sync.account_handle(account_id, partner_id)
    else:
        account = Account.objects.filter(pk=account_id).first()
    if account is None:
        result = sync.SyncResult(account_id, "", "skipped", error="Account deleted.")
        _count_in_run(run_id, result)
        return result.as_dict()
    try:
        result = sync.sync_account(account, sync_client())
    except APIError as exc:  # transient: permanent errors come back as a failed result
        retries = self.request.retries
        if retries < int(app_settings.SYNC_MAX_RETRIES):
            delay = sync_retry_delay(retries, getattr(exc, "retry_after", None))
            logger.info(
                "Sync of %s: %s; retry %d in %.1f s", account.partner_id, exc, retries + 1, delay
            )
            raise self.retry(
                exc=exc, countdown=delay, max_retries=int(app_settings.SYNC_MAX_RETRIES)
            ) from None
        result = sync.record_sync_failure(account, exc)
    except Exception as exc:
        # Includes SoftTimeLimitExceeded. Count it so the run still finishes, then let
        # Celery log the failure.
        _count_in_run(run_id, sync.record_sync_failure(account, exc))
        raise
    _count_in_run(run_id, result)
    return result.as_dict()


#: How many of a run's accounts one ``sync_accounts`` task syncs, one after another.
#: Grouping spreads Celery's per-message work and the run's bookkeeping (two queries)
#: over several accounts; the worker pool still syncs many groups at once.
ACCOUNTS_PER_TASK = 10


@shared_task(base=SettingsTimeLimitTask, name="biginterview.sync_account_batch")
def sync_account_batch(run_id: int, account_ids: list[int]) -> int:
    """Fan one chunk of a run out into ``sync_accounts`` tasks of ``ACCOUNTS_PER_TASK``
    accounts (keeps ``sync_all_accounts`` short however many accounts there are).
    Accounts deleted meanwhile count as skipped. Returns how many accounts were sent."""
    partner_ids = sync.partner_ids_of(account_ids)
    gone = len(account_ids) - len(partner_ids)
    if gone:
        sync.record_run_skipped(run_id, gone)
        _finish_run(run_id)
    members = [[pk, partner_ids[pk]] for pk in account_ids if pk in partner_ids]
    for start in range(0, len(members), ACCOUNTS_PER_TASK):
        try:
            sync_accounts.apply_async(args=(run_id, members[start : start + ACCOUNTS_PER_TASK]))
        except Exception as exc:  # broker trouble: count the rest as failed
            left = len(members) - start
            logger.warning("Could not enqueue %d account syncs of run %s", left, run_id)
            sync.add_run_failure(
                run_id, None, f"{left} not enqueued: {type(exc).__name__}", count=left
            )
            _finish_run(run_id)
            return start
    return len(members)


def _sync_member(
    run_id: int, account_id: int, partner_id: str, client: BigInterviewClient
) -> sync.SyncResult | None:
    """Sync one account of a group; ``None`` when it was handed to its own retrying
    ``sync_account`` task (a transient error), which then counts it in the run."""
    account = sync.account_handle(account_id, partner_id)
    try:
        return sync.sync_account(account, client)
    except APIError as exc:  # transient: permanent errors come back as a failed result
        if int(app_settings.SYNC_MAX_RETRIES) > 0:
            delay = sync_retry_delay(0, getattr(exc, "retry_after", None))
            try:
                # This attempt was the first: the retrying task has one retry fewer.
                # (``retries`` is a documented message option that celery-types lacks.)
                sync_account.apply_async(  # type: ignore[call-arg]
                    args=(account_id, run_id, partner_id), countdown=delay, retries=1
                )
            except Exception:  # broker trouble: record the sync failure instead
                logger.warning("Could not enqueue a retry of %s", partner_id, exc_info=True)
            else:
                logger.info("Sync of %s: %s; retry 1 in %.1f s", partner_id, exc, delay)
                return None
        return sync.record_sync_failure(account, exc)
    except SoftTimeLimitExceeded:
        raise
    except Exception as exc:  # one failing account never stops the rest
        logger.exception("Unexpected error while syncing %s", partner_id)
        return sync.record_sync_failure(account, exc)


@shared_task(base=SettingsTimeLimitTask, name="biginterview.sync_accounts")
def sync_accounts(run_id: int, accounts: list[list[Any]]) -> int:
    """Sync a group of a run's accounts (``[[pk, partner_id], ...]``), each in its own
    transaction, then count them all in the run at once. Returns how many were synced.

    A group still running after half its soft time limit (a low ``RATE_LIMIT`` shared by
    many workers) hands its remaining accounts to a new task. If the task is stopped
    (time limit, database gone), the accounts it did not finish count as failed so the
    run still finishes.
    """
    deadline = time.monotonic() + float(app_settings.TASK_SOFT_TIME_LIMIT) / 2
    pending = [(int(pk), str(partner_id)) for pk, partner_id in accounts]
    results: list[sync.SyncResult] = []
    try:
        client = sync_client()
        attempted = 0
        while pending:
            if attempted and time.monotonic() > deadline:
                sync_accounts.apply_async(args=(run_id, [list(item) for item in pending]))
                pending = []
                break
            result = _sync_member(run_id, *pending[0], client)
            pending.pop(0)
            attempted += 1
            if result is not None:
                results.append(result)
    except BaseException as exc:
        reason = f"Not synced: {type(exc).__name__}"
        results += [sync.SyncResult(pk, pid, "failed", error=reason) for pk, pid in pending]
        raise
    finally:
        if results:
            sync.record_run_results(run_id, results)
            _finish_run(run_id)
    return sum(1 for result in results if result.outcome == "synced")


def _begin_sync_all() -> SyncRun | None:
    """A new run holding the "sync all" lock, or ``None`` if another run holds it."""
    token: str | None = None
    try:
        with transaction.atomic():
            run = sync.start_run()
            token = _run_token(run.pk)
            if not coordination.acquire_lock(SYNC_ALL_LOCK, token, app_settings.SYNC_LOCK_TIMEOUT):
                token = None
                transaction.set_rollback(True)
                return None
    except BaseException:
        if token is not None:
            coordination.release_lock(SYNC_ALL_LOCK, token)
        raise
    return run


@shared_task(base=SettingsTimeLimitTask, name="biginterview.sync_all_accounts")
def sync_all_accounts() -> int | None:
    """Sync every account: fan out in chunks of ``SYNC_CHUNK_SIZE``; leaves a ``SyncRun``.

    Does nothing (returns ``None``) while another run holds the lock. The run finishes,
    and the lock is released, when the last account's task has counted itself.
    """
    run = _begin_sync_all()
    if run is None:
        logger.info("Big Interview sync all: another run is in progress; nothing to do")
        return None
    dispatched = 0
    skipped = 0
    try:
        skipped = sync.count_skipped_accounts()
        for ids in sync.iter_account_id_chunks(int(app_settings.SYNC_CHUNK_SIZE)):
            sync_account_batch.apply_async(args=(run.pk, ids))
            dispatched += len(ids)
    except BaseException as exc:
        sync.add_run_failure(run.pk, None, f"Fan-out stopped: {type(exc).__name__}", count=0)
        coordination.release_lock(SYNC_ALL_LOCK, _run_token(run.pk))
        raise
    finally:
        sync.close_fan_out(run.pk, dispatched=dispatched, skipped=skipped)
        _finish_run(run.pk)
    logger.info("Big Interview sync run #%s: %d accounts dispatched", run.pk, dispatched)
    return run.pk


def sync_all_inline(on_result: Callable[[sync.SyncResult], None] | None = None) -> SyncRun | None:
    """Run "sync all" in this process (the command without ``--async``), under the same lock
    and with the same ``SyncRun`` books. ``None`` if another run holds the lock."""
    run = _begin_sync_all()
    if run is None:
        return None
    try:
        return sync.sync_all_inline(
            run,
            sync_client(),
            chunk_size=int(app_settings.SYNC_CHUNK_SIZE),
            on_result=on_result,
        )
    finally:
        coordination.release_lock(SYNC_ALL_LOCK, _run_token(run.pk))


def schedule_account_sync(account_id: int) -> None:
    """Schedule one sync of ``account_id`` on commit; at most one pending per account.

    The pending marker is cleared when the sync starts, so a change arriving during a sync
    schedules another one. A broker outage is logged, never raised: the next webhook or
    the periodic sync catches up.
    """

    def send() -> None:
        name = _pending_name(account_id)
        try:
            if not coordination.claim_pending(name, app_settings.SYNC_PENDING_TIMEOUT):
                return
        except Exception:  # store down: a duplicate sync is harmless
            logger.warning("Pending-sync marker unavailable", exc_info=True)
        try:
            sync_account.apply_async(args=(account_id,), retry=False)
        except Exception:  # any broker error
            logger.warning("Could not enqueue a sync of account %s", account_id, exc_info=True)
            try:
                coordination.clear_pending(name)
            except Exception:  # best effort; the TTL clears it anyway
                logger.debug("Could not clear the pending marker", exc_info=True)

    transaction.on_commit(send)


# --- Webhook tasks (webhooks.py) -------------------------------------------------------
#
# Periodic schedule (task names, no arguments):
#
#     "biginterview-sweep-webhooks": {"task": "biginterview.sweep_webhook_events",
#                                     "schedule": timedelta(minutes=1)},
#     "biginterview-purge-webhooks": {"task": "biginterview.purge_webhook_events",
#                                     "schedule": timedelta(hours=1)},


def schedule_syncs_after_webhooks(account_ids: Iterable[int | None]) -> None:
    """Ask for a track-progress sync of each account an interview event touched.

    Scheduling is a follow-up, never part of the event: its failure is logged and the
    event stays processed (the periodic sync catches up).
    """
    for account_id in {a for a in account_ids if a is not None}:
        try:
            schedule_account_sync(account_id)
        except Exception:  # whatever the sync side raises, the event stands
            logger.warning("Could not schedule a sync of account %s", account_id, exc_info=True)


def _process(event_id: int) -> webhooks.ProcessOutcome:
    outcome = webhooks.process_event(event_id)
    if outcome.failed:
        logger.warning("Webhook event %s failed: %s", event_id, outcome.reason)
    return outcome


@shared_task(
    base=SettingsTimeLimitTask,
    name="biginterview.process_webhook_event",
    acks_late=True,
    ignore_result=True,
)
def process_webhook_event(event_id: int) -> str:
    """Process one stored webhook event (by primary key).

    ``acks_late``: the message is acknowledged only after the task ran, so a worker shut
    down mid-task (a warm shutdown, a lost connection) leaves it to be redelivered; an
    event whose worker died outright stays ``pending`` and the sweeper re-enqueues it.
    Either way the domain locks the event row and re-reads its status, so a redelivery
    never processes an event twice. A failure is stored on the row (the sweeper retries
    it with backoff), so the task itself does not retry.
    """
    outcome = _process(event_id)
    schedule_syncs_after_webhooks([outcome.sync_account_id])
    return outcome.status


@shared_task(
    base=SettingsTimeLimitTask,
    name="biginterview.process_webhook_events",
    acks_late=True,
    ignore_result=True,
)
def process_webhook_events(event_ids: list[int]) -> list[str]:
    """Process several stored events, each in its own transaction, in the order given.

    What the receiver's publisher (``publisher.py``) sends; same guarantees as
    :func:`process_webhook_event` for each event.
    """
    outcomes = [_process(event_id) for event_id in event_ids]
    schedule_syncs_after_webhooks(outcome.sync_account_id for outcome in outcomes)
    return [outcome.status for outcome in outcomes]


@shared_task(
    base=SettingsTimeLimitTask, name="biginterview.sweep_webhook_events", ignore_result=True
)
def sweep_webhook_events() -> int:
    """Re-enqueue events stuck ``pending`` (the broker was down when they arrived) and
    ``failed`` events whose backoff has passed; returns how many were sent."""
    sent = 0
    for event_id in webhooks.claim_due_events():
        try:
            process_webhook_event.apply_async(
                args=(event_id,),
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
            )
        except Exception:  # broker still down: the lease expires, next sweep retries
            logger.warning("Webhook sweeper could not reach the broker", exc_info=True)
            break
        sent += 1
    if sent:
        logger.info("Webhook sweeper re-enqueued %d event(s)", sent)
    return sent


@shared_task(
    base=SettingsTimeLimitTask, name="biginterview.purge_webhook_events", ignore_result=True
)
def purge_webhook_events() -> int:
    """Delete processed and ignored events older than ``WEBHOOK_RETENTION``.

    A retention under two hours is refused: logged as an error and raised, so the
    misconfiguration shows in the worker's log and in the task's result.
    """
    try:
        deleted = webhooks.purge_events()
    except ImproperlyConfigured as exc:
        logger.error("Webhook purge refused: %s", exc)
        raise
    if deleted:
        logger.info("Purged %d old webhook event(s)", deleted)
    return deleted
