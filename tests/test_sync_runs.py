"""``sync_runs.py``: the books of a "sync all" run (each account counted once), its lease,
and how a run whose workers were lost is closed. Real Redis holds the lease."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_biginterview import coordination, sync_runs
from django_biginterview.models import Account, Interview, SyncRun, SyncRunOutcome
from django_biginterview.sync import SyncResult
from django_biginterview.testing.factories import AccountFactory
from tests.support.sandbox import remote_account, sandbox_client

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


def lease_holder() -> str | None:
    return coordination.lock_holder(sync_runs.LEASE)


def lapse_lease() -> None:
    """What a lease's TTL does once nothing renews it (a dead run)."""
    coordination.redis_client().delete(f"{coordination.KEY_PREFIX}lock:{sync_runs.LEASE}")


def open_run(total: int | None) -> SyncRun:
    run = sync_runs.begin()
    assert run is not None
    if total is not None:
        sync_runs.close_fan_out(run.pk, dispatched=total, skipped=0)
    return run


# --- running a whole run in this process ------------------------------------------------


def test_inline_run_counts_every_outcome_and_one_failure_stops_nothing(
    biginterview_sandbox,
) -> None:
    sb = biginterview_sandbox
    good = [remote_account(sb, f"run-{n}", interviews=1) for n in range(3)]
    AccountFactory(partner_id="run-ghost")  # 404
    missing = AccountFactory(partner_id="run-gone")
    Account.objects.filter(pk=missing.pk).update(remote_missing_at="2026-01-01T00:00:00Z")
    seen: list[str] = []

    run = sync_runs.sync_all_inline(
        sandbox_client(sb), chunk_size=2, on_result=lambda r: seen.append(r.outcome)
    )

    assert run is not None and run.finished_at is not None and run.state == "finished"
    assert (run.accounts_synced, run.accounts_failed, run.accounts_skipped) == (3, 1, 1)
    assert run.accounts_total == 5 and run.accounts_lost == 0
    assert run.failures == [{"partner_id": "run-ghost", "error": run.failures[0]["error"]}]
    assert "404" in run.failures[0]["error"]
    assert sorted(seen) == ["failed", "synced", "synced", "synced"]
    assert Interview.objects.filter(account__in=good).count() == 3
    summary = sync_runs.summarize_run(run)
    assert "3 synced, 1 failed, 1 skipped" in summary and "run-ghost" in summary
    assert lease_holder() is None
    assert not SyncRunOutcome.objects.exists()  # a finished run forgets its outcomes


def test_an_inline_run_does_nothing_while_a_live_run_holds_the_lease(biginterview_sandbox) -> None:
    other = open_run(total=None)
    remote_account(biginterview_sandbox, "inline-1")

    assert sync_runs.sync_all_inline(sandbox_client(biginterview_sandbox), chunk_size=10) is None

    assert lease_holder() == sync_runs.lease_token(other.pk)
    assert SyncRun.objects.count() == 1


# --- books ------------------------------------------------------------------------------


def test_a_run_finishes_once_when_its_counters_reach_the_total() -> None:
    run = open_run(total=None)
    sync_runs.record_results(run.pk, [SyncResult(1, "a", "synced")])
    assert sync_runs.finish_if_complete(run.pk) is None  # still fanning out

    sync_runs.close_fan_out(run.pk, dispatched=2, skipped=1)
    assert sync_runs.finish_if_complete(run.pk) is None  # one account still running
    sync_runs.record_results(run.pk, [SyncResult(2, "b", "failed", error="boom")])

    finished = sync_runs.finish_if_complete(run.pk)
    assert finished is not None and finished.duration is not None
    assert sync_runs.finish_if_complete(run.pk) is None
    run.refresh_from_db()
    assert (run.accounts_synced, run.accounts_failed, run.accounts_skipped) == (1, 1, 1)
    assert lease_holder() is None


