"""Celery tasks: wrappers around the domain (``webhook_processing.py``, ``sync.py``,
``sync_runs.py``).

They add what Celery is for: retries, time limits, fan-out, scheduling, and handing work
back to the broker (a sync held back by the rate limit, a group past half its time
limit). Because the sync tasks are redelivered when their worker dies, they also count
their deliveries (:class:`Delivery`), so an account that kills its worker every time is
given up on. What a sync or a run does is the domain's. Task names are stable
(``biginterview.*``) so ``CELERY_BEAT_SCHEDULE`` entries keep working.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from celery import Task, shared_task
from celery.exceptions import SoftTimeLimitExceeded
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction

from . import coordination, sso, status, sync, sync_runs, webhook_processing
from .client import BigInterviewClient
from .conf import app_settings
from .exceptions import APIError, InvalidPartnerId
from .models import Account

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
#         "biginterview-close-lost-sync-runs": {
#             "task": "biginterview.close_lost_sync_runs",
#             "schedule": timedelta(minutes=1),
#         },
#     }


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
        return app_settings.TASK_SOFT_TIME_LIMIT

    @soft_time_limit.setter
    def soft_time_limit(self, value: int | None) -> None:
        self._soft_time_limit = value

    @property
    def time_limit(self) -> int | None:
        if self._time_limit is not None:
            return self._time_limit
        return app_settings.TASK_TIME_LIMIT

    @time_limit.setter
    def time_limit(self, value: int | None) -> None:
        self._time_limit = value


#: The longest a sync task waits in a worker for its next request slot. A longer wait is
#: handed back to the broker as a countdown (``coordination.Throttled``), so syncs held
#: back by ``RATE_LIMIT`` never occupy the worker processes webhook processing needs.
MAX_THROTTLE_WAIT = 0.25


def _reserve_later(client: BigInterviewClient) -> float:
    """Reserve the two request slots of one account's sync, however far away, and
    return the seconds until they are due."""
    limiter = client.throttle
    if not isinstance(limiter, coordination.RateLimiter):
        return 0.0
    return limiter.reserve(2, bounded=False)[0]


def _later(wait: float) -> float:
    """A countdown for work handed back by the rate limiter: the wait, spread a little
    so the tasks handed back together do not all come back at once."""
    return wait * random.uniform(1.0, 1.2)


def sync_retry_delay(retries: int, retry_after: float | None = None) -> float:
    """Seconds before retry number ``retries + 1``: exponential backoff with full jitter,
    and never sooner than the service's ``Retry-After``."""
    base = app_settings.SYNC_RETRY_BACKOFF
    cap = app_settings.SYNC_RETRY_BACKOFF_MAX
    delay = random.uniform(0, min(cap, base * (2**retries)))
    if retry_after is not None:
        delay = max(delay, retry_after)
    return delay


def _pending_name(account_id: int, interactive: bool = False) -> str:
    # Apart for interactive syncs: one pending in the default queue, possibly behind a
    # "sync all", must not hold back the one a user is waiting for.
    return f"sync-account:{account_id}{':interactive' if interactive else ''}"


def _marked(interactive: bool) -> dict[str, Any]:
    """The task keyword marking an interactive sync (left out otherwise)."""
    return {"interactive": True} if interactive else {}


def _routing(interactive: bool) -> dict[str, Any]:
    """``apply_async`` options sending a sync a user is waiting for to
    ``INTERACTIVE_QUEUE`` (when set), ahead of the queue a "sync all" fills."""
    queue = app_settings.INTERACTIVE_QUEUE if interactive else None
    return {"queue": queue} if queue else {}


#: How long a message's delivery count is remembered: far longer than any redelivery.
DELIVERY_MEMORY = timedelta(days=1)

#: What the sync tasks need from the broker to survive a killed worker: the message is
#: acknowledged only once the task ran, and a task whose worker process died is put back
#: in the queue at once. The domain's writes and the run's books are idempotent, and
#: :class:`Delivery` stops the loop an account that kills its worker every time would make.
REDELIVER_ON_WORKER_LOSS: dict[str, Any] = {"acks_late": True, "reject_on_worker_lost": True}


