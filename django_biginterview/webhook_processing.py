"""Processing stored webhook events: the worker side of webhooks (apply, record failures,
replay, sweep, purge). The request side (authenticate, parse, store) is ``webhooks.py``.

Two ways through, with the same guarantees (an event is never marked processed without
its effect, and a processed event is never applied twice):

- :func:`process_events` applies a batch of events in one transaction: a few queries for
  the whole batch, whatever its size. While it runs, the batch's ids sit in an
  "in flight" set in Redis; a worker killed mid-batch leaves them there.
- :func:`process_event` applies one event, counting the attempt in a committed step
  before any work. Events found in flight (their batch died with its worker), events of
  a batch that raised, and every event when no Redis is configured go this way, so an
  event whose processing kills the worker ends ``failed`` after ``WEBHOOK_MAX_ATTEMPTS``
  starts without costing the events beside it an attempt.

Processing relies on the sweeper, never on the broker requeueing a task whose worker
died: a requeue loop would bypass the attempt count. Nothing here imports views or
tasks: the syncs to schedule afterwards are *returned* in :class:`ProcessOutcome`.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.db.models import F, QuerySet
from django.utils import timezone

from . import api_types as api
from . import coordination, mirror
from .conf import MIN_WEBHOOK_RETENTION, SETTINGS_NAME, app_settings
from .exceptions import describe_error
from .models import Account, WebhookEvent
from .signals import webhook_event_failed
from .webhooks import INTERVIEW_CREATED, INTERVIEW_DELETED, INTERVIEW_UPDATED

logger = logging.getLogger(__name__)

Status = WebhookEvent.Status

#: Longest stored error text; enough for a message, short enough for the admin list.
MAX_ERROR_LENGTH = 2000

#: The Redis set of event ids whose batch is being applied right now.
IN_FLIGHT = "webhook-events"
IN_FLIGHT_TTL = timedelta(days=1)

#: The sweeper claims this many events per query, and sends them on in batches of
#: ``SWEEP_BATCH`` (the size the receiver's publisher uses), up to ``SWEEP_MAX`` a run:
#: a backlog left by a long broker outage drains in minutes.
SWEEP_CLAIM = 2000
SWEEP_BATCH = 200
SWEEP_MAX = 50_000


@dataclass(frozen=True)
class ProcessOutcome:
    """What processing did to one event.

    ``status`` is ``processed``, ``ignored`` or ``failed`` (the event's new status),
    ``skipped`` (already processed or ignored, or being processed by another worker:
    nothing done) or ``missing`` (no such event, e.g. purged). ``sync_account_id`` is set
    when the account's track progress should be synced next (an interview changed); the
    caller schedules it.
    """

    event_id: int
    status: str
    reason: str = ""
    sync_account_id: int | None = None

    @property
    def failed(self) -> bool:
        return self.status == Status.FAILED


class _Ignore(Exception):
    """Control flow, never escapes this module: the event is kept but needs no work."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Busy(Exception):
    """Control flow: another worker holds the event right now; its result stands."""


BUSY = "being processed by another worker"


def _webhook_object(event: WebhookEvent) -> Mapping[str, Any]:
    payload = event.payload
    if isinstance(payload, str):  # a JSON string stored by some other writer
        payload = json.loads(payload)
    webhook = payload.get("webhook") if isinstance(payload, Mapping) else None
    if not isinstance(webhook, Mapping):
        raise ValueError("stored payload has no 'webhook' object")
    return webhook


def _interview_of(webhook: Mapping[str, Any]) -> api.Interview:
    return api.Interview.from_api(webhook.get("api_object"))


def _deleted_id(webhook: Mapping[str, Any]) -> int:
    return int(str(webhook.get("api_id")))


def _upsert_interview(account: Account, webhook: Mapping[str, Any]) -> None:
    mirror.upsert_interviews(account, [_interview_of(webhook)], source="webhook")


def _delete_interview(account: Account, webhook: Mapping[str, Any]) -> None:
    mirror.mark_interview_deleted(account, _deleted_id(webhook), source="webhook")


_HANDLERS: dict[str, Callable[[Account, Mapping[str, Any]], None]] = {
    INTERVIEW_CREATED: _upsert_interview,
    INTERVIEW_UPDATED: _upsert_interview,
    INTERVIEW_DELETED: _delete_interview,
}


def _unknown_event(event: WebhookEvent) -> _Ignore:
    return _Ignore(f"unknown event {event.event_name}"[:255])


NO_ACCOUNT = "no account for partner_id"


# --- One event at a time, each start counted ------------------------------------------


def _apply(event: WebhookEvent) -> int:
    """Run the event's handler; return the account id. Raises ``_Ignore`` when there is
    nothing to do. Must run inside the processing transaction."""
    handler = _HANDLERS.get(event.event_name)
    if handler is None:
        raise _unknown_event(event)
    account = Account.objects.select_for_update().filter(partner_id=event.partner_id).first()
    if account is None:
        raise _Ignore(NO_ACCOUNT)
    handler(account, _webhook_object(event))
    return account.pk


def retry_delay(attempts: int) -> timedelta:
    """Wait before the next automatic attempt: ``WEBHOOK_RETRY_BACKOFF * 2**(attempts-1)``
    after the ``attempts``-th failure (1, 2, 4 ... times the backoff)."""
    backoff: timedelta = app_settings.WEBHOOK_RETRY_BACKOFF
    return backoff * (2 ** max(0, min(attempts - 1, 20)))


def _next_attempt_at(attempts: int) -> datetime | None:
    """When the sweeper retries an event that failed its ``attempts``-th attempt; ``None``
    once ``WEBHOOK_MAX_ATTEMPTS`` are spent (it stays failed for a person)."""
    if attempts >= app_settings.WEBHOOK_MAX_ATTEMPTS:
        return None
    return timezone.now() + retry_delay(attempts)


def _failed_for_good(event: WebhookEvent, cause: str) -> None:
    """Log at ERROR that ``event`` failed with no retry left, and send
    ``webhook_event_failed`` once the transaction that made it so commits.

    Only the transitions into that state call this, each holding the event's row lock,
    so an event is announced once however many messages or workers reach it. The line
    names the event and ``cause`` (an exception's type, or a fixed text), never the
    stored error, which may quote the payload.
    """
    logger.error(
        "Webhook event %s (notification %s, %s) failed for good after %d attempt(s): %s. "
        "It is not retried automatically; replay it with "
        "`manage.py biginterview_webhooks --replay --id %s`.",
        event.pk,
        event.remote_id,
        event.event_name,
        event.attempts,
        cause,
        event.remote_id,
    )
    transaction.on_commit(lambda: webhook_event_failed.send(sender=WebhookEvent, event=event))


def _record_failure(event_id: int, exc: Exception, attempts_seen: int) -> None:
    """Mark the event failed, in its own transaction (the work itself was rolled back).

    ``attempts_seen`` is the attempt count this processing started with; if it moved,
    another worker started the event meanwhile and its result stands. An event that
    this failure leaves with no retry is announced (:func:`_failed_for_good`), unless
    it was failed for good already (a replay failing again).
    """
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().filter(pk=event_id).first()
        if event is None or event.attempts != attempts_seen:
            return
        was_failed_for_good = event.status == Status.FAILED and event.next_attempt_at is None
        event.status = Status.FAILED
        event.last_error = describe_error(exc, MAX_ERROR_LENGTH)
        event.next_attempt_at = _next_attempt_at(event.attempts)
        event.save(update_fields=["status", "last_error", "next_attempt_at"])
        if event.next_attempt_at is None and not was_failed_for_good:
            _failed_for_good(event, type(exc).__name__)


def _start_attempt(event_id: int, *, force: bool) -> ProcessOutcome | int:
    """Count one attempt, committed before any work, and return the new count; or the
    outcome when there is nothing to do.

    Counting at the start is what ends a poison event: one whose processing kills the
    worker leaves no failure behind, but each start is on the row. An event already
    started ``WEBHOOK_MAX_ATTEMPTS`` times without an outcome ends ``failed`` here.
    Rows another worker is processing are skipped (``SKIP LOCKED``), so a duplicate
    message neither waits nor counts.
    """
    with transaction.atomic():
        event = (
            WebhookEvent.objects.select_for_update(skip_locked=True)
            .only("pk", "remote_id", "event_name", "status", "attempts", "next_attempt_at")
            .filter(pk=event_id)
            .first()
        )
        if event is None:
            if WebhookEvent.objects.filter(pk=event_id).exists():
                raise _Busy
            return ProcessOutcome(event_id, "missing", "no such event")
        if not force and event.status in (Status.PROCESSED, Status.IGNORED):
            return ProcessOutcome(event_id, "skipped", f"already {event.status}")
        if not force and event.attempts >= app_settings.WEBHOOK_MAX_ATTEMPTS:
            if event.status != Status.PENDING:  # failed already, with its error
                # A retry planned before WEBHOOK_MAX_ATTEMPTS was lowered: none is left.
                if event.next_attempt_at is not None:
                    event.next_attempt_at = None
                    event.save(update_fields=["next_attempt_at"])
                    _failed_for_good(event, "no attempts left under WEBHOOK_MAX_ATTEMPTS")
                return ProcessOutcome(event_id, Status.FAILED, "no attempts left")
            error = (
                f"Processing started {event.attempts} times without finishing (the worker "
                "process was lost each time); not tried again."
            )
            event.status = Status.FAILED
            event.last_error = error
            event.next_attempt_at = None
            event.save(update_fields=["status", "last_error", "next_attempt_at"])
            _failed_for_good(event, "processing never finished (worker lost each time)")
            return ProcessOutcome(event_id, Status.FAILED, error)
        attempts = event.attempts + 1
        WebhookEvent.objects.filter(pk=event_id).update(attempts=attempts)
    return attempts


def process_event(event_id: int, *, force: bool = False) -> ProcessOutcome:
    """Apply one stored event; safe to call twice at once and to call again later.

    The attempt is counted and committed first (see :func:`_start_attempt`). Then the
    event row is locked (``SELECT ... FOR UPDATE``) and its status re-read, so a
    redelivered task finds the event done. The mirror writes and the ``processed``
    status commit together. ``force`` re-runs processed and ignored events too (the
    replay path; the mirror never applies older data, so that is harmless). A failing
    event does not raise: the failure is stored on the row and returned.
    """
    try:
        started = _start_attempt(event_id, force=force)
    except _Busy:
        return ProcessOutcome(event_id, "skipped", BUSY)
    if isinstance(started, ProcessOutcome):
        return started
    attempts = started
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.select_for_update().filter(pk=event_id).first()
            if event is None:
                return ProcessOutcome(event_id, "missing", "no such event")
            if event.attempts != attempts:
                return ProcessOutcome(event_id, "skipped", "started again by another worker")
            try:
                account_id: int | None = _apply(event)
                status, reason = Status.PROCESSED, ""
            except _Ignore as ignore:
                account_id, status, reason = None, Status.IGNORED, ignore.reason
            event.status = status
            event.reason = reason
            event.last_error = ""
            event.next_attempt_at = None
            event.processed_at = timezone.now()
            event.save(
                update_fields=["status", "reason", "last_error", "next_attempt_at", "processed_at"]
            )
    except Exception as exc:  # any failure is recorded on the row, never lost
        logger.warning("Webhook event %s failed: %s", event_id, type(exc).__name__, exc_info=True)
        _record_failure(event_id, exc, attempts)
        return ProcessOutcome(event_id, Status.FAILED, describe_error(exc, MAX_ERROR_LENGTH))
    return ProcessOutcome(event_id, status, reason, sync_account_id=account_id)


# --- A batch in one transaction --------------------------------------------------------


def process_events(event_ids: Iterable[int]) -> list[ProcessOutcome]:
    """Apply several stored events; one outcome per distinct id, in the order given.

    Events whose earlier batch never finished (in flight: its worker died) are applied one
    at a time with :func:`process_event`, and so are all of them when there is no Redis
    to keep the in-flight set (``REDIS_URL`` unset). The others are applied together;
    if that raises (a bad event, a database error), the batch is rolled back and each of
    its events is applied alone, so one failure is recorded on its own row.
    """
    ids = list(dict.fromkeys(int(event_id) for event_id in event_ids))
    try:
        crashed = coordination.find_in_flight(IN_FLIGHT, ids)
    except Exception:  # store down: nothing tells a crashed batch apart
        logger.warning("In-flight set unavailable; processing one by one", exc_info=True)
        crashed = None
    if crashed is None:
        return [process_event(event_id) for event_id in ids]
    outcomes: dict[int, ProcessOutcome] = {}
    fresh = [event_id for event_id in ids if event_id not in crashed]
    if fresh:
        outcomes.update(_process_together(fresh))
    for event_id in ids:
        if event_id in crashed:
            outcome = outcomes[event_id] = process_event(event_id)
            if outcome.reason != BUSY:  # the worker holding it keeps it in flight
                coordination.clear_in_flight(IN_FLIGHT, [event_id])
    return [outcomes[event_id] for event_id in ids]


def _process_together(ids: list[int]) -> dict[int, ProcessOutcome]:
    coordination.mark_in_flight(IN_FLIGHT, ids, IN_FLIGHT_TTL)
    try:
        outcomes = _apply_together(ids)
    except Exception:
        logger.warning("A batch of %d webhook events failed; applying them one by one", len(ids))
        outcomes = {event_id: process_event(event_id) for event_id in ids}
    coordination.clear_in_flight(IN_FLIGHT, ids)
    return outcomes


def _apply_together(ids: list[int]) -> dict[int, ProcessOutcome]:
    """Apply ``ids`` in one transaction: lock the events (skipping those another worker
    holds) and their accounts, write every interview through the mirror at once, and
    mark the events ``processed`` or ``ignored``, counting the attempt, in one ``UPDATE``
    per status and reason. Raises on the first event it cannot apply."""
    outcomes: dict[int, ProcessOutcome] = {}
    with transaction.atomic():
        events = list(
            WebhookEvent.objects.select_for_update(skip_locked=True)
            .filter(pk__in=ids)
            .only("pk", "status", "event_name", "partner_id", "payload")
            .order_by("pk")
        )
        locked = {event.pk for event in events}
        if len(locked) < len(ids):
            present = set(
                WebhookEvent.objects.filter(pk__in=ids).values_list("pk", flat=True)
            ).difference(locked)
            for event_id in set(ids) - locked:
                outcomes[event_id] = (
                    ProcessOutcome(event_id, "skipped", BUSY)
                    if event_id in present
                    else ProcessOutcome(event_id, "missing", "no such event")
                )
        todo = [e for e in events if e.status not in (Status.PROCESSED, Status.IGNORED)]
        for event in events:
            if event.status in (Status.PROCESSED, Status.IGNORED):
                outcomes[event.pk] = ProcessOutcome(event.pk, "skipped", f"already {event.status}")
        partner_ids = {e.partner_id for e in todo if e.event_name in _HANDLERS}
        accounts = {
            account.partner_id: account
            for account in Account.objects.select_for_update()
            .filter(partner_id__in=partner_ids)
            .order_by("pk")
        }
        upserts: dict[int, tuple[Account, list[api.Interview]]] = {}
        deletes: list[tuple[Account, int]] = []
        ignored: dict[str, list[int]] = {}
        for event in todo:
            account = accounts.get(event.partner_id)
            reason = ""
            if event.event_name not in _HANDLERS:
                reason = _unknown_event(event).reason
            elif account is None:
                reason = NO_ACCOUNT
            if reason or account is None:
                ignored.setdefault(reason, []).append(event.pk)
                outcomes[event.pk] = ProcessOutcome(event.pk, Status.IGNORED, reason)
                continue
            webhook = _webhook_object(event)
            if event.event_name == INTERVIEW_DELETED:
                deletes.append((account, _deleted_id(webhook)))
            else:
                upserts.setdefault(account.pk, (account, []))[1].append(_interview_of(webhook))
            outcomes[event.pk] = ProcessOutcome(
                event.pk, Status.PROCESSED, sync_account_id=account.pk
            )
        mirror.upsert_interviews_of_accounts(list(upserts.values()), source="webhook")
        for account, remote_id in deletes:
            mirror.mark_interview_deleted(account, remote_id, source="webhook")
        done = {
            "attempts": F("attempts") + 1,
            "last_error": "",
            "next_attempt_at": None,
            "processed_at": timezone.now(),
        }
        processed = [o.event_id for o in outcomes.values() if o.status == Status.PROCESSED]
        if processed:
            WebhookEvent.objects.filter(pk__in=processed).update(
                status=Status.PROCESSED, reason="", **done
            )
        for reason, event_ids in ignored.items():
            WebhookEvent.objects.filter(pk__in=event_ids).update(
                status=Status.IGNORED, reason=reason, **done
            )
    return outcomes


# --- Replay, sweep, purge --------------------------------------------------------------


@dataclass
class ReplaySummary:
    """Counts of a replay, plus the failures and the accounts to sync afterwards."""

    outcomes: list[ProcessOutcome] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for outcome in self.outcomes if outcome.status == status)

    @property
    def failures(self) -> list[ProcessOutcome]:
        return [outcome for outcome in self.outcomes if outcome.failed]

    @property
    def sync_account_ids(self) -> list[int]:
        return sorted({o.sync_account_id for o in self.outcomes if o.sync_account_id})

    def __str__(self) -> str:
        parts = [
            f"{self.count(status)} {status}"
            for status in ("processed", "ignored", "failed", "missing")
            if self.count(status)
        ]
        return f"{len(self.outcomes)} event(s): " + (", ".join(parts) or "nothing to do")


