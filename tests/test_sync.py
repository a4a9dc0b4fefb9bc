"""The sync domain (``sync.py``) against the sandbox over real HTTP: what it mirrors, what it
costs in queries, what a second sync changes (nothing), and how it records failures."""

from __future__ import annotations

import math
import threading
from decimal import Decimal

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from django_biginterview import client as api
from django_biginterview import mirror, sync
from django_biginterview.exceptions import ServerError
from django_biginterview.models import Account, Interview, SyncRun, Track, TrackStep
from django_biginterview.signals import interview_changed, tracks_changed
from django_biginterview.testing.factories import AccountFactory
from tests.sync_support import remote_account, sandbox_client

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
    received: list[str] = []

    def on_interview(sender, change, **kwargs) -> None:
        received.append(f"interview:{change}")

    def on_tracks(sender, **kwargs) -> None:
        received.append("tracks")

    interview_changed.connect(on_interview)
    tracks_changed.connect(on_tracks)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            sync.sync_account(account, client)
        assert sorted(received) == ["interview:created"] * 3 + ["tracks"]
        stamps = list(Interview.objects.order_by("pk").values_list("updated_at", flat=True))
        track_stamps = list(Track.objects.order_by("pk").values_list("updated_at", flat=True))
        received.clear()

        with django_capture_on_commit_callbacks(execute=True):
            result = sync.sync_account(account, client)
    finally:
        interview_changed.disconnect(on_interview)
        tracks_changed.disconnect(on_tracks)

    assert received == []
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


class WebhookDuringFetch(api.BigInterviewClient):
    """Writes an interview the way a webhook would, after the listing was fetched and
    before the sync's transaction: the snapshot cannot know about it."""

    def __init__(self, account: Account, **kwargs) -> None:
        super().__init__(**kwargs)
        self.account = account

    def list_interviews(self, partner_id: str) -> list[api.Interview]:
        listing = super().list_interviews(partner_id)
        fresh = {"id": 777001, "title": "Just started", "updated_at": "2099-01-01T00:00:00Z"}
        with transaction.atomic():
            locked = mirror.lock_account(self.account.pk)
            mirror.upsert_interviews(locked, [api.Interview.from_api(fresh)], source="webhook")
        return listing


def test_deleted_remotely_is_marked_deleted_but_newer_local_rows_survive(
    biginterview_sandbox,
) -> None:
    sb = biginterview_sandbox
    account = remote_account(sb, "ada-4", interviews=2)
    sync.sync_account(account, sandbox_client(sb))
    gone = sb.interviews("ada-4")[0]["id"]
    sb.delete_interview("ada-4", gone)

    client = WebhookDuringFetch(account, base_url=sb.url, api_key=sb.api_key)
    result = sync.sync_account(account, client)

    assert result.interviews_deleted == 1
    assert Interview.objects.get(remote_id=gone).deleted_at is not None
    assert Interview.objects.get(remote_id=777001).deleted_at is None
    assert Interview.objects.filter(account=account, deleted_at__isnull=True).count() == 2


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
    assert [c.status for c in sb.api_calls()] == [404]  # not retried

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
    assert len(sb.api_calls()) == 1


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


# --- runs -------------------------------------------------------------------------------


def test_inline_run_counts_every_outcome_and_one_failure_stops_nothing(
    biginterview_sandbox,
) -> None:
    sb = biginterview_sandbox
    good = [remote_account(sb, f"run-{n}", interviews=1) for n in range(3)]
    AccountFactory(partner_id="run-ghost")  # 404
    missing = AccountFactory(partner_id="run-gone")
    Account.objects.filter(pk=missing.pk).update(remote_missing_at="2026-01-01T00:00:00Z")
    seen: list[str] = []

    run = sync.sync_all_inline(
        sync.start_run(),
        sandbox_client(sb),
        chunk_size=2,
        on_result=lambda r: seen.append(r.outcome),
    )

    assert run.finished_at is not None
    assert (run.accounts_synced, run.accounts_failed, run.accounts_skipped) == (3, 1, 1)
    assert run.accounts_total == 5
    assert run.failures == [{"partner_id": "run-ghost", "error": run.failures[0]["error"]}]
    assert "404" in run.failures[0]["error"]
    assert sorted(seen) == ["failed", "synced", "synced", "synced"]
    assert Interview.objects.filter(account__in=good).count() == 3
    summary = sync.summarize_run(run)
    assert "3 synced, 1 failed, 1 skipped" in summary and "run-ghost" in summary