def test_results_counted_together_are_exact_in_one_update() -> None:
    run = open_run(total=5)
    results = [
        SyncResult(1, "a", "synced"),
        SyncResult(2, "b", "failed", error="boom"),
        SyncResult(3, "c", "skipped", error="Account deleted."),
        SyncResult(4, "d", "synced"),
        SyncResult(5, "e", "failed", error="bang"),
    ]
    with CaptureQueriesContext(connection) as ctx:
        assert sync_runs.record_results(run.pk, results) == 5
    sql = [q["sql"].upper() for q in ctx.captured_queries]
    assert sum(s.startswith("UPDATE") for s in sql) == 1
    assert sum(s.startswith("INSERT") for s in sql) == 1
    run.refresh_from_db()
    assert (run.accounts_synced, run.accounts_failed, run.accounts_skipped) == (2, 2, 1)
    assert run.failures == [
        {"partner_id": "b", "error": "boom"},
        {"partner_id": "e", "error": "bang"},
    ]


def test_an_account_reported_again_counts_once() -> None:
    """A redelivered group, or a retry beside it, reports accounts a second time."""
    run = open_run(total=3)
    sync_runs.record_results(run.pk, [SyncResult(1, "a", "synced"), SyncResult(2, "b", "synced")])

    again = [SyncResult(2, "b", "failed", error="late"), SyncResult(3, "c", "synced")]
    assert sync_runs.record_results(run.pk, again) == 1
    assert sync_runs.record_results(run.pk, again) == 0

    run.refresh_from_db()
    assert (run.accounts_synced, run.accounts_failed) == (3, 0)
    assert run.finished_at is None  # finishing is the caller's step
    assert sync_runs.finish_if_complete(run.pk) is not None


def test_a_report_after_the_run_finished_complete_counts_nothing() -> None:
    run = open_run(total=1)
    sync_runs.record_results(run.pk, [SyncResult(1, "a", "synced")])
    sync_runs.finish_if_complete(run.pk)

    assert sync_runs.record_results(run.pk, [SyncResult(1, "a", "synced")]) == 0
    run.refresh_from_db()
    assert run.accounts_synced == 1


def test_failure_reasons_are_capped_but_counted() -> None:
    run = open_run(total=None)
    cap = sync_runs.MAX_RECORDED_FAILURES
    sync_runs.record_results(
        run.pk, [SyncResult(n, f"p{n}", "failed", error="boom") for n in range(cap - 2)]
    )
    sync_runs.record_results(
        run.pk, [SyncResult(1000 + n, f"q{n}", "failed", error="bang") for n in range(5)]
    )
    run.refresh_from_db()
    assert run.accounts_failed == cap + 3
    assert len(run.failures) == cap
    assert [f["partner_id"] for f in run.failures[-2:]] == ["q0", "q1"]


def test_account_ids_come_in_chunks_without_loading_accounts() -> None:
    accounts = AccountFactory.create_batch(5)
    missing = AccountFactory(remote_missing_at="2026-01-01T00:00:00Z")
    chunks = list(sync_runs.iter_account_id_chunks(2))
    assert chunks == [[a.pk for a in accounts[:2]], [a.pk for a in accounts[2:4]], [accounts[4].pk]]
    assert all(missing.pk not in chunk for chunk in chunks)


# --- lease ------------------------------------------------------------------------------


def test_a_run_holds_the_lease_and_a_second_run_does_not_start() -> None:
    run = open_run(total=None)
    assert lease_holder() == sync_runs.lease_token(run.pk)
    assert sync_runs.begin() is None
    assert SyncRun.objects.count() == 1


def test_the_lease_lapses_within_its_ttl_unless_renewed(settings) -> None:
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "SYNC_LOCK_TIMEOUT": 60}
    run = open_run(total=None)
    key = f"{coordination.KEY_PREFIX}lock:{sync_runs.LEASE}"
    redis = coordination.redis_client()
    assert 0 < redis.pttl(key) <= 60_000  # minutes, not the old two hours

    # A retry waiting 600 s keeps the run alive past its countdown ...
    assert sync_runs.keep_alive(run.pk, waiting=600)
    assert redis.pttl(key) > 600_000
    # ... and a plain heartbeat afterwards never shortens that.
    assert sync_runs.keep_alive(run.pk)
    assert redis.pttl(key) > 600_000
    # Only the holder renews.
    assert not sync_runs.keep_alive(run.pk + 1)


