"""Big Interview webhooks, as plain functions: check, parse, store once, process, replay.

The flow a delivery takes:

1. :func:`authenticate` compares the raw ``Authorization`` header with every configured
   key in constant time (several keys, for rotation).
2. :func:`parse_delivery` turns the body into a :class:`Delivery` or raises
   :class:`~django_biginterview.exceptions.WebhookValidationError` naming the problem.
3. :func:`store_delivery` inserts it once, tolerating the race of simultaneous retries
   (the notification ``id`` is unique in the database). Only a new row is announced.
4. :func:`process_event` (run later, by a Celery task) applies the event through
   ``mirror.py`` in one transaction that also marks the event ``processed``; a failure is
   recorded on the row in a separate transaction, for the sweeper, admin and command.

Nothing here imports views or tasks: follow-up work (syncing the account's track progress
after an interview event) is *returned* in :class:`ProcessOutcome` for the caller to
schedule.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import DataError, IntegrityError, connections, router, transaction
from django.db.models import Field, Q, QuerySet
from django.utils import timezone

from . import client as api
from . import mirror
from .conf import MIN_WEBHOOK_RETENTION, SETTINGS_NAME, app_settings
from .exceptions import UnexpectedResponse, WebhookValidationError, describe_error
from .models import Account, WebhookEvent
from .signals import webhook_received

logger = logging.getLogger(__name__)

Status = WebhookEvent.Status

INTERVIEW_CREATED = "interview.created"
INTERVIEW_UPDATED = "interview.updated"
INTERVIEW_DELETED = "interview.deleted"
KNOWN_EVENTS = frozenset({INTERVIEW_CREATED, INTERVIEW_UPDATED, INTERVIEW_DELETED})

#: Longest stored error text; enough for a message, short enough for the admin list.
MAX_ERROR_LENGTH = 2000
_INTEGER_ID = re.compile(r"[0-9]{1,18}")


# --- Authentication --------------------------------------------------------------------


def authenticate(authorization: str | None, keys: Iterable[str] | None = None) -> None:
    """Accept the delivery only if ``authorization`` equals one of the webhook keys.

    Big Interview sends its verification key raw in ``Authorization``. Every key is
    compared (no early exit) with :func:`hmac.compare_digest`, so timing tells nothing
    about which key or how much of it matched. Raises ``WebhookValidationError`` with
    status 503 when no key is configured (Big Interview retries later: nothing is lost
    while an operator fixes the settings) and 401 for a missing or wrong key. The
    messages never contain the key.
    """
    configured = app_settings.WEBHOOK_KEYS if keys is None else [k for k in keys if k]
    if not configured:
        raise WebhookValidationError(
            f"{SETTINGS_NAME}['WEBHOOK_KEYS'] is empty: cannot verify deliveries",
            status_code=503,
        )
    if not authorization:
        raise WebhookValidationError("missing webhook key", status_code=401)
    provided = authorization.encode("utf-8", "surrogateescape")
    matched = False
    for key in configured:
        matched |= hmac.compare_digest(provided, key.encode("utf-8"))
    if not matched:
        raise WebhookValidationError("wrong webhook key", status_code=401)


# --- Parsing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """A delivery that passed validation. ``text`` is the body as received (JSON)."""

    remote_id: str
    event_name: str
    partner_id: str
    api_type: str
    api_id: str
    payload: dict[str, Any] = field(repr=False)
    text: str = field(repr=False)


def _reject_constant(name: str) -> None:
    # Python's json accepts NaN and Infinity; JSON (and PostgreSQL's jsonb) does not.
    raise ValueError(f"invalid JSON constant {name}")


def _finite_float(text: str) -> float:
    # 1e400 is valid JSON but becomes inf, which no database stores as JSON.
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} out of range")
    return value


def _contains_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_contains_nul(k) or _contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_contains_nul(item) for item in value)
    return False


def _required_string(webhook: Mapping[str, Any], name: str, max_length: int) -> str:
    if name not in webhook or webhook[name] is None:
        raise WebhookValidationError(f"webhook.{name} is required")
    value = webhook[name]
    if not isinstance(value, str):
        raise WebhookValidationError(f"webhook.{name} must be a string")
    if not value.strip():
        raise WebhookValidationError(f"webhook.{name} must not be blank")
    if len(value) > max_length:
        raise WebhookValidationError(f"webhook.{name} is longer than {max_length} characters")
    return value


def _api_id(webhook: Mapping[str, Any]) -> str:
    """``api_id`` is documented as an integer but sent as a string: accept both."""
    value = webhook.get("api_id")
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and len(value) <= 100:
        return value
    raise WebhookValidationError("webhook.api_id must be an integer or a string")


def parse_delivery(body: bytes) -> Delivery:
    """Validate one delivery body; raise ``WebhookValidationError`` (400) naming the fault.

    Checks what is needed to store and route the event: the ``webhook`` object, the
    notification ``id`` (a string, as documented), ``event_name`` and ``partner_id``, the
    types of ``api_id``/``api_type``/``api_object``, and for interview events the id or
    object they act on. An unknown ``event_name`` is *valid* here: it is stored and then
    ignored, so a new event type never makes Big Interview retry for an hour.
    """
    if not body:
        raise WebhookValidationError("empty body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookValidationError("body is not UTF-8") from None
    try:
        payload = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise WebhookValidationError("malformed JSON: nested too deeply") from None
    except ValueError as exc:
        raise WebhookValidationError(f"malformed JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise WebhookValidationError("body must be a JSON object")
    webhook = payload.get("webhook")
    if not isinstance(webhook, dict):
        raise WebhookValidationError("missing 'webhook' object")
    # PostgreSQL cannot store U+0000 in jsonb; refuse it here rather than fail later.
    if "\\u0000" in text and _contains_nul(payload):
        raise WebhookValidationError("payload contains a NUL character")

    remote_id = _required_string(webhook, "id", 255)
    event_name = _required_string(webhook, "event_name", 100)
    partner_id = _required_string(webhook, "partner_id", 64)
    api_id = _api_id(webhook)
    api_type = webhook.get("api_type")
    if api_type is None:
        api_type = ""
    elif not isinstance(api_type, str) or len(api_type) > 100:
        raise WebhookValidationError("webhook.api_type must be a string or null")
    api_object = webhook.get("api_object")
    if api_object is not None and not isinstance(api_object, dict):
        raise WebhookValidationError("webhook.api_object must be an object or null")

    if event_name in (INTERVIEW_CREATED, INTERVIEW_UPDATED):
        if api_object is None:
            raise WebhookValidationError(f"webhook.api_object is required for {event_name}")
        # Parsed now as processing will parse it: a delivery it cannot use is refused
        # here (Big Interview sees the 400) rather than stored to fail on every retry.
        try:
            api.Interview.from_api(api_object)
        except UnexpectedResponse as exc:
            raise WebhookValidationError(f"webhook.api_object: {exc.description}") from None
    if event_name == INTERVIEW_DELETED and not _INTEGER_ID.fullmatch(api_id):
        raise WebhookValidationError(f"webhook.api_id must be an integer id for {event_name}")

    return Delivery(
        remote_id=remote_id,
        event_name=event_name,
        partner_id=partner_id,
        api_type=api_type,
        api_id=api_id,
        payload=payload,
        text=text,
    )


# --- Storing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredDelivery:
    """Where a delivery landed: ``created`` is False for a repeated notification id."""

    event_id: int
    created: bool


def _column(name: str) -> str:
    field = WebhookEvent._meta.get_field(name)
    assert isinstance(field, Field) and field.column
    return field.column


@functools.cache
def _postgresql_insert_sql(alias: str) -> str:
    quote = connections[alias].ops.quote_name
    names = ", ".join(
        quote(_column(name))
        for name in (
            "remote_id", "event_name", "partner_id", "api_type", "api_id", "payload",
            "status", "reason", "attempts", "last_error", "next_attempt_at", "received_at",
            "processed_at",
        )
    )  # fmt: skip
    return (
        f"INSERT INTO {quote(WebhookEvent._meta.db_table)} ({names}) "  # noqa: S608 - model identifiers
        "VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s, '', 0, '', NULL, %s, NULL) "
        f"ON CONFLICT ({quote(_column('remote_id'))}) DO NOTHING "
        f"RETURNING {quote(_column('id'))}"
    )


def _insert_postgresql(alias: str, delivery: Delivery, received_at: datetime) -> int | None:
    """One statement, safe under any concurrency: ``None`` if the id was already stored."""
    sql = _postgresql_insert_sql(alias)
    params = (
        delivery.remote_id,
        delivery.event_name,
        delivery.partner_id,
        delivery.api_type,
        delivery.api_id,
        delivery.text,  # stored verbatim: the full payload, as Big Interview sent it
        Status.PENDING,
        received_at,
    )
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def _insert_portable(alias: str, delivery: Delivery, received_at: datetime) -> tuple[int, bool]:
    """Any other database: insert, and answer a unique violation with the existing row."""
    try:
        with transaction.atomic(using=alias):
            event = WebhookEvent.objects.using(alias).create(
                remote_id=delivery.remote_id,
                event_name=delivery.event_name,
                partner_id=delivery.partner_id,
                api_type=delivery.api_type,
                api_id=delivery.api_id,
                payload=delivery.payload,
                received_at=received_at,
            )
    except IntegrityError:
        existing = (
            WebhookEvent.objects.using(alias)
            .filter(remote_id=delivery.remote_id)
            .values_list("pk", flat=True)
            .first()
        )
        if existing is None:
            raise
        return existing, False
    return event.pk, True


def store_delivery(delivery: Delivery) -> StoredDelivery:
    """Store ``delivery`` unless its notification id is already stored.

    Simultaneous retries of one notification all succeed: exactly one of them inserts.
    On a new row, ``webhook_received`` is sent once the insert has committed. Raises
    ``WebhookValidationError`` (400) when the database refuses the values themselves.
    """
    alias = router.db_for_write(WebhookEvent)
    connection = connections[alias]
    received_at = timezone.now()
    try:
        if connection.vendor == "postgresql":
            if connection.in_atomic_block:
                # A failed statement must not break the caller's transaction.
                with transaction.atomic(using=alias):
                    event_id = _insert_postgresql(alias, delivery, received_at)
            else:
                event_id = _insert_postgresql(alias, delivery, received_at)
            created = event_id is not None
            if event_id is None:
                event_id = (
                    WebhookEvent.objects.using(alias)
                    .filter(remote_id=delivery.remote_id)
                    .values_list("pk", flat=True)
                    .get()
                )
        else:
            event_id, created = _insert_portable(alias, delivery, received_at)
    except DataError as exc:
        raise WebhookValidationError(
            f"payload cannot be stored: {str(exc).splitlines()[0][:200]}"
        ) from None

    if created and webhook_received.has_listeners(WebhookEvent):
        event = WebhookEvent(
            pk=event_id,
            remote_id=delivery.remote_id,
            event_name=delivery.event_name,
            partner_id=delivery.partner_id,
            api_type=delivery.api_type,
            api_id=delivery.api_id,
            payload=delivery.payload,
            received_at=received_at,
        )
        event._state.adding = False
        event._state.db = alias
        transaction.on_commit(
            lambda: webhook_received.send(sender=WebhookEvent, event=event), using=alias
        )
    return StoredDelivery(event_id=event_id, created=created)


# --- Processing ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProcessOutcome:
    """What :func:`process_event` did.

    ``status`` is ``processed``, ``ignored`` or ``failed`` (the event's new status),
    ``skipped`` (already processed or ignored: nothing done) or ``missing`` (no such
    event, e.g. purged). ``sync_account_id`` is set when the account's track progress
    should be synced next (an interview changed); the caller schedules it.
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


def _webhook_object(event: WebhookEvent) -> Mapping[str, Any]:
    payload = event.payload
    if isinstance(payload, str):  # a JSON string stored by some other writer
        payload = json.loads(payload)
    webhook = payload.get("webhook") if isinstance(payload, Mapping) else None
    if not isinstance(webhook, Mapping):
        raise ValueError("stored payload has no 'webhook' object")
    return webhook


def _upsert_interview(account: Account, webhook: Mapping[str, Any]) -> None:
    data = api.Interview.from_api(webhook.get("api_object"))
    mirror.upsert_interviews(account, [data], source="webhook")


def _delete_interview(account: Account, webhook: Mapping[str, Any]) -> None:
    mirror.mark_interview_deleted(account, int(str(webhook.get("api_id"))), source="webhook")


_HANDLERS: dict[str, Callable[[Account, Mapping[str, Any]], None]] = {
    INTERVIEW_CREATED: _upsert_interview,
    INTERVIEW_UPDATED: _upsert_interview,
    INTERVIEW_DELETED: _delete_interview,
}


def _apply(event: WebhookEvent) -> int:
    """Run the event's handler; return the account id. Raises ``_Ignore`` when there is
    nothing to do. Must run inside the processing transaction."""
    handler = _HANDLERS.get(event.event_name)
    if handler is None:
        raise _Ignore(f"unknown event {event.event_name}"[:255])
    account_id = (
        Account.objects.filter(partner_id=event.partner_id).values_list("pk", flat=True).first()
    )
    if account_id is None:
        raise _Ignore("no account for partner_id")
    account = mirror.lock_account(account_id)
    handler(account, _webhook_object(event))
    return account_id


def retry_delay(attempts: int) -> timedelta:
    """Wait before the next automatic attempt: ``WEBHOOK_RETRY_BACKOFF * 2**(attempts-1)``
    after the ``attempts``-th failure (1, 2, 4 ... times the backoff)."""
    backoff: timedelta = app_settings.WEBHOOK_RETRY_BACKOFF
    return backoff * (2 ** max(0, min(attempts - 1, 20)))


def _record_failure(event_id: int, exc: Exception, attempts_seen: int | None) -> None:
    """Mark the event failed, in its own transaction (the work itself was rolled back).

    ``attempts_seen`` is the attempt count read under the lock; if it moved, another
    worker handled the event meanwhile and its result stands.
    """
    with transaction.atomic():
        event = WebhookEvent.objects.select_for_update().filter(pk=event_id).first()
        if event is None:
            return
        if attempts_seen is None:
            if event.status in (Status.PROCESSED, Status.IGNORED):
                return
        elif event.attempts != attempts_seen:
            return
        now = timezone.now()
        event.attempts += 1
        event.status = Status.FAILED
        event.last_error = describe_error(exc, MAX_ERROR_LENGTH)
        max_attempts = int(app_settings.WEBHOOK_MAX_ATTEMPTS)
        event.next_attempt_at = (
            now + retry_delay(event.attempts) if event.attempts < max_attempts else None
        )
        event.save(update_fields=["attempts", "status", "last_error", "next_attempt_at"])


def process_event(event_id: int, *, force: bool = False) -> ProcessOutcome:
    """Apply one stored event; safe to call twice at once and to call again later.

    The event row is locked (``SELECT ... FOR UPDATE``) and its status re-read, so a
    redelivered task waits for the first and then finds the event done. The mirror writes
    and the ``processed`` status commit together, so an event is never marked processed
    without its effect. ``force`` re-runs processed and ignored events too (the replay
    path; the mirror never applies older data, so that is harmless). Never raises for a
    failing event: the failure is stored on the row and returned.
    """
    attempts_seen: int | None = None
    try:
        with transaction.atomic():
            event = WebhookEvent.objects.select_for_update().filter(pk=event_id).first()
            if event is None:
                return ProcessOutcome(event_id, "missing", "no such event")
            if not force and event.status in (Status.PROCESSED, Status.IGNORED):
                return ProcessOutcome(event_id, "skipped", f"already {event.status}")
            attempts_seen = event.attempts
            try:
                account_id: int | None = _apply(event)
                status, reason = Status.PROCESSED, ""
            except _Ignore as ignore:
                account_id, status, reason = None, Status.IGNORED, ignore.reason
            event.status = status
            event.reason = reason
            event.attempts += 1
            event.last_error = ""
            event.next_attempt_at = None
            event.processed_at = timezone.now()
            event.save(
                update_fields=[
                    "status", "reason", "attempts", "last_error", "next_attempt_at",
                    "processed_at",
                ]
            )  # fmt: skip
    except Exception as exc:  # any failure is recorded on the row, never lost
        logger.warning("Webhook event %s failed: %s", event_id, type(exc).__name__, exc_info=True)
        _record_failure(event_id, exc, attempts_seen)
        return ProcessOutcome(event_id, Status.FAILED, describe_error(exc, MAX_ERROR_LENGTH))
    return ProcessOutcome(event_id, status, reason, sync_account_id=account_id)


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
    """Events the sweeper should (re)enqueue.

    ``pending`` longer than ``WEBHOOK_STUCK_AFTER`` (the task was never sent, e.g. the
    broker was down, or got lost), and ``failed`` ones whose backoff has passed and that
    have attempts left (``WEBHOOK_MAX_ATTEMPTS``). Past that they stay ``failed`` for a
    person to look at.
    """
    now = now or timezone.now()
    not_before = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    stuck = Q(status=Status.PENDING, received_at__lte=now - app_settings.WEBHOOK_STUCK_AFTER)
    retry = Q(status=Status.FAILED, attempts__lt=int(app_settings.WEBHOOK_MAX_ATTEMPTS))
    return WebhookEvent.objects.filter((stuck | retry) & not_before)


def claim_due_events(now: datetime | None = None, limit: int = 500) -> list[int]:
    """Pick up to ``limit`` due events and lease them for ``WEBHOOK_STUCK_AFTER``.

    The lease (``next_attempt_at``) keeps the next sweeps from enqueueing the same events
    again while a busy worker still has them queued; rows being processed right now are
    skipped (``SKIP LOCKED``).
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


def purge_events(retention: timedelta | None = None, now: datetime | None = None) -> int:
    """Delete ``processed`` and ``ignored`` events received more than ``retention`` ago
    (default ``WEBHOOK_RETENTION``). Failed and pending events are kept.

    A retention under two hours is refused (``ImproperlyConfigured``): Big Interview
    re-sends a notification for an hour, and a purged id would be processed twice.
    """
    if retention is None:
        retention = app_settings.WEBHOOK_RETENTION
    if retention is None or retention < MIN_WEBHOOK_RETENTION:
        raise ImproperlyConfigured(
            f"{SETTINGS_NAME}['WEBHOOK_RETENTION'] is {retention}; it must be at least "
            f"{MIN_WEBHOOK_RETENTION} so retried notifications are still recognised."
        )
    cutoff = (now or timezone.now()) - retention
    old = WebhookEvent.objects.filter(
        status__in=[Status.PROCESSED, Status.IGNORED], received_at__lt=cutoff
    )
    deleted = 0
    while batch := list(old.values_list("pk", flat=True)[:1000]):
        deleted += WebhookEvent.objects.filter(pk__in=batch).delete()[0]
    return deleted