class Delivery:
    """Which delivery of a task's message this is (1 for the first), counted in the
    coordination store under the task id and retry number, which a redelivered message
    keeps. A store that is down counts every delivery as the first (logged)."""

    def __init__(self, task: Task) -> None:
        self.name = f"{task.request.id}:{task.request.retries}"
        if task.request.id is None:  # called as a function, not delivered by a broker
            self.count = 1
            return
        try:
            self.count = coordination.count_delivery(self.name, DELIVERY_MEMORY)
        except Exception:
            logger.warning("Delivery counter unavailable", exc_info=True)
            self.count = 1

    @property
    def redelivered(self) -> bool:
        """A worker was lost while running this message before."""
        return self.count > 1

    @property
    def exhausted(self) -> bool:
        """The message was redelivered more than ``SYNC_MAX_DELIVERIES`` allows."""
        return self.count > app_settings.SYNC_MAX_DELIVERIES

    def working_on(self, account_id: int) -> None:
        """Note the account being synced, so a give-up knows which one killed the worker."""
        try:
            coordination.remember(f"{self.name}:current", str(account_id), DELIVERY_MEMORY)
        except Exception:
            logger.debug("Could not note the current account", exc_info=True)

    def suspect(self) -> int | None:
        """The account a lost worker was syncing, if it was noted."""
        try:
            value = coordination.recall(f"{self.name}:current")
        except Exception:
            return None
        return int(value) if value and value.isdigit() else None

    def reason(self) -> str:
        return (
            f"The worker process was lost {self.count - 1} times while syncing this account "
            "(killed, for example by the out-of-memory killer); gave up."
        )


def _record(run_id: int | None, results: list[sync.SyncResult]) -> None:
    """Count ``results`` in the run (each account once) and finish it if complete."""
    if run_id is None or not results:
        return
    sync_runs.record_results(run_id, results)
    sync_runs.finish_if_complete(run_id)


@shared_task(
    bind=True, base=SettingsTimeLimitTask, name="biginterview.sync_account",
    **REDELIVER_ON_WORKER_LOSS,
)  # fmt: skip
def sync_account(
    self: Task,
    account_id: int,
    run_id: int | None = None,
    partner_id: str | None = None,
    slots_reserved: bool = False,
    interactive: bool = False,
) -> dict[str, Any]:
    """Sync one account. Transient API errors retry with backoff; permanent ones are
    recorded on the account by the domain. Counts the outcome in ``run_id`` if given.

    A run passes ``partner_id`` along (read once per chunk), which saves loading the
    account: the sync locks and re-reads the row anyway before writing. When the rate
    limit has no slot soon, the task reserves its two slots however far away and comes
    back for them with a countdown (``slots_reserved``), holding no worker meanwhile.
    An ``interactive`` sync (a user is waiting) stays in ``INTERACTIVE_QUEUE`` through
    its retries and hand-backs.
    """
    if run_id is None and self.request.retries == 0:
        # From now on a new change needs a new sync: this one may fetch too early.
        try:
            coordination.clear_pending(_pending_name(account_id, interactive))
        except Exception:  # store down: the marker's TTL clears it; the sync still runs
            logger.warning("Could not clear the pending-sync marker", exc_info=True)
    if partner_id is not None:
        account: Account | None = sync.account_handle(account_id, partner_id)
    else:
        account = Account.objects.filter(pk=account_id).first()
    if account is None:
        result = sync.SyncResult(account_id, "", "skipped", error="Account deleted.")
        _record(run_id, [result])
        return result.as_dict()
    delivery = Delivery(self)
    if delivery.exhausted:
        result = sync.record_sync_failure(account, RuntimeError(delivery.reason()))
        _record(run_id, [result])
        return result.as_dict()
    client = sync.sync_client(max_wait=MAX_THROTTLE_WAIT)
    try:
        result = sync.sync_account(account, client, reserved=slots_reserved)
    except coordination.Throttled as throttled:  # the same sync, later; not a retry
        countdown = max(throttled.wait, _reserve_later(client))
        if run_id is not None:
            sync_runs.keep_alive(run_id, waiting=countdown)
        sync_account.apply_async(
            args=(account_id, run_id, partner_id),
            kwargs={"slots_reserved": True, **_marked(interactive)},
            countdown=countdown,
            retries=self.request.retries,
            **_routing(interactive),
        )
        return {"account_id": account_id, "outcome": "deferred", "wait": countdown}
    except APIError as exc:  # transient: permanent errors come back as a failed result
        retries = self.request.retries
        if retries < app_settings.SYNC_MAX_RETRIES:
            delay = sync_retry_delay(retries, exc.retry_after)
            logger.info(
                "Sync of %s: %s; retry %d in %.1f s", account.partner_id, exc, retries + 1, delay
            )
            if run_id is not None:  # the retry keeps the run alive while it waits
                sync_runs.keep_alive(run_id, waiting=delay)
            raise self.retry(
                exc=exc,
                countdown=delay,
                max_retries=app_settings.SYNC_MAX_RETRIES,
                # The retry takes slots of its own.
                kwargs={"slots_reserved": False, **_marked(interactive)},
                **_routing(interactive),
            ) from None
        result = sync.record_sync_failure(account, exc)
    except Exception as exc:
        # Includes SoftTimeLimitExceeded. Count it so the run still finishes, then let
        # Celery log the failure.
        _record(run_id, [sync.record_sync_failure(account, exc)])
        raise
    _record(run_id, [result])
    return result.as_dict()