def replay_events(events: QuerySet[WebhookEvent] | Iterable[int]) -> ReplaySummary:
    """Process ``events`` again, now, whatever their status (admin action, command).

    Each event runs in its own transaction, in the order received, so one failure does not
    undo the others. The caller schedules syncs for ``summary.sync_account_ids``.
    """
    if isinstance(events, QuerySet):
        ids = list(events.order_by("received_at", "pk").values_list("pk", flat=True))
    else:
        ids = list(events)
    summary = ReplaySummary()
    for event_id in ids:
        summary.outcomes.append(process_event(event_id, force=True))
    return summary


def due_events(now: datetime | None = None) -> QuerySet[WebhookEvent]:
    """Events the sweeper should (re)enqueue now (``WebhookEvent.objects.due``), by the
    settings: ``pending`` longer than ``WEBHOOK_STUCK_AFTER``, and ``failed`` ones whose
    backoff has passed and that have attempts left (``WEBHOOK_MAX_ATTEMPTS``)."""
    return WebhookEvent.objects.due(
        now or timezone.now(),
        stuck_after=app_settings.WEBHOOK_STUCK_AFTER,
        max_attempts=app_settings.WEBHOOK_MAX_ATTEMPTS,
    )


def claim_due_events(now: datetime | None = None, limit: int = SWEEP_CLAIM) -> list[int]:
    """Pick up to ``limit`` due events and lease them for ``WEBHOOK_STUCK_AFTER``.

    The lease (``next_attempt_at``) keeps the next sweeps from enqueueing the same events
    again while a busy worker still has them queued; rows being processed right now are
    skipped (``SKIP LOCKED``). Claiming counts no attempt: that happens when processing
    starts.
    """
    now = now or timezone.now()
    with transaction.atomic():
        ids = list(
            due_events(now)
            .order_by("received_at", "pk")
            .select_for_update(skip_locked=True)
            .values_list("pk", flat=True)[:limit]
        )
        if ids:
            WebhookEvent.objects.filter(pk__in=ids).update(
                next_attempt_at=now + app_settings.WEBHOOK_STUCK_AFTER
            )
    return ids


