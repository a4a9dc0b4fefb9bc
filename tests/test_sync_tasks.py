"""The sync Celery tasks: real worker processes on real Redis, the sandbox over real HTTP.

Covers the fan-out and its ``SyncRun``, the "sync all" lock, retries (backoff and
``Retry-After``), permanent errors, the pending-sync dedupe and the request rate shared
by two worker processes.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from django_biginterview import coordination, sync, tasks
from django_biginterview.exceptions import ServerError
from django_biginterview.models import Account, Interview, SyncRun
from django_biginterview.testing.factories import AccountFactory
from tests.conftest import wait_for
from tests.sync_support import (
    ROOT,
    fresh_coordination_state,
    remote_account,
    start_extra_worker,
    stop_worker,
)

FAST_RETRIES = {
    "SYNC_MAX_RETRIES": 3,
    "SYNC_RETRY_BACKOFF": 0.05,
    "SYNC_RETRY_BACKOFF_MAX": 0.2,
    "RATE_LIMIT": 0,
}


@pytest.fixture
def clean_redis(redis_url):
    yield from fresh_coordination_state()


@pytest.fixture
def sync_env(biginterview_sandbox, settings, clean_redis):
    """The sandbox, clean Redis and fast retries; request it before the worker fixture so
    the worker process gets the same settings."""
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, **FAST_RETRIES}
    tasks._throttled_client.cache_clear()
    return biginterview_sandbox


def finished_run() -> SyncRun | None:
    return SyncRun.objects.filter(finished_at__isnull=False).first()


# --- without a worker -------------------------------------------------------------------


def test_retry_delay_grows_with_jitter_and_honours_retry_after(settings) -> None:
    settings.BIGINTERVIEW = {
        **settings.BIGINTERVIEW,
        "SYNC_RETRY_BACKOFF": 2.0,
        "SYNC_RETRY_BACKOFF_MAX": 60.0,
    }
    delays = [tasks.sync_retry_delay(3) for _ in range(200)]
    assert all(0 <= d <= 16.0 for d in delays)
    assert len({round(d, 6) for d in delays}) > 100  # jittered, not one fixed value
    assert all(tasks.sync_retry_delay(10) <= 60.0 for _ in range(50))
    assert all(tasks.sync_retry_delay(0, retry_after=30.0) >= 30.0 for _ in range(50))


def test_time_limits_come_from_settings(settings) -> None:
    settings.BIGINTERVIEW = {
        **settings.BIGINTERVIEW,
        "TASK_SOFT_TIME_LIMIT": 42,
        "TASK_TIME_LIMIT": 50,
    }
    for task in (
        tasks.sync_account,
        tasks.sync_all_accounts,
        tasks.sync_account_batch,
        tasks.sync_accounts,
    ):
        assert (task.soft_time_limit, task.time_limit) == (42, 50)


def test_task_names_match_the_example_beat_schedule() -> None:
    example = (ROOT / "example_project" / "example_project" / "settings.py").read_text()
    assert f'"task": "{tasks.sync_all_accounts.name}"' in example
    assert tasks.sync_all_accounts.name == "biginterview.sync_all_accounts"
    assert tasks.sync_account.name == "biginterview.sync_account"


@pytest.mark.django_db
def test_a_second_sync_all_while_one_runs_does_nothing(clean_redis) -> None:
    assert coordination.acquire_lock(tasks.SYNC_ALL_LOCK, "run:other", timedelta(minutes=1))
    AccountFactory()

    assert tasks.sync_all_accounts() is None

    assert SyncRun.objects.count() == 0
    assert coordination.lock_holder(tasks.SYNC_ALL_LOCK) == "run:other"


@pytest.mark.django_db
def test_sync_all_with_no_account_finishes_and_releases_the_lock(clean_redis) -> None:
    run_id = tasks.sync_all_accounts()
    run = SyncRun.objects.get(pk=run_id)
    assert run.finished_at is not None and run.accounts_total == 0
    assert coordination.lock_holder(tasks.SYNC_ALL_LOCK) is None


@pytest.mark.django_db
def test_the_lock_is_released_when_the_fan_out_fails(clean_redis, monkeypatch) -> None:
    def broken(chunk_size: int):
        raise RuntimeError("database went away")
        yield  # pragma: no cover

    monkeypatch.setattr(sync, "iter_account_id_chunks", broken)
    with pytest.raises(RuntimeError):
        tasks.sync_all_accounts()

    assert coordination.lock_holder(tasks.SYNC_ALL_LOCK) is None
    run = SyncRun.objects.get()
    assert run.finished_at is not None
    assert "Fan-out stopped" in run.failures[0]["error"]


@pytest.mark.django_db
def test_a_batch_sends_groups_with_partner_ids_and_counts_deleted_accounts_as_skipped(
    clean_redis, monkeypatch
) -> None:
    sent: list[tuple] = []
    monkeypatch.setattr(
        tasks.sync_accounts, "apply_async", lambda args, **kw: sent.append(tuple(args))
    )
    kept = AccountFactory.create_batch(tasks.ACCOUNTS_PER_TASK + 1)
    gone = AccountFactory(partner_id="gone-1")
    gone_pk = gone.pk
    gone.delete()
    run = sync.start_run()
    sync.close_fan_out(run.pk, dispatched=len(kept) + 1, skipped=0)

    assert tasks.sync_account_batch(run.pk, [a.pk for a in kept] + [gone_pk]) == len(kept)

    members = [[a.pk, a.partner_id] for a in kept]
    assert sent == [
        (run.pk, members[: tasks.ACCOUNTS_PER_TASK]),
        (run.pk, members[tasks.ACCOUNTS_PER_TASK :]),
    ]
    run.refresh_from_db()
    assert run.accounts_skipped == 1 and run.finished_at is None


def _group_run(accounts: list[Account]) -> tuple[SyncRun, list[list]]:
    run = sync.start_run()
    sync.close_fan_out(run.pk, dispatched=len(accounts), skipped=0)
    return run, [[a.pk, a.partner_id] for a in accounts]


@pytest.mark.django_db
def test_a_group_counts_every_outcome_and_hands_transient_errors_to_a_retrying_task(
    sync_env, monkeypatch
) -> None:
    sb = sync_env
    good = remote_account(sb, "grp-good", interviews=2)
    ghost = AccountFactory(partner_id="grp-ghost")
    flaky = remote_account(sb, "grp-flaky")
    retried: list[tuple] = []
    monkeypatch.setattr(
        tasks.sync_account, "apply_async", lambda args, **kw: retried.append((tuple(args), kw))
    )
    run, members = _group_run([good, ghost, flaky])
    real_sync = sync.sync_account

    def flaky_sync(account, client):
        if account.partner_id == "grp-flaky":
            raise ServerError("Big Interview refused list_tracks", status=503)
        return real_sync(account, client)

    monkeypatch.setattr(sync, "sync_account", flaky_sync)

    assert tasks.sync_accounts(run.pk, members) == 1

    assert Interview.objects.filter(account=good).count() == 2
    assert Account.objects.get(pk=ghost.pk).remote_missing_at is not None
    # The transient failure is neither recorded nor counted: its own task will count it.
    assert Account.objects.get(pk=flaky.pk).last_sync_error == ""
    [(args, options)] = retried
    assert args == (flaky.pk, run.pk, "grp-flaky")
    assert options["retries"] == 1 and options["countdown"] >= 0
    run.refresh_from_db()
    assert (run.accounts_synced, run.accounts_failed) == (1, 1)
    assert run.failures[0]["partner_id"] == "grp-ghost"
    assert run.finished_at is None


@pytest.mark.django_db
def test_a_group_past_half_its_time_limit_hands_the_rest_to_a_new_task(
    sync_env, settings, monkeypatch
) -> None:
    sb = sync_env
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "TASK_SOFT_TIME_LIMIT": 0}
    accounts = [remote_account(sb, f"slow-{n}") for n in range(3)]
    handed: list[tuple] = []
    monkeypatch.setattr(
        tasks.sync_accounts, "apply_async", lambda args, **kw: handed.append(tuple(args))
    )
    run, members = _group_run(accounts)

    assert tasks.sync_accounts(run.pk, members) == 1  # always at least one account

    assert handed == [(run.pk, members[1:])]
    assert Account.objects.filter(last_synced_at__isnull=False).count() == 1
    run.refresh_from_db()
    assert run.accounts_synced == 1 and run.finished_at is None


@pytest.mark.django_db
def test_a_stopped_group_counts_what_it_did_not_finish_so_the_run_finishes(
    sync_env, monkeypatch
) -> None:
    sb = sync_env
    accounts = [remote_account(sb, f"stop-{n}") for n in range(3)]
    run, members = _group_run(accounts)
    real_sync = sync.sync_account

    def stopped_at_second(account, client):
        if account.partner_id == "stop-1":
            raise SoftTimeLimitExceeded()
        return real_sync(account, client)

    monkeypatch.setattr(sync, "sync_account", stopped_at_second)

    with pytest.raises(SoftTimeLimitExceeded):
        tasks.sync_accounts(run.pk, members)

    run.refresh_from_db()
    assert (run.accounts_synced, run.accounts_failed) == (1, 2)
    assert {f["partner_id"] for f in run.failures} == {"stop-1", "stop-2"}
    assert "SoftTimeLimitExceeded" in run.failures[0]["error"]
    assert run.finished_at is not None
    assert coordination.lock_holder(tasks.SYNC_ALL_LOCK) is None


@pytest.mark.django_db
def test_schedule_account_sync_keeps_one_pending_per_account(
    clean_redis, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    sent: list[tuple] = []
    monkeypatch.setattr(
        tasks.sync_account, "apply_async", lambda args, **kw: sent.append(tuple(args))
    )
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tasks.schedule_account_sync(7)
    assert sent == []  # nothing before the commit
    for callback in callbacks:
        callback()
    with django_capture_on_commit_callbacks(execute=True):
        tasks.schedule_account_sync(7)
        tasks.schedule_account_sync(8)
    assert sent == [(7,), (8,)]

    coordination.clear_pending("sync-account:7")  # what the task does when it starts
    with django_capture_on_commit_callbacks(execute=True):
        tasks.schedule_account_sync(7)
    assert sent == [(7,), (8,), (7,)]


@pytest.mark.django_db
def test_a_broker_failure_does_not_leave_the_account_marked_pending(
    clean_redis, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    def refuse(*args, **kwargs):
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.sync_account, "apply_async", refuse)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.schedule_account_sync(9)  # logged, not raised

    assert coordination.claim_pending("sync-account:9", timedelta(minutes=1))


@pytest.mark.django_db
def test_a_sync_runs_even_when_the_pending_marker_store_is_down(sync_env, monkeypatch) -> None:
    account = remote_account(sync_env, "store-down", interviews=2)

    def store_down(name: str) -> None:
        raise ConnectionError("redis down")

    monkeypatch.setattr(coordination, "clear_pending", store_down)
    tasks.sync_account.apply(args=(account.pk,)).get()

    assert Interview.objects.filter(account=account).count() == 2


# --- with real worker processes ---------------------------------------------------------


@pytest.mark.integration
def test_sync_all_through_a_worker_leaves_a_complete_run(sync_env, celery_worker_process):
    sb = sync_env
    good = [remote_account(sb, f"all-{n}", interviews=2) for n in range(3)]
    AccountFactory(partner_id="all-ghost")
    AccountFactory(partner_id="all-gone", remote_missing_at="2026-01-01T00:00:00Z")

    tasks.sync_all_accounts.delay()

    run = wait_for(finished_run, timeout=20)
    assert run is not None, "the run never finished"
    assert (run.accounts_synced, run.accounts_failed, run.accounts_skipped) == (3, 1, 1)
    assert run.failures[0]["partner_id"] == "all-ghost"
    assert Interview.objects.filter(account__in=good).count() == 6
    assert Account.objects.get(partner_id="all-ghost").remote_missing_at is not None
    # The worker releases the lock just after committing the finished run.
    assert wait_for(lambda: coordination.lock_holder(tasks.SYNC_ALL_LOCK) is None, timeout=5)
    assert len(sb.api_calls(path_prefix="/api/users/all-gone")) == 0


@pytest.mark.integration
def test_a_transient_error_during_a_run_is_retried_and_the_run_still_completes(
    sync_env, celery_worker_process
):
    sb = sync_env
    accounts = [remote_account(sb, f"run-flaky-{n}", interviews=1) for n in range(3)]
    # The client's own 3 attempts all fail: the group hands the account to a retrying task.
    sb.set_faults(fail_next=3, error_status=503)

    tasks.sync_all_accounts.delay()

    run = wait_for(finished_run, timeout=20)
    assert run is not None, "the run never finished"
    assert (run.accounts_synced, run.accounts_failed) == (3, 0), run.failures
    assert Interview.objects.filter(account__in=accounts).count() == 3
    statuses = [call.status for call in sb.api_calls()]
    assert statuses.count(503) == 3 and statuses.count(200) == 6


@pytest.mark.integration
def test_transient_errors_retry_with_backoff_until_synced(sync_env, celery_worker_process):
    sb = sync_env
    account = remote_account(sb, "flaky-1", interviews=1)
    # The client retries twice itself (3 attempts); the 4th failure needs a task retry.
    sb.set_faults(fail_next=4, error_status=503)

    tasks.sync_account.delay(account.pk)

    assert wait_for(lambda: Account.objects.get(pk=account.pk).last_synced_at, timeout=20)
    statuses = [call.status for call in sb.api_calls()]
    assert statuses[:4] == [503, 503, 503, 503]
    assert statuses[4:] == [200, 200]
    assert Interview.objects.filter(account=account).count() == 1


@pytest.mark.integration
def test_429_retries_no_sooner_than_retry_after(sync_env, celery_worker_process):
    sb = sync_env
    account = remote_account(sb, "busy-1")
    # Retry-After (1 s) is above the client's RETRY_BACKOFF_MAX (0.5 s in the test
    # settings), so the client gives up at once and the task schedules the retry.
    sb.set_faults(rate_limit=1, retry_after=1)

    tasks.sync_account.delay(account.pk)

    assert wait_for(lambda: Account.objects.get(pk=account.pk).last_synced_at, timeout=20)
    calls = sb.api_calls()
    assert [c.status for c in calls] == [429, 200, 200]
    assert calls[1].time - calls[0].time >= 1.0


@pytest.mark.integration
def test_permanent_errors_are_recorded_and_not_retried(sync_env, celery_worker_process):
    sb = sync_env
    account = AccountFactory(partner_id="ghost-9")

    tasks.sync_account.delay(account.pk)

    assert wait_for(lambda: Account.objects.get(pk=account.pk).last_sync_error, timeout=20)
    account.refresh_from_db()
    assert account.remote_missing_at is not None
    assert "404" in account.last_sync_error
    assert [c.status for c in sb.api_calls()] == [404]


@pytest.mark.integration
def test_scheduled_sync_runs_on_the_worker(sync_env, celery_worker_process):
    sb = sync_env
    account = remote_account(sb, "sched-1", interviews=1)

    tasks.schedule_account_sync(account.pk)  # autocommit: sent at once

    assert wait_for(lambda: Account.objects.get(pk=account.pk).last_synced_at, timeout=20)
    assert wait_for(lambda: coordination.claim_pending(f"sync-account:{account.pk}", timedelta(1)))


RATE = 5.0


@pytest.fixture
def rate_limited(sync_env, settings):
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "RATE_LIMIT": RATE}
    return sync_env


#: How late the first request may reach the sandbox after its slot on a loaded machine.
#: The limiter itself allows no burst (one slot every ``1 / RATE`` s, shared by all).
FIRST_SEND_TOLERANCE = 1.0


@pytest.mark.integration
def test_two_workers_together_stay_under_the_rate_limit(
    rate_limited, celery_app, celery_queue, celery_worker_process, tmp_path
):
    sb = rate_limited
    second = start_extra_worker(celery_app, celery_queue, "second", tmp_path / "second.log")
    workers = [second]
    accounts_count = 15
    try:
        accounts = [remote_account(sb, f"rate-{n}") for n in range(accounts_count)]
        for account in accounts:
            tasks.sync_account.delay(account.pk)
        synced = wait_for(
            lambda: Account.objects.filter(last_synced_at__isnull=False).count() == accounts_count,
            timeout=20,
        )
    finally:
        for worker in workers:
            stop_worker(worker)

    assert synced
    times = sorted(call.time for call in sb.api_calls())
    requests_sent = len(times)
    assert requests_sent == 2 * accounts_count
    # Request k (in order of arrival) cannot be sent before slot k, and slot k is k / RATE
    # after the first slot, so the spread is at least (n - 1) / RATE, less how late the
    # first request was sent. Only delays could make it longer, never shorter: this holds
    # however loaded the machine is. Two processes each limiting only themselves would
    # take about half as long (below the bound even if one process took 2/3 of the work).
    spread = times[-1] - times[0]
    assert spread >= (requests_sent - 1) / RATE - FIRST_SEND_TOLERANCE, spread
    # Both processes took part (the first one's log is the fixture's worker.log).
    logs = [(tmp_path / name).read_text() for name in ("worker.log", "second.log")]
    assert all("succeeded" in log for log in logs), logs