#: How many of a run's accounts one ``sync_accounts`` task syncs, one after another.
#: Grouping spreads Celery's per-message work and the run's bookkeeping (four queries)
#: over several accounts; the worker pool still syncs many groups at once.
ACCOUNTS_PER_TASK = 10


@shared_task(
    bind=True, base=SettingsTimeLimitTask, name="biginterview.sync_account_batch",
    **REDELIVER_ON_WORKER_LOSS,
)  # fmt: skip
def sync_account_batch(self: Task, run_id: int, account_ids: list[int]) -> int:
    """Fan one chunk of a run out into ``sync_accounts`` tasks of ``ACCOUNTS_PER_TASK``
    accounts (keeps ``sync_all_accounts`` short however many accounts there are).
    Accounts deleted meanwhile count as skipped. Returns how many accounts were sent.

    Delivered again after its worker died, it sends only the accounts the run has not
    counted yet (a group it sent before may be synced twice; the books count it once).
    """
    delivery = Delivery(self)
    if delivery.redelivered:
        account_ids = sync_runs.unreported(run_id, account_ids)
        if delivery.exhausted:
            reason = f"Not sent: the worker was lost {delivery.count - 1} times fanning out."
            failed = [sync.SyncResult(pk, "", "failed", error=reason) for pk in account_ids]
            _record(run_id, failed)
            return 0
    sync_runs.keep_alive(run_id)
    partner_ids = sync_runs.partner_ids_of(account_ids)
    gone = [pk for pk in account_ids if pk not in partner_ids]
    _record(run_id, [sync.SyncResult(pk, "", "skipped", error="Account deleted.") for pk in gone])
    members = [(pk, partner_ids[pk]) for pk in account_ids if pk in partner_ids]
    for start in range(0, len(members), ACCOUNTS_PER_TASK):
        group = [list(member) for member in members[start : start + ACCOUNTS_PER_TASK]]
        try:
            sync_accounts.apply_async(args=(run_id, group))
        except Exception as exc:  # broker trouble: count the rest as failed
            left = members[start:]
            logger.warning("Could not enqueue %d account syncs of run %s", len(left), run_id)
            reason = f"Not enqueued: {type(exc).__name__}"
            _record(run_id, [sync.SyncResult(pk, pid, "failed", error=reason) for pk, pid in left])
            return start
    return len(members)