def sweep(send: Callable[[list[int]], None], now: datetime | None = None) -> int:
    """Claim due events and pass them to ``send`` in batches of ``SWEEP_BATCH``, until
    none is due or ``SWEEP_MAX`` were sent; returns how many were sent. ``send`` raising
    stops the sweep (the broker is down): the claimed rest stays leased and is due again
    once the lease passes."""
    sent = 0
    while sent < SWEEP_MAX:
        ids = claim_due_events(now, limit=min(SWEEP_CLAIM, SWEEP_MAX - sent))
        for start in range(0, len(ids), SWEEP_BATCH):
            batch = ids[start : start + SWEEP_BATCH]
            send(batch)
            sent += len(batch)
        if len(ids) < SWEEP_CLAIM:
            break
    return sent


def purge_events(retention: timedelta | None = None, now: datetime | None = None) -> int:
    """Delete ``processed`` and ``ignored`` events received more than ``retention`` ago
    (default ``WEBHOOK_RETENTION``), and exhausted ``failed`` events (no retry planned)
    received more than ``WEBHOOK_FAILED_RETENTION`` ago. Pending events and failed ones
    still to be retried are kept.

    A retention under two hours is refused (``ImproperlyConfigured``): Big Interview
    re-sends a notification for an hour, and a purged id would be processed twice.
    """
    if retention is None:
        retention = app_settings.WEBHOOK_RETENTION
    failed_retention = app_settings.WEBHOOK_FAILED_RETENTION
    for key, value in (
        ("WEBHOOK_RETENTION", retention),
        ("WEBHOOK_FAILED_RETENTION", failed_retention),
    ):
        if value is None or value < MIN_WEBHOOK_RETENTION:
            raise ImproperlyConfigured(
                f"{SETTINGS_NAME}['{key}'] is {value}; it must be at least "
                f"{MIN_WEBHOOK_RETENTION} so retried notifications are still recognised."
            )
    now = now or timezone.now()
    old = WebhookEvent.objects.purgeable(
        done_before=now - retention, failed_before=now - failed_retention
    )
    deleted = 0
    while batch := list(old.values_list("pk", flat=True)[:1000]):
        deleted += WebhookEvent.objects.filter(pk__in=batch).delete()[0]
    return deleted