def test_a_run_finishes_once_when_its_counters_reach_the_total() -> None:
    run = sync.start_run()
    ok = sync.SyncResult(1, "a", "synced")
    sync.record_run_result(run.pk, ok)
    assert sync.finish_run_if_complete(run.pk) is None  # still fanning out

    sync.close_fan_out(run.pk, dispatched=2, skipped=1)
    assert sync.finish_run_if_complete(run.pk) is None  # one account still running
    sync.record_run_result(run.pk, sync.SyncResult(2, "b", "failed", error="boom"))

    finished = sync.finish_run_if_complete(run.pk)
    assert finished is not None and finished.duration is not None
    assert sync.finish_run_if_complete(run.pk) is None
    run.refresh_from_db()
    assert (run.accounts_synced, run.accounts_failed, run.accounts_skipped) == (1, 1, 1)


def test_results_counted_together_are_exact_in_two_statements() -> None:
    run = sync.start_run()
    results = [
        sync.SyncResult(1, "a", "synced"),
        sync.SyncResult(2, "b", "failed", error="boom"),
        sync.SyncResult(3, "c", "skipped", error="Account deleted."),
        sync.SyncResult(4, "d", "synced"),
        sync.SyncResult(5, "e", "failed", error="bang"),
    ]
    with CaptureQueriesContext(connection) as ctx:
        sync.record_run_results(run.pk, results)
    writes = [q for q in ctx.captured_queries if q["sql"].upper().startswith("UPDATE")]
    assert len(writes) == 2
    run.refresh_from_db()
    assert (run.accounts_synced, run.accounts_failed, run.accounts_skipped) == (2, 2, 1)
    assert run.failures == [
        {"partner_id": "b", "error": "boom"},
        {"partner_id": "e", "error": "bang"},
    ]


def test_failure_reasons_are_capped_but_counted() -> None:
    run = SyncRun.objects.create()
    for n in range(sync.MAX_RECORDED_FAILURES - 2):
        sync.add_run_failure(run.pk, f"p{n}", "boom")
    sync.add_run_failures(run.pk, [(f"q{n}", "bang") for n in range(5)])
    run.refresh_from_db()
    assert run.accounts_failed == sync.MAX_RECORDED_FAILURES + 3
    assert len(run.failures) == sync.MAX_RECORDED_FAILURES
    assert [f["partner_id"] for f in run.failures[-2:]] == ["q0", "q1"]


def test_account_ids_come_in_chunks_without_loading_accounts() -> None:
    accounts = AccountFactory.create_batch(5)
    missing = AccountFactory(remote_missing_at="2026-01-01T00:00:00Z")
    chunks = list(sync.iter_account_id_chunks(2))
    assert chunks == [[a.pk for a in accounts[:2]], [a.pk for a in accounts[2:4]], [accounts[4].pk]]
    assert all(missing.pk not in chunk for chunk in chunks)


# --- real concurrency (PostgreSQL: SQLite serialises whole transactions instead) --------

if connection.vendor == "postgresql":

    @pytest.mark.django_db(transaction=True)
    def test_two_concurrent_syncs_of_one_account_leave_one_copy(biginterview_sandbox) -> None:
        sb = biginterview_sandbox
        account = remote_account(sb, "race-1", interviews=30)
        sb.set_faults(latency=0.05)  # both fetches are in flight at the same time
        barrier = threading.Barrier(2)
        outcomes: list[str] = []
        errors: list[BaseException] = []

        def worker() -> None:
            try:
                barrier.wait()
                outcomes.append(sync.sync_account(account, sandbox_client(sb)).outcome)
            except BaseException as exc:
                errors.append(exc)
            finally:
                connection.close()

        threads = [threading.Thread(target=worker) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)

        assert errors == []
        assert outcomes == ["synced", "synced"]
        assert Interview.objects.filter(account=account).count() == 30
        assert Track.objects.filter(account=account).count() == 2
        assert TrackStep.objects.filter(track__account=account).count() == 3