def _settle_member(
    run_id: int, account: Account, fetched: sync.Snapshot | Exception
) -> sync.SyncResult | None:
    """Write one fetched account of a group, or deal with why its fetch failed; ``None``
    when it was handed to its own retrying ``sync_account`` task (a transient error),
    which then counts it in the run. ``Throttled`` is raised for the caller."""
    try:
        if isinstance(fetched, coordination.Throttled):
            raise fetched
        if isinstance(fetched, APIError | InvalidPartnerId):
            return sync.apply_failure(account, fetched)
        if isinstance(fetched, Exception):
            raise fetched
        return sync.apply_snapshot(account, fetched)
    except APIError as exc:  # transient: permanent errors come back as a failed result
        if app_settings.SYNC_MAX_RETRIES > 0:
            delay = sync_retry_delay(0, exc.retry_after)
            try:
                # This attempt was the first: the retrying task has one retry fewer.
                sync_account.apply_async(
                    args=(account.pk, run_id, account.partner_id), countdown=delay, retries=1
                )
            except Exception:  # broker trouble: record the sync failure instead
                logger.warning("Could not enqueue a retry of %s", account.partner_id, exc_info=True)
            else:
                logger.info("Sync of %s: %s; retry 1 in %.1f s", account.partner_id, exc, delay)
                sync_runs.keep_alive(run_id, waiting=delay)
                return None
        return sync.record_sync_failure(account, exc)
    except (SoftTimeLimitExceeded, coordination.Throttled):
        raise
    except Exception as exc:  # one failing account never stops the rest
        logger.exception("Unexpected error while syncing %s", account.partner_id)
        return sync.record_sync_failure(account, exc)


def _give_up(run_id: int, pending: list[tuple[int, str]], delivery: Delivery) -> None:
    """End a group whose worker kept dying: the account it was syncing each time fails
    with the reason; the others go on in a new task. Without a noted account (the store
    was down) the whole rest of the group fails."""
    suspect = delivery.suspect()
    if suspect not in {pk for pk, _ in pending}:
        reason = delivery.reason()
        _record(run_id, [sync.SyncResult(pk, pid, "failed", error=reason) for pk, pid in pending])
        return
    partner_id = dict(pending)[suspect]
    result = sync.record_sync_failure(
        sync.account_handle(suspect, partner_id), RuntimeError(delivery.reason())
    )
    _record(run_id, [result])
    rest = [[pk, pid] for pk, pid in pending if pk != suspect]
    if rest:
        sync_accounts.apply_async(args=(run_id, rest))


@shared_task(
    bind=True, base=SettingsTimeLimitTask, name="biginterview.sync_accounts",
    **REDELIVER_ON_WORKER_LOSS,
)  # fmt: skip
def sync_accounts(self: Task, run_id: int, accounts: list[list[Any]]) -> int:
    """Sync a group of a run's accounts (``[[pk, partner_id], ...]``), each in its own
    transaction, then count them all in the run at once. Returns how many were synced.

    A group still running after half its soft time limit (a low ``RATE_LIMIT`` shared by
    many workers) hands its remaining accounts to a new task. If the task is stopped
    (time limit, database gone), the accounts it did not finish count as failed so the
    run still finishes. Delivered again because its worker died, the group skips the
    accounts the run already counted and counts each of the others as soon as it is
    done; past ``SYNC_MAX_DELIVERIES`` it gives up on the account it was syncing when
    the worker died.
    """
    deadline = time.monotonic() + app_settings.TASK_SOFT_TIME_LIMIT / 2
    pending = [(int(pk), str(partner_id)) for pk, partner_id in accounts]
    delivery = Delivery(self)
    if delivery.redelivered:
        unreported = set(sync_runs.unreported(run_id, [pk for pk, _ in pending]))
        pending = [(pk, pid) for pk, pid in pending if pk in unreported]
        if delivery.exhausted:
            _give_up(run_id, pending, delivery)
            return 0
    heartbeat = sync_runs.Heartbeat(run_id)
    results: list[sync.SyncResult] = []
    synced = 0
    try:
        client = sync.sync_client(max_wait=MAX_THROTTLE_WAIT)
        settled = 0
        while pending:
            # All at once (their waiting overlaps); one at a time when a worker died
            # here before, so the account that killed it is known.
            batch = pending[:1] if delivery.redelivered else pending
            handles = [sync.account_handle(pk, pid) for pk, pid in batch]
            for account, fetched in zip(handles, sync.fetch_many(handles, client), strict=True):
                if settled and time.monotonic() > deadline:
                    sync_accounts.apply_async(args=(run_id, [list(item) for item in pending]))
                    pending = []
                    break
                settled += 1
                if delivery.redelivered:
                    delivery.working_on(account.pk)
                try:
                    result = _settle_member(run_id, account, fetched)
                except coordination.Throttled as throttled:  # the rest, later
                    countdown = _later(throttled.wait)
                    sync_runs.keep_alive(run_id, waiting=countdown)
                    sync_accounts.apply_async(
                        args=(run_id, [list(item) for item in pending]), countdown=countdown
                    )
                    pending = []
                    break
                pending.pop(0)
                heartbeat()
                if result is not None:
                    synced += result.outcome == "synced"
                    results.append(result)
                    if delivery.redelivered:
                        _record(run_id, results)
                        results = []
    except BaseException as exc:
        reason = f"Not synced: {type(exc).__name__}"
        results += [sync.SyncResult(pk, pid, "failed", error=reason) for pk, pid in pending]
        raise
    finally:
        _record(run_id, results)
    return synced


