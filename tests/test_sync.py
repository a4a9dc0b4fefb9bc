"""The sync domain (``sync.py``) against the sandbox over real HTTP: what it mirrors, what it
costs in queries, what a second sync changes (nothing), and how it records failures."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_biginterview import client as api
from django_biginterview import mirror, sync
from django_biginterview.exceptions import ServerError
from django_biginterview.models import Account, Interview, Track, TrackStep
from django_biginterview.signals import interview_changed, tracks_changed
from django_biginterview.testing.factories import AccountFactory
from tests.support.concurrency import run_concurrently
from tests.support.sandbox import remote_account, sandbox_client
from tests.support.signals import capture

pytestmark = pytest.mark.django_db

MAX_QUERIES = 10


def test_first_sync_mirrors_tracks_steps_and_interviews(biginterview_sandbox) -> None:
    sb = biginterview_sandbox
    account = remote_account(sb, "ada-1", interviews=2)
    sb.complete_step("ada-1", "Mastery Track", 1)
    interview_id = sb.interviews("ada-1")[0]["id"]
    sb.complete_interview("ada-1", interview_id)

    result = sync.sync_account(account, sandbox_client(sb))

    assert result.outcome == "synced"
    assert result.interviews_created == 2 and result.tracks_changed
    tracks = {t.title: t for t in Track.objects.filter(account=account)}
    assert set(tracks) == {t["title"] for t in sb.tracks("ada-1")}
    assert tracks["Mastery Track"].progress == Decimal("0.5")
    steps = TrackStep.objects.filter(track=tracks["Mastery Track"]).order_by("step")
    remote_steps = sb.tracks("ada-1")[1]["tracks"]
    assert [(s.step, s.title, s.link, s.completed) for s in steps] == [
        (s["step"], s["title"], s["link"], s["completed"]) for s in remote_steps
    ]
    done = Interview.objects.get(account=account, remote_id=interview_id)
    assert done.completed is True
    assert done.review_path == f"/members/mock_interviews/{interview_id}/review"
    assert done.raw == sb.interviews("ada-1")[0]
    account.refresh_from_db()
    assert account.last_synced_at is not None and account.last_sync_error == ""


TRANSACTION_CONTROL = ("SAVEPOINT", "RELEASE SAVEPOINT", "BEGIN")


def _queries(account: Account, client: api.BigInterviewClient) -> int:
    """Statements a sync runs, without transaction control (the test's wrapping
    transaction turns the sync's BEGIN/COMMIT into SAVEPOINT/RELEASE)."""
    with CaptureQueriesContext(connection) as ctx:
        assert sync.sync_account(account, client).outcome == "synced"
    return sum(
        1 for q in ctx.captured_queries if not q["sql"].upper().startswith(TRANSACTION_CONTROL)
    )


def driver_batches(rows: int) -> tuple[int, int]:
    """Extra INSERT and UPDATE statements the database's parameter limit forces for
    ``rows`` interviews (0 on PostgreSQL; SQLite under Django 5.2 allows 999 parameters
    per statement, so Django splits bulk writes). Not the sync's doing: allowed for."""
    meta = Interview._meta
    inserted = [f for f in meta.concrete_fields if not f.primary_key]
    updated = [meta.pk, meta.pk] + [
        meta.get_field(name) for name in (*mirror.INTERVIEW_DATA_FIELDS, "updated_at")
    ]
    per_insert = connection.ops.bulk_batch_size(inserted, [None] * rows)
    per_update = connection.ops.bulk_batch_size(updated, [None] * rows)
    return math.ceil(rows / per_insert) - 1, math.ceil(rows / per_update) - 1


def test_query_count_is_the_same_for_1_and_200_interviews(biginterview_sandbox) -> None:
    sb = biginterview_sandbox
    client = sandbox_client(sb)
    counts = {}
    for partner_id, size in (("small", 1), ("big", 200)):
        account = remote_account(sb, partner_id, interviews=size)
        first = _queries(account, client)
        repeat = _queries(account, client)
        for item in sb.interviews(partner_id):
            sb.update_interview(partner_id, item["id"], completed=True)
        sb.complete_step(partner_id, "Fast Track", 1)
        changed = _queries(account, client)
        assert Interview.objects.filter(account=account, completed=True).count() == size
        counts[partner_id] = (first, repeat, changed)

    extra_inserts, extra_updates = driver_batches(200)
    small_first, small_repeat, small_changed = counts["small"]
    assert counts["big"] == (
        small_first + extra_inserts,
        small_repeat,
        small_changed + extra_updates,
    ), counts
    assert max(counts["small"]) <= MAX_QUERIES, counts


def test_second_sync_changes_nothing_and_sends_no_signal(
    biginterview_sandbox, django_capture_on_commit_callbacks
) -> None:
    sb = biginterview_sandbox
    account = remote_account(sb, "ada-2", interviews=3)
    client = sandbox_client(sb)
    with (
        capture(interview_changed) as interviews,
        capture(tracks_changed) as tracks,
        django_capture_on_commit_callbacks(execute=True),
    ):
        sync.sync_account(account, client)
    assert [kw["change"] for kw in interviews] == ["created"] * 3
    assert len(tracks) == 1
    stamps = list(Interview.objects.order_by("pk").values_list("updated_at", flat=True))
    track_stamps = list(Track.objects.order_by("pk").values_list("updated_at", flat=True))

    with (
        capture(interview_changed) as interviews,
        capture(tracks_changed) as tracks,
        django_capture_on_commit_callbacks(execute=True),
    ):
        result = sync.sync_account(account, client)

    assert interviews == [] and tracks == []
    assert not result.changed
    assert list(Interview.objects.order_by("pk").values_list("updated_at", flat=True)) == stamps
    assert list(Track.objects.order_by("pk").values_list("updated_at", flat=True)) == track_stamps


def test_sync_never_rolls_back_newer_webhook_data(biginterview_sandbox) -> None:
    sb = biginterview_sandbox
    account = remote_account(sb, "ada-3", interviews=1)
    client = sandbox_client(sb)
    sync.sync_account(account, client)
    remote = sb.interviews("ada-3")[0]
    newer = {**remote, "title": "Renamed (webhook)", "updated_at": "2099-01-01T00:00:00.000Z"}
    with transaction.atomic():
        locked = mirror.lock_account(account.pk)
        mirror.upsert_interviews(locked, [api.Interview.from_api(newer)], source="webhook")

    sync.sync_account(account, client)

    row = Interview.objects.get(account=account)
    assert row.title == "Renamed (webhook)"
    assert row.deleted_at is None


def test_deleted_remotely_is_marked_deleted_but_newer_local_rows_survive(
    biginterview_sandbox,
) -> None:
    sb = biginterview_sandbox
    account = remote_account(sb, "ada-4", interviews=2)
    sync.sync_account(account, sandbox_client(sb))
    gone = sb.interviews("ada-4")[0]["id"]
    sb.delete_interview("ada-4", gone)

    snapshot = sync.fetch(account, sandbox_client(sb))
    # A webhook writes an interview after the listing was fetched and before the sync's
    # transaction: the snapshot cannot know about it.
    fresh = {"id": 777001, "title": "Just started", "updated_at": "2099-01-01T00:00:00Z"}
    with transaction.atomic():
        locked = mirror.lock_account(account.pk)
        mirror.upsert_interviews(locked, [api.Interview.from_api(fresh)], source="webhook")
    result = sync.apply_snapshot(account, snapshot)

    assert result.interviews_deleted == 1
    assert Interview.objects.get(remote_id=gone).deleted_at is not None
    assert Interview.objects.get(remote_id=777001).deleted_at is None
    assert Interview.objects.filter(account=account, deleted_at__isnull=True).count() == 2


def test_both_listings_are_fetched_at_once(biginterview_sandbox) -> None:
    sb = biginterview_sandbox
    account = remote_account(sb, "ada-5", interviews=1)
    sb.set_faults(latency=2.0)
    sb.reset_calls()

    snapshot = sync.fetch(account, sandbox_client(sb))

    assert len(snapshot.interviews) == 1 and snapshot.tracks
    first, second = sorted(call.time for call in sb.api_calls())
    # One after the other, the second call would arrive a whole latency (2 s) later.
    assert second - first < 1.0


def test_404_marks_the_account_missing_and_a_later_success_clears_it(
    biginterview_sandbox,
) -> None:
    sb = biginterview_sandbox
    account = AccountFactory(partner_id="ghost-1")
    client = sandbox_client(sb)

    result = sync.sync_account(account, client)

    assert result.outcome == "failed" and result.remote_missing
    account.refresh_from_db()
    first_missing = account.remote_missing_at
    assert first_missing is not None
    assert "404" in account.last_sync_error
    assert account.last_sync_error_at is not None
    # Both listings are asked at once; each answered 404 once (not retried).
    assert sorted((c.path, c.status) for c in sb.api_calls()) == [
        ("/api/users/ghost-1/interviews", 404),
        ("/api/users/ghost-1/tracks", 404),
    ]

    sync.sync_account(account, client)
    account.refresh_from_db()
    assert account.remote_missing_at == first_missing

    sb.create_user("ghost-1")
    assert sync.sync_account(account, client).outcome == "synced"
    account.refresh_from_db()
    assert account.remote_missing_at is None and account.last_sync_error == ""


def test_401_is_recorded_without_the_key_and_not_retried(biginterview_sandbox) -> None:
    sb = biginterview_sandbox
    account = remote_account(sb, "ada-5")
    wrong_key = "0" * 32
    client = api.BigInterviewClient(base_url=sb.url, api_key=wrong_key)

    result = sync.sync_account(account, client)

    assert result.outcome == "failed" and not result.remote_missing
    account.refresh_from_db()
    assert "401" in account.last_sync_error
    assert wrong_key not in account.last_sync_error
    assert account.remote_missing_at is None
    assert len(sb.api_calls()) == 2  # the two listings, asked at once; neither retried


def test_transient_errors_are_raised_for_the_caller_to_retry(biginterview_sandbox) -> None:
    sb = biginterview_sandbox
    account = remote_account(sb, "ada-6")
    sb.set_faults(error_rate=1.0, error_status=503)

    with pytest.raises(ServerError) as caught:
        sync.sync_account(account, sandbox_client(sb, max_retries=0))

    assert caught.value.transient
    account.refresh_from_db()
    assert account.last_sync_error == ""  # the caller decides once retries are exhausted
    result = sync.sync_account_safely(account, sandbox_client(sb, max_retries=0))
    account.refresh_from_db()
    assert result.outcome == "failed" and "503" in account.last_sync_error


def test_invalid_partner_id_is_a_recorded_failure(biginterview_sandbox) -> None:
    account = AccountFactory(partner_id="not valid!")
    result = sync.sync_account(account, sandbox_client(biginterview_sandbox))
    assert result.outcome == "failed"
    assert biginterview_sandbox.api_calls() == []


# --- real concurrency (PostgreSQL: SQLite serialises whole transactions instead) --------

if connection.vendor == "postgresql":

    @pytest.mark.django_db(transaction=True)
    def test_two_concurrent_syncs_of_one_account_leave_one_copy(biginterview_sandbox) -> None:
        sb = biginterview_sandbox
        account = remote_account(sb, "race-1", interviews=30)
        sb.set_faults(latency=0.05)  # both fetches are in flight at the same time

        def sync_once() -> str:
            return sync.sync_account(account, sandbox_client(sb)).outcome

        outcomes = run_concurrently(sync_once, 2)

        assert outcomes == ["synced", "synced"]
        assert Interview.objects.filter(account=account).count() == 30
        assert Track.objects.filter(account=account).count() == 2
        assert TrackStep.objects.filter(track__account=account).count() == 3


def test_several_accounts_are_fetched_at_once(biginterview_sandbox) -> None:
    sb = biginterview_sandbox
    accounts = [remote_account(sb, f"many-{n}", interviews=1) for n in range(4)]
    sb.set_faults(latency=1.0)
    sb.reset_calls()

    snapshots = sync.fetch_many(accounts, sandbox_client(sb))

    assert [len(s.interviews) for s in snapshots] == [1, 1, 1, 1]
    arrivals = sorted(call.time for call in sb.api_calls())
    assert len(arrivals) == 8
    # One after another, the eight calls would arrive over seven whole latencies (7 s).
    assert arrivals[-1] - arrivals[0] < 3.5


def test_an_account_the_rate_limit_holds_back_costs_no_call(biginterview_sandbox) -> None:
    """Both calls of an account take their slots together, before either is sent."""
    from django_biginterview.coordination import RateLimiter, Throttled, redis_client

    sb = biginterview_sandbox
    accounts = [remote_account(sb, f"held-{n}") for n in range(3)]
    limiter = RateLimiter(2, scope="fetch-test", redis=redis_client(), max_wait=0.7)
    redis_client().delete(limiter.key)
    client = api.BigInterviewClient(base_url=sb.url, api_key=sb.api_key, throttle=limiter)
    sb.reset_calls()

    outcomes = sync.fetch_many(accounts, client)

    # Slots every 0.5 s: the first account's two fit in 0.7 s, the second's first does
    # not, and the third is held back with it.
    assert isinstance(outcomes[0], sync.Snapshot)
    assert all(isinstance(outcome, Throttled) for outcome in outcomes[1:])
    assert sorted(c.path for c in sb.api_calls()) == [
        "/api/users/held-0/interviews",
        "/api/users/held-0/tracks",
    ]
