"""The models' query vocabulary: each named selection returns exactly its rows, in its
order, at the number of queries it promises.

The admin, the API, the template tags and the webhook sweeper all read through these
methods, so a wrong row here would be wrong everywhere at once.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_biginterview.models import Account, Interview, Track, WebhookEvent
from django_biginterview.testing.factories import (
    AccountFactory,
    InterviewFactory,
    TrackFactory,
    TrackStepFactory,
    WebhookEventFactory,
)

pytestmark = pytest.mark.django_db

Status = WebhookEvent.Status
NOW = timezone.now()


# --- Interviews ------------------------------------------------------------------------


def test_live_leaves_out_deleted_interviews_whoever_deleted_them() -> None:
    live = InterviewFactory()
    InterviewFactory(account=live.account, deleted_at=NOW, deletion_source="webhook")
    InterviewFactory(account=live.account, deleted_at=NOW, deletion_source="sync")

    assert list(Interview.objects.live()) == [live]


def test_newest_first_orders_by_the_remote_update_then_the_newest_row() -> None:
    account = AccountFactory()
    old = InterviewFactory(account=account, remote_updated_at=NOW - timedelta(days=2))
    tied_first = InterviewFactory(account=account, remote_updated_at=NOW)
    tied_second = InterviewFactory(account=account, remote_updated_at=NOW)
    middle = InterviewFactory(account=account, remote_updated_at=NOW - timedelta(days=1))

    # order_by("?") first: the method must set the order, not inherit the model's.
    rows = list(Interview.objects.order_by("?").newest_first())

    assert rows == [tied_second, tied_first, middle, old]


# --- Tracks and steps ------------------------------------------------------------------


def tracks_out_of_order(account: Account) -> list[Track]:
    """Two tracks created in reverse position, each with steps created in reverse."""
    second = TrackFactory(account=account, position=2)
    first = TrackFactory(account=account, position=1)
    for track in (second, first):
        for step in (3, 1, 2):
            TrackStepFactory(track=track, step=step)
    return [first, second]


def steps_of(tracks: Any) -> list[tuple[int, list[int]]]:
    return [(track.pk, [step.step for step in track.steps.all()]) for track in tracks]


def test_with_steps_prefetches_each_tracks_own_steps_in_order(
    django_assert_num_queries: Any,
) -> None:
    first, second = tracks_out_of_order(AccountFactory())

    with django_assert_num_queries(2):
        shown = steps_of(Track.objects.in_order().with_steps())

    assert shown == [(first.pk, [1, 2, 3]), (second.pk, [1, 2, 3])]


def test_in_order_is_by_position_without_joining_the_account() -> None:
    first, second = tracks_out_of_order(AccountFactory())
    queryset = Track.objects.in_order()

    assert list(queryset) == [first, second]
    assert "biginterview_account" not in str(queryset.query)


def test_with_tracks_gives_each_account_its_own_tracks_in_order(
    django_assert_num_queries: Any,
) -> None:
    one, other = AccountFactory(), AccountFactory()
    mine = tracks_out_of_order(one)
    theirs = tracks_out_of_order(other)

    with django_assert_num_queries(2):
        tracks = {a.pk: list(a.tracks.all()) for a in Account.objects.with_tracks()}

    assert tracks == {one.pk: mine, other.pk: theirs}


def test_with_tracks_and_steps_adds_the_steps_in_one_more_query(
    django_assert_num_queries: Any,
) -> None:
    one, other = AccountFactory(), AccountFactory()
    mine = tracks_out_of_order(one)
    theirs = tracks_out_of_order(other)

    with django_assert_num_queries(3):
        shown = {a.pk: steps_of(a.tracks.all()) for a in Account.objects.with_tracks_and_steps()}

    assert shown == {
        one.pk: [(track.pk, [1, 2, 3]) for track in mine],
        other.pk: [(track.pk, [1, 2, 3]) for track in theirs],
    }


# --- Interview counts for a page of accounts -------------------------------------------


def test_interview_counts_count_each_accounts_live_interviews_in_one_query(
    django_assert_num_queries: Any,
) -> None:
    busy, idle, elsewhere = AccountFactory(), AccountFactory(), AccountFactory()
    InterviewFactory.create_batch(2, account=busy)
    InterviewFactory(account=busy, deleted_at=NOW)
    InterviewFactory(account=idle, deleted_at=NOW)
    InterviewFactory.create_batch(3, account=elsewhere)
    page = list(Account.objects.filter(pk__in=[busy.pk, idle.pk]).order_by("pk"))

    with django_assert_num_queries(1):
        counted = Account.objects.with_interview_counts(page)

    assert counted == page
    assert [account.interview_count for account in counted] == [2, 0]  # type: ignore[attr-defined]


def test_interview_counts_of_an_empty_page_ask_nothing(django_assert_num_queries: Any) -> None:
    with django_assert_num_queries(0):
        assert Account.objects.with_interview_counts([]) == []


# --- Webhook events: due for the sweeper -----------------------------------------------

STUCK_AFTER = timedelta(minutes=10)
MAX_ATTEMPTS = 3


def event(status: str, *, received: timedelta, **fields: Any) -> WebhookEvent:
    """An event received ``received`` before ``NOW``."""
    return WebhookEventFactory(status=status, received_at=NOW - received, **fields)


def due_now() -> set[int]:
    queryset = WebhookEvent.objects.due(NOW, stuck_after=STUCK_AFTER, max_attempts=MAX_ATTEMPTS)
    return set(queryset.values_list("pk", flat=True))


def test_due_picks_stuck_pending_events_and_failed_ones_with_attempts_left() -> None:
    hour = timedelta(hours=1)
    due = {
        event(Status.PENDING, received=hour).pk,
        event(Status.PENDING, received=hour, next_attempt_at=NOW - hour).pk,  # lease over
        event(Status.FAILED, received=hour, attempts=2, next_attempt_at=NOW).pk,
    }
    # Pending, but not for long enough (the task is probably still queued).
    event(Status.PENDING, received=STUCK_AFTER - timedelta(seconds=1))
    # Pending under a sweep's lease, failed within its backoff.
    event(Status.PENDING, received=hour, next_attempt_at=NOW + hour)
    event(Status.FAILED, received=hour, attempts=1, next_attempt_at=NOW + hour)
    # Failed with its attempts spent, or with no retry planned: for a person to look at.
    event(Status.FAILED, received=hour, attempts=MAX_ATTEMPTS, next_attempt_at=NOW - hour)
    event(Status.FAILED, received=hour, attempts=1, next_attempt_at=None)
    # Done.
    event(Status.PROCESSED, received=hour)
    event(Status.IGNORED, received=hour)

    assert due_now() == due


# --- Webhook events: purgeable ---------------------------------------------------------


def test_purgeable_picks_old_finished_events_and_old_failed_ones_with_no_retry() -> None:
    done_before, failed_before = NOW - timedelta(days=7), NOW - timedelta(days=30)
    old, older = timedelta(days=8), timedelta(days=31)
    purgeable = {
        event(Status.PROCESSED, received=old).pk,
        event(Status.IGNORED, received=old).pk,
        event(Status.FAILED, received=older, next_attempt_at=None).pk,
    }
    event(Status.PROCESSED, received=timedelta(days=6))  # kept its week
    event(Status.FAILED, received=old, next_attempt_at=None)  # failed events stay longer
    event(Status.FAILED, received=older, next_attempt_at=NOW)  # still to be retried
    event(Status.PENDING, received=older)  # never processed

    queryset = WebhookEvent.objects.purgeable(done_before=done_before, failed_before=failed_before)

    assert set(queryset.values_list("pk", flat=True)) == purgeable