@shared_task(base=SettingsTimeLimitTask, name="biginterview.sync_all_accounts")
def sync_all_accounts() -> int | None:
    """Sync every account: fan out in chunks of ``SYNC_CHUNK_SIZE``; leaves a ``SyncRun``.

    Does nothing (returns ``None``) while another live run holds the lease. The run
    finishes, and the lease is released, when the last account's task has counted itself.
    If the fan-out stops half way, the run stays open while what was sent reports, and is
    then closed as lost with the accounts never sent (see ``sync_runs``).
    """
    run = sync_runs.begin()
    if run is None:
        logger.info("Big Interview sync all: another run is in progress; nothing to do")
        return None
    dispatched = 0
    try:
        skipped = sync_runs.count_skipped_accounts()
        for ids in sync_runs.iter_account_id_chunks(app_settings.SYNC_CHUNK_SIZE):
            sync_account_batch.apply_async(args=(run.pk, ids))
            dispatched += len(ids)
            sync_runs.keep_alive(run.pk)
    except BaseException as exc:
        sync_runs.note_failure(run.pk, f"Fan-out stopped: {type(exc).__name__}")
        if not dispatched:  # nothing of the run can report: close it now
            coordination.release_lock(sync_runs.LEASE, sync_runs.lease_token(run.pk))
            sync_runs.close_lost_runs()
        raise
    sync_runs.close_fan_out(run.pk, dispatched=dispatched, skipped=skipped)
    sync_runs.finish_if_complete(run.pk)
    logger.info("Big Interview sync run #%s: %d accounts dispatched", run.pk, dispatched)
    return run.pk


@shared_task(
    base=SettingsTimeLimitTask, name="biginterview.close_lost_sync_runs", ignore_result=True
)
def close_lost_sync_runs() -> int:
    """Close the "sync all" runs whose lease lapsed (``sync_runs.close_lost_runs``);
    scheduled every minute. Returns how many were closed."""
    return len(sync_runs.close_lost_runs())


def schedule_account_sync(account_id: int, *, interactive: bool = False) -> None:
    """Schedule one sync of ``account_id`` on commit; at most one pending per account
    (and one more, ``interactive``, that a user is waiting for: see :func:`_routing`).

    The pending marker is cleared when the sync starts, so a change arriving during a sync
    schedules another one. A broker outage is logged, never raised: the next webhook or
    the periodic sync catches up.
    """

    def send() -> None:
        name = _pending_name(account_id, interactive)
        try:
            # An interactive marker lasts no longer than the staleness it answers: if its
            # sync is lost (or the marker's store is not shared), the next view asks again.
            ttl = (
                app_settings.PROGRESS_MAX_AGE if interactive else app_settings.SYNC_PENDING_TIMEOUT
            )
            if not coordination.claim_pending(name, ttl):
                return
        except Exception:  # store down: a duplicate sync is harmless
            logger.warning("Pending-sync marker unavailable", exc_info=True)
        try:
            sync_account.apply_async(
                args=(account_id,),
                kwargs=_marked(interactive),
                retry=False,
                **_routing(interactive),
            )
        except Exception:  # any broker error
            logger.warning("Could not enqueue a sync of account %s", account_id, exc_info=True)
            try:
                coordination.clear_pending(name)
            except Exception:  # best effort; the TTL clears it anyway
                logger.debug("Could not clear the pending marker", exc_info=True)

    transaction.on_commit(send)


