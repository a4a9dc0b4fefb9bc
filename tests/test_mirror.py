"""The one write path: ordering rules that the webhook and the sync both rely on."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import transaction

from django_biginterview import mirror
from django_biginterview.client import Interview as APIInterview
from django_biginterview.models import Interview
from django_biginterview.testing.factories import AccountFactory

pytestmark = pytest.mark.django_db

SAME_SECOND = "2015-05-18T16:37:13.000Z"


def api_interview(*, completed: bool, updated_at: str = SAME_SECOND) -> APIInterview:
    return APIInterview.from_api(
        {
            "id": 95607,
            "title": "Top 10 Questions",
            "interviewer_name": "Jordan",
            "category": "Top 10 Questions: 1",
            "completed": completed,
            "created_at": "2015-05-18T16:37:13.000Z",
            "updated_at": updated_at,
            "links": {"review": "/members/mock_interviews/95607/review", "retake": ""},
        }
    )


def upsert(account, data: APIInterview, source: mirror.Source) -> None:
    with transaction.atomic():
        mirror.upsert_interviews(mirror.lock_account(account.pk), [data], source=source)


def test_a_webhook_with_the_same_updated_at_does_not_overwrite() -> None:
    """Two webhooks in one second cannot be ordered: the first one stays."""
    account = AccountFactory()
    upsert(account, api_interview(completed=True), "webhook")
    upsert(account, api_interview(completed=False), "webhook")
    assert Interview.objects.get().completed is True


def test_a_sync_repairs_a_same_second_update_the_webhooks_could_not_order() -> None:
    account = AccountFactory()
    upsert(account, api_interview(completed=False), "webhook")  # created, then completed
    upsert(account, api_interview(completed=True), "webhook")  # in the same second: dropped
    assert Interview.objects.get().completed is False

    upsert(account, api_interview(completed=True), "sync")  # the service's current state
    assert Interview.objects.get().completed is True


def test_a_sync_never_brings_older_data() -> None:
    account = AccountFactory()
    upsert(account, api_interview(completed=True, updated_at="2015-05-19T00:00:00.000Z"), "webhook")
    upsert(account, api_interview(completed=False), "sync")
    row = Interview.objects.get()
    assert row.completed is True
    assert row.remote_updated_at == datetime(2015, 5, 19, tzinfo=UTC)


# --- deletions: Big Interview's are sticky, the sync's inferences are not ----------------


def listing(account, interviews: list[APIInterview]) -> list[mirror.InterviewChange]:
    """Apply a full listing, as a sync fetched after every local write."""
    with transaction.atomic():
        upserted, deleted = mirror.sync_interviews(
            mirror.lock_account(account.pk),
            interviews,
            snapshot_started_at=datetime(2100, 1, 1, tzinfo=UTC),
        )
    return upserted + deleted


def announced(changes: list[mirror.InterviewChange]) -> list[tuple[int, str]]:
    return [(change.interview.remote_id, change.change) for change in changes]


def test_a_deletion_the_sync_inferred_is_undone_when_a_listing_shows_the_interview() -> None:
    account = AccountFactory()
    data = api_interview(completed=True)
    upsert(account, data, "webhook")

    assert announced(listing(account, [])) == [(95607, "deleted")]  # missing: deleted
    row = Interview.objects.get()
    assert (row.is_deleted, row.deletion_source) == (True, "sync")

    assert announced(listing(account, [data])) == [(95607, "restored")]
    row.refresh_from_db()
    assert (row.deleted_at, row.deletion_source, row.completed) == (None, "", True)


def test_a_deletion_big_interview_announced_stays_whatever_a_listing_says() -> None:
    account = AccountFactory()
    data = api_interview(completed=True)
    upsert(account, data, "webhook")
    with transaction.atomic():
        mirror.mark_interview_deleted(mirror.lock_account(account.pk), 95607, source="webhook")

    listing(account, [api_interview(completed=True, updated_at="2099-01-01T00:00:00Z")])

    row = Interview.objects.get()
    assert (row.is_deleted, row.deletion_source) == (True, "webhook")


def test_a_webhook_delete_makes_an_inferred_deletion_sticky() -> None:
    account = AccountFactory()
    data = api_interview(completed=False)
    upsert(account, data, "webhook")
    listing(account, [])
    with transaction.atomic():
        again = mirror.mark_interview_deleted(
            mirror.lock_account(account.pk), 95607, source="webhook"
        )
    assert again is None  # already deleted: nothing announced twice

    assert listing(account, [data]) == []
    assert Interview.objects.get().deletion_source == "webhook"


def test_only_a_listing_undoes_an_inferred_deletion_not_a_webhook_update() -> None:
    account = AccountFactory()
    upsert(account, api_interview(completed=False), "webhook")
    listing(account, [])

    upsert(account, api_interview(completed=True, updated_at="2099-01-01T00:00:00Z"), "webhook")

    assert Interview.objects.get().is_deleted
