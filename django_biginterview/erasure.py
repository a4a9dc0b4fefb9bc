"""Erasure: remove what this app stores about one person (GDPR "right to erasure").

What an erasure of one ``partner_id`` does, in one transaction:

- deletes the ``Account``; the foreign keys' cascade deletes its ``Track``, ``TrackStep``
  and ``Interview`` rows with it (``mirror.py`` stays the only code that *writes* them);
- deletes the partner's ``processed`` and ``ignored`` webhook events received more than
  ``conf.MIN_WEBHOOK_RETENTION`` (2 hours) ago: Big Interview retries a
  notification for an hour, so their ids no longer matter;
- anonymises the partner's other events: those received since, whatever their status,
  and every ``pending`` or ``failed`` one. The payload keeps only the notification
  ``id``, ``event_name``, ``api_type`` and ``api_id``, with ``partner_id`` replaced by
  :data:`ERASED_PARTNER_ID` and no ``api_object``; ``last_error`` is cleared. The
  notification id stays stored so that a late retry of that notification is recognised
  as a duplicate, not stored again with the person's data. A pending or failed event
  becomes ``ignored`` (reason :data:`ERASED_REASON`): there is no account left to apply
  it to, and the sweeper stops retrying it. The purge deletes anonymised events once they
  are older than ``WEBHOOK_RETENTION``, like any other processed or ignored event;
- replaces the ``partner_id`` (and its error text) in the failure lists of sync runs.

Deleting a Django user runs the same erasure: a ``pre_delete`` receiver on the user model
(connected in ``apps.py``) calls :func:`erase_user` inside the deletion's transaction, so
the user's row and their data go together or not at all. ``on_delete=CASCADE`` on
``Account.user`` alone is not enough: webhook events are matched by ``partner_id``, not
by a foreign key, and the user's cascade collects the account's rows before taking any
lock. The erasure locks the account first, so rows a webhook or a sync wrote meanwhile
are deleted too; the user's cascade then finds the account gone and deletes nothing
more (``post_delete`` receivers of these models may hear of some rows twice).

After an erasure nothing re-creates the person's rows: webhook processing ignores an
event whose ``partner_id`` has no account ("no account for partner_id"), and a sync
whose account was deleted while it talked to Big Interview writes nothing ("Account
deleted."). A *new* notification for the erased ``partner_id`` is still stored, as
``ignored`` with its payload, until the purge; erasing the ``partner_id`` again removes
it. Locks are taken in the order webhook processing takes them (events, then account),
so an erasure and a worker wait for each other instead of deadlocking.

Big Interview's Partner API has no endpoint to delete a user: the account on Big
Interview's side stays until the partner asks Big Interview to delete it (anonymous
accounts may be deleted there 24 hours after creation).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from typing import Any

from django.db import transaction
from django.db.models import Model, TextField
from django.db.models.functions import Cast
from django.utils import timezone

from .conf import MIN_WEBHOOK_RETENTION
from .models import Account, Interview, SyncRun, Track, TrackStep, WebhookEvent

Status = WebhookEvent.Status

#: Stands in for an erased ``partner_id``. Brackets make it an invalid ``partner_id``, so
#: it never names a real account.
ERASED_PARTNER_ID = "[erased]"

#: The ``reason`` of a pending or failed event closed by an erasure.
ERASED_REASON = "partner erased"

_FINISHED = (Status.PROCESSED, Status.IGNORED)


@dataclass(frozen=True)
class ErasureReport:
    """Rows an erasure deleted, anonymised or redacted (with ``dry_run``: would have).

    ``partner_id`` is ``None`` for a user who never had an account, for whom nothing is
    stored.
    """

    partner_id: str | None
    accounts: int = 0
    tracks: int = 0
    track_steps: int = 0
    interviews: int = 0
    events_deleted: int = 0
    events_anonymised: int = 0
    sync_failures_redacted: int = 0
    dry_run: bool = False

    @property
    def total(self) -> int:
        """How many rows and entries were (or would be) changed in all."""
        return sum(
            getattr(self, f.name) for f in fields(self) if f.name not in ("partner_id", "dry_run")
        )

    def __str__(self) -> str:
        if not self.total:
            return "nothing stored"
        deleted = ", ".join(
            _counted(count, noun)
            for count, noun in (
                (self.accounts, "account"),
                (self.tracks, "track"),
                (self.track_steps, "track step"),
                (self.interviews, "interview"),
                (self.events_deleted, "webhook event"),
            )
        )
        anonymised = _counted(self.events_anonymised, "webhook event")
        redacted = _counted(self.sync_failures_redacted, "sync failure entry")
        if self.dry_run:
            return f"would delete {deleted}; anonymise {anonymised}; redact {redacted}"
        return f"deleted {deleted}; anonymised {anonymised}; redacted {redacted}"


def _counted(count: int, noun: str) -> str:
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun[:-1] + 'ies' if noun.endswith('y') else noun + 's'}"


def erase_user(user: Any, *, dry_run: bool = False) -> ErasureReport:
    """Erase the Big Interview data of ``user`` (see :func:`erase_partner_id`).

    The user row itself is left alone: deleting it is the host project's decision (and
    runs this erasure). A user who stays and clicks "Practice interviews" again gets a new
    account with the same ``partner_id``, and the next sync brings back whatever Big
    Interview still holds for it.
    """
    partner_id = Account.objects.filter(user=user.pk).values_list("partner_id", flat=True).first()
    if partner_id is None:
        return ErasureReport(None, dry_run=dry_run)
    return erase_partner_id(partner_id, dry_run=dry_run)


def erase_partner_id(partner_id: str, *, dry_run: bool = False) -> ErasureReport:
    """Delete the account of ``partner_id`` with its tracks, steps and interviews, and
    delete or anonymise its webhook events, in one transaction (see the module docstring).

    Safe to run again: a second run finds nothing and returns a report of zeros. With
    ``dry_run`` nothing is locked or changed and the report says what would be erased.
    """
    with transaction.atomic():
        events = WebhookEvent.objects.filter(partner_id=partner_id)
        accounts = Account.objects.filter(partner_id=partner_id)
        runs = SyncRun.objects.annotate(failures_text=Cast("failures", TextField())).filter(
            failures_text__contains=partner_id
        )
        if not dry_run:
            # Events before the account: the order webhook processing locks them in.
            events, accounts, runs = (
                events.select_for_update(),
                accounts.select_for_update(),
                runs.select_for_update(),
            )
        rows = list(events.order_by("pk").defer("payload"))
        cutoff = timezone.now() - MIN_WEBHOOK_RETENTION
        deletable = {e.pk for e in rows if e.status in _FINISHED and e.received_at < cutoff}
        kept = [e for e in rows if e.pk not in deletable]
        account = accounts.first()
        redactions: list[tuple[int, list[dict[str, Any]], int]] = []
        for run in runs.order_by("pk").only("pk", "failures"):
            failures, count = _redacted_failures(run.failures, partner_id)
            if count:
                redactions.append((run.pk, failures, count))
        report = ErasureReport(
            partner_id,
            accounts=int(account is not None),
            tracks=Track.objects.filter(account=account).count() if account else 0,
            track_steps=TrackStep.objects.filter(track__account=account).count() if account else 0,
            interviews=Interview.objects.filter(account=account).count() if account else 0,
            events_deleted=len(deletable),
            events_anonymised=len(kept),
            sync_failures_redacted=sum(count for _, _, count in redactions),
            dry_run=dry_run,
        )
        if dry_run:
            return report
        if account is not None:
            account.delete()
        WebhookEvent.objects.filter(
            partner_id=partner_id, status__in=_FINISHED, received_at__lt=cutoff
        ).delete()
        _anonymise(kept)
        for run_pk, failures, _ in redactions:
            SyncRun.objects.filter(pk=run_pk).update(failures=failures)
    return report


def erase_deleted_user(sender: type[Model], instance: Model, **kwargs: Any) -> None:
    """``pre_delete`` receiver on the user model: a deleted user leaves nothing behind."""
    erase_user(instance)


def _anonymise(events: Sequence[WebhookEvent]) -> None:
    now = timezone.now()
    for event in events:
        event.partner_id = ERASED_PARTNER_ID
        event.payload = {
            "webhook": {
                "id": event.remote_id,
                "event_name": event.event_name,
                "partner_id": ERASED_PARTNER_ID,
                "api_type": event.api_type,
                "api_id": event.api_id,
                "api_object": None,
            }
        }
        event.last_error = ""
        if event.status not in _FINISHED:
            event.status = Status.IGNORED
            event.reason = ERASED_REASON
            event.next_attempt_at = None
            event.processed_at = now
    WebhookEvent.objects.bulk_update(
        events,
        ["partner_id", "payload", "last_error", "status", "reason", "next_attempt_at",
         "processed_at"],
        batch_size=500,
    )  # fmt: skip


def _redacted_failures(
    failures: list[dict[str, Any]] | None, partner_id: str
) -> tuple[list[dict[str, Any]], int]:
    """A run's failure list with ``partner_id``'s entries redacted, and how many there were
    (the text search that found the run also matches longer ids that contain it)."""
    redacted: list[dict[str, Any]] = []
    count = 0
    for entry in failures or []:
        if entry.get("partner_id") == partner_id:
            error = str(entry.get("error") or "").replace(partner_id, ERASED_PARTNER_ID)
            entry = {**entry, "partner_id": ERASED_PARTNER_ID, "error": error}
            count += 1
        redacted.append(entry)
    return redacted, count