def refresh_stale_progress(account: Account | None) -> bool:
    """Ask for a sync of ``account`` when the progress a user is about to see is older
    than ``PROGRESS_MAX_AGE`` (``sync.progress_is_stale``); return whether one was asked
    for. Big Interview sends no webhook for track progress, so this is how a step done
    there reaches the portal. Never waits for the sync and never raises: the page shows
    what is stored, and the next view shows the result.
    """
    if account is None or not sync.progress_is_stale(account):
        return False
    try:
        schedule_account_sync(account.pk, interactive=True)
    except Exception:  # a page must render whatever the sync side raises
        logger.warning("Could not ask for a sync of account %s", account.pk, exc_info=True)
        return False
    return True


# --- Webhook tasks (webhook_processing.py) -------------------------------------------------------
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


def _report(outcomes: list[webhook_processing.ProcessOutcome]) -> list[str]:
    for outcome in outcomes:
        if outcome.failed:
            logger.warning("Webhook event %s failed: %s", outcome.event_id, outcome.reason)
    schedule_syncs_after_webhooks(outcome.sync_account_id for outcome in outcomes)
    return [outcome.status for outcome in outcomes]


@shared_task(
    base=SettingsTimeLimitTask,
    name="biginterview.process_webhook_event",
    acks_late=True,
    ignore_result=True,
)
def process_webhook_event(event_id: int) -> str:
    """Process one stored webhook event (by primary key), counting its attempt first.

    Sent by earlier versions' sweeper; kept so their messages still run. ``acks_late``:
    the message is acknowledged only after the task ran, so a warm shutdown leaves it to
    be redelivered. A worker that died outright loses the message, and the sweeper sends
    the still ``pending`` event again (never the broker: see ``webhook_processing``).
    """
    [status] = _report([webhook_processing.process_event(event_id)])
    return status


@shared_task(
    base=SettingsTimeLimitTask,
    name="biginterview.process_webhook_events",
    acks_late=True,
    ignore_result=True,
)
def process_webhook_events(event_ids: list[int]) -> list[str]:
    """Process several stored events (``webhook_processing.process_events``): what the
    receiver's publisher and the sweeper send. Same delivery rules as
    :func:`process_webhook_event`."""
    return _report(webhook_processing.process_events(event_ids))


@shared_task(
    base=SettingsTimeLimitTask, name="biginterview.sweep_webhook_events", ignore_result=True
)
def sweep_webhook_events() -> int:
    """Send again, in batches, the events stuck ``pending`` (the broker was down when they
    arrived, or their worker died) and the ``failed`` ones whose backoff has passed;
    returns how many were sent. Beat runs it every minute, so it also records the
    worker's sign of life that the status page and ``health/`` read."""
    status.note_worker_alive()

    def send(batch: list[int]) -> None:
        process_webhook_events.apply_async(
            args=(batch,),
            retry=True,
            retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
        )

    try:
        sent = webhook_processing.sweep(send)
    except Exception:  # broker still down: the leases expire, a later sweep sends them
        logger.warning("Webhook sweeper could not reach the broker", exc_info=True)
        return 0
    if sent:
        logger.info("Webhook sweeper re-enqueued %d event(s)", sent)
    return sent


@shared_task(
    base=SettingsTimeLimitTask, name="biginterview.purge_webhook_events", ignore_result=True
)
def purge_webhook_events() -> int:
    """Delete events past their retention (``webhook_processing.purge_events``).

    A retention under two hours is refused: logged as an error and raised, so the
    misconfiguration shows in the worker's log and in the task's result.
    """
    try:
        deleted = webhook_processing.purge_events()
    except ImproperlyConfigured as exc:
        logger.error("Webhook purge refused: %s", exc)
        raise
    if deleted:
        logger.info("Purged %d old webhook event(s)", deleted)
    return deleted


# --- Anonymous accounts (sso.py) -------------------------------------------------------
#
# Periodic schedule (task name, no arguments):
#
#     "biginterview-purge-anonymous-accounts": {
#         "task": "biginterview.purge_anonymous_accounts",
#         "schedule": timedelta(hours=1),
#     },


@shared_task(
    base=SettingsTimeLimitTask, name="biginterview.purge_anonymous_accounts", ignore_result=True
)
def purge_anonymous_accounts() -> int:
    """Delete the local anonymous accounts past their 24-hour life
    (``sso.purge_anonymous_accounts``); returns how many."""
    deleted = sso.purge_anonymous_accounts()
    if deleted:
        logger.info("Purged %d anonymous account(s) past their life", deleted)
    return deleted
