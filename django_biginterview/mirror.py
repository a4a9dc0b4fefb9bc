"""The one write path for the mirrored tables (``Track``, ``TrackStep``, ``Interview``).

Webhook processing, the sync, the commands and the admin actions all call these
functions; nothing else writes those tables. Every function must run inside
``transaction.atomic()`` after :func:`lock_account`, which serialises all writers of one
account (two syncs, a sync and a webhook) on the account row, so a diff computed here
cannot race another writer. Query counts do not grow with the number of rows: reads are
one query per table, writes are bulk statements, and nothing is written when nothing
changed (so a repeated sync touches no timestamp and sends no signal).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import api_types as api
from .models import Account, Interview, Track, TrackStep
from .signals import interview_changed, tracks_changed

Source = Literal["webhook", "sync"]
Change = Literal["created", "updated", "deleted", "restored"]

INTERVIEW_DATA_FIELDS = (
    "title",
    "interviewer_name",
    "category",
    "completed",
    "remote_created_at",
    "remote_updated_at",
    "review_path",
    "retake_path",
    "raw",
)


@dataclass(frozen=True)
class InterviewChange:
    interview: Interview
    change: Change


def lock_account(account_id: int) -> Account:
    """Lock and return the account row; call first inside ``transaction.atomic()``."""
    return Account.objects.select_for_update().get(pk=account_id)


def _interview_values(data: api.Interview) -> dict[str, object]:
    return {
        "title": data.title[:255],
        "interviewer_name": data.interviewer_name[:255],
        "category": data.category[:255],
        "completed": data.completed,
        "remote_created_at": data.created_at,
        "remote_updated_at": data.updated_at,
        "review_path": data.review_path[:500],
        "retake_path": data.retake_path[:500],
        "raw": data.raw,
    }


def _is_stale(existing: Interview, incoming: api.Interview, source: Source) -> bool:
    """Whether ``incoming`` must not overwrite ``existing``.

    Older data never wins. Data with the *same* ``updated_at`` wins only from a sync: the
    API's timestamps may have one-second precision, so two webhooks in the same second
    (created, then completed) cannot be ordered, but a listing fetched afterwards is the
    service's current state, and every interview event schedules such a sync.
    """
    if existing.remote_updated_at is None:
        # A tombstone written by a delete that arrived before any data: fill it in.
        return False
    if incoming.updated_at is None:
        return True
    if source == "sync":
        return incoming.updated_at < existing.remote_updated_at
    return incoming.updated_at <= existing.remote_updated_at


def _announce(changes: Iterable[InterviewChange], source: Source) -> None:
    for item in changes:
        transaction.on_commit(
            lambda item=item: interview_changed.send(  # type: ignore[misc]
                sender=Interview, interview=item.interview, change=item.change, source=source
            )
        )


def upsert_interviews(
    account: Account, interviews: Sequence[api.Interview], *, source: Source
) -> list[InterviewChange]:
    """Create or update ``interviews`` of ``account``; never with older data.

    An incoming interview only replaces the stored one when its ``updated_at`` is newer,
    so out-of-order webhooks and stale sync snapshots cannot roll data back. Deleted rows
    take newer data too (so any delivery order converges) but stay deleted.
    """
    return upsert_interviews_of_accounts([(account, interviews)], source=source)


def upsert_interviews_of_accounts(
    batch: Sequence[tuple[Account, Sequence[api.Interview]]], *, source: Source
) -> list[InterviewChange]:
    """:func:`upsert_interviews` for several (locked) accounts at once, in one read and at
    most two writes whatever their number (the webhook batch path)."""
    accounts = {account.pk: account for account, _ in batch}
    per_account: dict[int, list[api.Interview]] = {}
    for account, interviews in batch:
        per_account.setdefault(account.pk, []).extend(interviews)
    latest = {
        (account_id, remote_id): data
        for account_id, interviews in per_account.items()
        for remote_id, data in _latest_by_id(interviews).items()
    }
    if not latest:
        return []
    existing = {
        (row.account_id, row.remote_id): row
        for row in Interview.objects.filter(
            account_id__in=list(accounts), remote_id__in={key[1] for key in latest}
        )
        if (row.account_id, row.remote_id) in latest
    }
    return _write_interviews(accounts, latest, existing, source)


def sync_interviews(
    account: Account, interviews: Sequence[api.Interview], *, snapshot_started_at: datetime
) -> tuple[list[InterviewChange], list[InterviewChange]]:
    """Apply a full listing: the rules of :func:`upsert_interviews` for the listed
    interviews, then mark deleted the live ones the listing no longer contains, reading the
    account's rows once. Rows written after the snapshot was requested (by a webhook
    racing the sync) are left alone: the snapshot cannot know about them. Returns
    ``(upserted, deleted)``."""
    latest = _latest_by_id(interviews)
    rows = {
        row.remote_id: row
        for row in Interview.objects.filter(
            Q(remote_id__in=list(latest)) | Q(deleted_at__isnull=True), account=account
        )
    }
    changes = (
        _write_interviews(
            {account.pk: account},
            {(account.pk, remote_id): data for remote_id, data in latest.items()},
            {(account.pk, remote_id): row for remote_id, row in rows.items()},
            "sync",
        )
        if latest
        else []
    )
    unlisted = [
        row
        for remote_id, row in rows.items()
        if remote_id not in latest
        and row.deleted_at is None
        and row.updated_at < snapshot_started_at
    ]
    return changes, _mark_deleted(unlisted)


def _latest_by_id(interviews: Iterable[api.Interview]) -> dict[int, api.Interview]:
    """The newest version of each interview (a listing or a batch may repeat one)."""
    latest: dict[int, api.Interview] = {}
    for data in interviews:
        known = latest.get(data.id)
        if known is None or (
            data.updated_at is not None
            and (known.updated_at is None or data.updated_at > known.updated_at)
        ):
            latest[data.id] = data
    return latest


def _write_interviews(
    accounts: dict[int, Account],
    latest: dict[tuple[int, int], api.Interview],
    existing: dict[tuple[int, int], Interview],
    source: Source,
) -> list[InterviewChange]:
    """Create or update the interviews in ``latest`` (keyed by account pk and remote id)
    against the ``existing`` rows: one ``bulk_create`` and one ``bulk_update`` at most."""
    now = timezone.now()
    to_create: list[Interview] = []
    to_update: list[Interview] = []
    restored: set[int] = set()
    for (account_id, remote_id), data in latest.items():
        row = existing.get((account_id, remote_id))
        if row is None:
            to_create.append(
                Interview(
                    account=accounts[account_id],
                    remote_id=remote_id,
                    updated_at=now,
                    **_interview_values(data),
                )
            )
            continue
        restore = source == "sync" and row.is_deleted and row.deletion_source == "sync"
        if restore:
            # Listed again: the sync that inferred the deletion was wrong (a racing
            # write, two servers' clocks). Big Interview's own deletes stay sticky.
            row.deleted_at, row.deletion_source = None, ""
            restored.add(row.pk)
        elif _is_stale(row, data, source):
            continue
        values = _interview_values(data)
        if not restore and all(getattr(row, name) == value for name, value in values.items()):
            continue
        for name, value in values.items():
            setattr(row, name, value)
        row.updated_at = now
        to_update.append(row)
    if to_create:
        Interview.objects.bulk_create(to_create)
    if to_update:
        Interview.objects.bulk_update(
            to_update, [*INTERVIEW_DATA_FIELDS, "updated_at", "deleted_at", "deletion_source"]
        )
    changes = [InterviewChange(row, "created") for row in to_create]
    changes += [
        InterviewChange(
            row, "restored" if row.pk in restored else "deleted" if row.is_deleted else "updated"
        )
        for row in to_update
    ]
    _announce(changes, source)
    return changes


def mark_interview_deleted(
    account: Account, remote_id: int, *, source: Source
) -> InterviewChange | None:
    """Mark one interview deleted, as Big Interview said (sticky). A delete seen before
    any data leaves a tombstone row, so a late create or update cannot bring the
    interview back."""
    now = timezone.now()
    row = Interview.objects.filter(account=account, remote_id=remote_id).first()
    if row is None:
        row = Interview.objects.create(
            account=account,
            remote_id=remote_id,
            deleted_at=now,
            deletion_source=source,
            updated_at=now,
        )
    elif row.is_deleted:
        if row.deletion_source != source and source == "webhook":
            # The sync had only inferred it: now it is certain, and sticky.
            row.deletion_source = source
            row.save(update_fields=["deletion_source"])
        return None
    else:
        row.deleted_at = now
        row.deletion_source = source
        row.updated_at = now
        row.save(update_fields=["deleted_at", "deletion_source", "updated_at"])
    change = InterviewChange(row, "deleted")
    _announce([change], source)
    return change


def _mark_deleted(rows: list[Interview]) -> list[InterviewChange]:
    if not rows:
        return []
    now = timezone.now()
    Interview.objects.filter(pk__in=[row.pk for row in rows]).update(
        deleted_at=now, deletion_source="sync", updated_at=now
    )
    changes = []
    for row in rows:
        row.deleted_at, row.deletion_source, row.updated_at = now, "sync", now
        changes.append(InterviewChange(row, "deleted"))
    _announce(changes, "sync")
    return changes


def replace_tracks(account: Account, tracks: Sequence[api.Track]) -> bool:
    """Make the account's tracks and steps equal to ``tracks``; return whether anything
    changed. Tracks are matched by title, steps by number."""
    now = timezone.now()
    current = {track.title: track for track in Track.objects.filter(account=account)}
    steps_by_track: dict[int, dict[int, TrackStep]] = {}
    # No tracks, no steps: a first sync skips the query.
    for stored in TrackStep.objects.filter(track__account=account) if current else ():
        steps_by_track.setdefault(stored.track_id, {})[stored.step] = stored

    wanted: dict[str, tuple[int, api.Track]] = {}
    for position, data in enumerate(tracks):
        wanted.setdefault(data.title[:255], (position, data))

    stale_track_ids = [t.pk for title, t in current.items() if title not in wanted]
    new_tracks: list[Track] = []
    changed_tracks: list[Track] = []
    for title, (position, data) in wanted.items():
        row = current.get(title)
        if row is None:
            new_tracks.append(
                Track(
                    account=account,
                    title=title,
                    progress=data.progress,
                    position=position,
                    updated_at=now,
                )
            )
        elif row.progress != data.progress or row.position != position:
            row.progress, row.position, row.updated_at = data.progress, position, now
            changed_tracks.append(row)

    changed = bool(stale_track_ids or new_tracks or changed_tracks)
    if stale_track_ids:
        Track.objects.filter(pk__in=stale_track_ids).delete()
    if new_tracks:
        Track.objects.bulk_create(new_tracks)
        current.update({t.title: t for t in new_tracks})
    if changed_tracks:
        Track.objects.bulk_update(changed_tracks, ["progress", "position", "updated_at"])

    new_steps: list[TrackStep] = []
    changed_steps: list[TrackStep] = []
    stale_step_ids: list[int] = []
    for title, (_position, data) in wanted.items():
        track = current[title]
        existing_steps = steps_by_track.get(track.pk, {})
        wanted_steps = {step.step: step for step in data.steps}
        stale_step_ids += [s.pk for n, s in existing_steps.items() if n not in wanted_steps]
        for number, step in wanted_steps.items():
            values = {
                "title": step.title[:255],
                "link": step.link[:500],
                "completed": step.completed,
            }
            step_row = existing_steps.get(number)
            if step_row is None:
                new_steps.append(TrackStep(track=track, step=number, **values))
            elif any(getattr(step_row, k) != v for k, v in values.items()):
                for k, v in values.items():
                    setattr(step_row, k, v)
                changed_steps.append(step_row)

    if stale_step_ids:
        TrackStep.objects.filter(pk__in=stale_step_ids).delete()
    if new_steps:
        TrackStep.objects.bulk_create(new_steps)
    if changed_steps:
        TrackStep.objects.bulk_update(changed_steps, ["title", "link", "completed"])
    changed = changed or bool(stale_step_ids or new_steps or changed_steps)
    if changed:
        transaction.on_commit(lambda: tracks_changed.send(sender=Account, account=account))
    return changed