# --- closing a dead run -----------------------------------------------------------------


def test_a_live_run_is_not_closed() -> None:
    run = open_run(total=3)
    assert sync_runs.close_lost_runs() == []
    run.refresh_from_db()
    assert run.finished_at is None


def test_a_run_whose_lease_lapsed_is_closed_as_lost_with_what_never_reported() -> None:
    run = open_run(total=4)
    sync_runs.record_results(
        run.pk, [SyncResult(1, "a", "synced"), SyncResult(2, "b", "failed", error="boom")]
    )
    lapse_lease()

    [closed] = sync_runs.close_lost_runs()

    assert closed.pk == run.pk and closed.state == "lost"
    assert (closed.accounts_synced, closed.accounts_failed, closed.accounts_lost) == (1, 1, 2)
    assert closed.accounts_total == 4 and closed.finished_at is not None
    assert "2 account(s) were never reported" in closed.lost_reason
    assert "closed as lost" in sync_runs.summarize_run(closed)
    assert sync_runs.close_lost_runs() == []  # closed once


def test_a_late_report_moves_its_account_from_lost_once() -> None:
    run = open_run(total=2)
    sync_runs.record_results(run.pk, [SyncResult(1, "a", "synced")])
    lapse_lease()
    sync_runs.close_lost_runs()

    late = [SyncResult(1, "a", "synced"), SyncResult(2, "b", "synced")]
    assert sync_runs.record_results(run.pk, late) == 1
    assert sync_runs.record_results(run.pk, late) == 0

    run.refresh_from_db()
    assert (run.accounts_synced, run.accounts_lost) == (2, 0)


def test_a_run_whose_fan_out_died_counts_the_accounts_it_never_reached() -> None:
    accounts = AccountFactory.create_batch(3)
    run = open_run(total=None)  # the fan-out never fixed the total
    sync_runs.record_results(run.pk, [SyncResult(accounts[0].pk, "a", "synced")])
    lapse_lease()

    [closed] = sync_runs.close_lost_runs()

    assert (closed.accounts_total, closed.accounts_synced, closed.accounts_lost) == (3, 1, 2)


def test_a_complete_run_nobody_finished_is_closed_as_finished() -> None:
    """The worker died between counting the last account and finishing the run."""
    run = open_run(total=1)
    sync_runs.record_results(run.pk, [SyncResult(1, "a", "synced")])
    lapse_lease()

    [closed] = sync_runs.close_lost_runs()

    assert closed.state == "finished" and closed.accounts_lost == 0
    assert not SyncRunOutcome.objects.filter(run=closed).exists()


def test_a_new_run_closes_the_dead_one_and_starts_at_once() -> None:
    dead = open_run(total=2)
    lapse_lease()

    new = sync_runs.begin()

    assert new is not None and lease_holder() == sync_runs.lease_token(new.pk)
    dead.refresh_from_db()
    assert dead.state == "lost" and dead.accounts_lost == 2


def test_nothing_is_closed_while_the_lease_store_is_unreachable(monkeypatch) -> None:
    run = open_run(total=2)

    def unreachable(name: str) -> str | None:
        raise ConnectionError("store down")

    monkeypatch.setattr(coordination, "lock_holder", unreachable)
    assert sync_runs.close_lost_runs() == []
    run.refresh_from_db()
    assert run.finished_at is None


def test_outcomes_of_runs_finished_a_day_ago_are_forgotten() -> None:
    run = open_run(total=2)
    sync_runs.record_results(run.pk, [SyncResult(1, "a", "synced")])
    lapse_lease()
    sync_runs.close_lost_runs()
    assert SyncRunOutcome.objects.filter(run=run).count() == 1  # kept for late reports

    sync_runs.close_lost_runs(now=timezone.now() + timedelta(days=2))

    assert not SyncRunOutcome.objects.filter(run=run).exists()
