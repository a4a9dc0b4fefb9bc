"""The sync Celery tasks: real worker processes on real Redis, the sandbox over real HTTP.

Covers the fan-out and its ``SyncRun``, the "sync all" lock, retries (backoff and
``Retry-After``), permanent errors, the pending-sync dedupe and the request rate shared
by two worker processes.
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest
from celery.exceptions import SoftTimeLimitExceeded

from django_biginterview import coordination, sync, sync_runs, tasks
from django_biginterview.exceptions import ServerError
from django_biginterview.models import Account, Interview, SyncRun
from django_biginterview.testing.factories import AccountFactory
from tests.support.messages import record_messages
from tests.support.paths import EXAMPLE
from tests.support.polling import wait_for
from tests.support.sandbox import remote_account
from tests.support.workers import start_worker, stop_worker

FAST_RETRIES = {
    "SYNC_MAX_RETRIES": 3,
    "SYNC_RETRY_BACKOFF": 0.05,
    "SYNC_RETRY_BACKOFF_MAX": 0.2,
    "RATE_LIMIT": 0,
}


@pytest.fixture
def sync_env(biginterview_sandbox, settings, clean_redis):
    """The sandbox, clean Redis and fast retries; request it before the worker fixture so
    the worker process gets the same settings."""
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, **FAST_RETRIES}
    return biginterview_sandbox


def fetch_failing(monkeypatch, faults: dict) -> None:
    """Make ``sync.fetch_many`` answer ``faults[partner_id]`` (an exception) for those
    accounts, and really fetch the others."""
    real = sync.fetch_many

    def fetch_many(accounts, client, **options):
        outcomes = real([a for a in accounts if a.partner_id not in faults], client, **options)
        fetched = iter(outcomes)
        return [faults.get(a.partner_id) or next(fetched) for a in accounts]

    monkeypatch.setattr(sync, "fetch_many", fetch_many)


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
    example = (EXAMPLE / "example_project" / "settings.py").read_text()
    assert f'"task": "{tasks.sync_all_accounts.name}"' in example
    assert tasks.sync_all_accounts.name == "biginterview.sync_all_accounts"
    assert tasks.sync_account.name == "biginterview.sync_account"


def test_sync_tasks_are_redelivered_when_their_worker_is_lost() -> None:
    for task in (tasks.sync_account, tasks.sync_account_batch, tasks.sync_accounts):
        assert task.acks_late and task.reject_on_worker_lost, task.name
    # Webhook processing relies on the sweeper, which counts attempts; a requeue loop
    # on worker loss would bypass that count.
    for task in (tasks.process_webhook_event, tasks.process_webhook_events):
        assert not task.reject_on_worker_lost, task.name


def deliver(task, args: tuple, task_id: str):
    """One delivery of the message ``task_id`` (run here, as a worker would run it); the
    same id again is a redelivery after a lost worker."""
    return task.apply(args=args, task_id=task_id)


@pytest.mark.django_db
def test_a_redelivered_group_syncs_only_what_the_run_has_not_counted(sync_env) -> None:
    sb = sync_env
    accounts = [remote_account(sb, f"redo-{n}") for n in range(3)]
    run, members = _group_run(accounts)
    # The first delivery synced and counted the first account, then its worker died.
    sync_runs.record_results(run.pk, [sync.SyncResult(accounts[0].pk, "redo-0", "synced")])
    coordination.count_delivery("group-1:0", timedelta(minutes=5))
    sb.reset_calls()

    assert deliver(tasks.sync_accounts, (run.pk, members), "group-1").get() == 2

    fetched = [c.path for c in sb.api_calls("GET") if c.path.endswith("/tracks")]
    assert sorted(fetched) == ["/api/users/redo-1/tracks", "/api/users/redo-2/tracks"]
    run.refresh_from_db()
    assert (run.accounts_synced, run.accounts_failed, run.finished_at is not None) == (3, 0, True)


@pytest.mark.django_db
def test_a_group_whose_worker_keeps_dying_gives_up_on_that_account_only(
    sync_env, settings, monkeypatch
) -> None:
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "SYNC_MAX_DELIVERIES": 2}
    accounts, run, members = _remote_group(sync_env, "poison")
    handed = record_messages(monkeypatch, tasks.sync_accounts)
    # Two deliveries died while syncing poison-1 (noted by the second, careful one).
    for _ in range(2):
        coordination.count_delivery("group-p:0", timedelta(minutes=5))
    coordination.remember("group-p:0:current", str(accounts[1].pk), timedelta(minutes=5))
    sync_runs.record_results(run.pk, [sync.SyncResult(accounts[0].pk, "poison-0", "synced")])

    assert deliver(tasks.sync_accounts, (run.pk, members), "group-p").get() == 0

    poisoned = Account.objects.get(pk=accounts[1].pk)
    assert "lost 2 times while syncing this account" in poisoned.last_sync_error
    run.refresh_from_db()
    assert (run.accounts_synced, run.accounts_failed) == (1, 1)
    assert run.failures[0]["partner_id"] == "poison-1"
    assert handed.args == [(run.pk, [[accounts[2].pk, "poison-2"]])]  # the rest goes on


@pytest.mark.django_db
def test_an_exhausted_single_sync_records_the_failure_in_its_run(sync_env, settings) -> None:
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "SYNC_MAX_DELIVERIES": 1}
    account = remote_account(sync_env, "single-p")
    run, _ = _group_run([account])
    coordination.count_delivery("single-1:0", timedelta(minutes=5))

    deliver(tasks.sync_account, (account.pk, run.pk, "single-p"), "single-1")

    run.refresh_from_db()
    assert (run.accounts_failed, run.finished_at is not None) == (1, True)
    assert "gave up" in run.failures[0]["error"]


@pytest.mark.django_db
def test_a_redelivered_batch_sends_only_unreported_accounts(clean_redis, monkeypatch) -> None:
    sent = record_messages(monkeypatch, tasks.sync_accounts)
    accounts = AccountFactory.create_batch(3)
    run, _ = _group_run(accounts)
    sync_runs.record_results(run.pk, [sync.SyncResult(accounts[0].pk, "x", "synced")])
    coordination.count_delivery("batch-1:0", timedelta(minutes=5))

    deliver(tasks.sync_account_batch, (run.pk, [a.pk for a in accounts]), "batch-1")

    assert sent.args == [(run.pk, [[a.pk, a.partner_id] for a in accounts[1:]])]


@pytest.mark.django_db
def test_a_retry_waiting_for_its_countdown_keeps_the_run_alive(
    sync_env, settings, monkeypatch
) -> None:
    settings.BIGINTERVIEW = {
        **settings.BIGINTERVIEW,
        "SYNC_LOCK_TIMEOUT": 60,
        "SYNC_RETRY_BACKOFF": 300.0,
        "SYNC_RETRY_BACKOFF_MAX": 300.0,
    }
    account = remote_account(sync_env, "wait-1")
    run = sync_runs.begin()
    sync_runs.close_fan_out(run.pk, dispatched=1, skipped=0)
    record_messages(monkeypatch, tasks.sync_account)  # the retry message
    monkeypatch.setattr(tasks, "sync_retry_delay", lambda retries, retry_after=None: 300.0)

    fetch_failing(
        monkeypatch, {"wait-1": ServerError("Big Interview refused list_tracks", status=503)}
    )
    tasks.sync_accounts(run.pk, [[account.pk, "wait-1"]])

    ttl_ms = coordination.redis_client().pttl(f"{coordination.KEY_PREFIX}lock:{sync_runs.LEASE}")
    assert ttl_ms > 300_000  # the countdown, plus the lease's own minute
    assert sync_runs.close_lost_runs() == []


@pytest.mark.django_db
def test_a_group_held_back_by_the_rate_limit_hands_its_accounts_back_to_the_broker(
    sync_env, monkeypatch
) -> None:
    """Instead of sleeping in a worker process that webhook processing needs."""
    accounts, run, members = _remote_group(sync_env, "held")
    handed = record_messages(monkeypatch, tasks.sync_accounts)
    fetch_failing(
        monkeypatch,
        {"held-1": coordination.Throttled(42.0), "held-2": coordination.Throttled(42.0)},
    )

    assert tasks.sync_accounts(run.pk, members) == 1

    [message] = handed
    assert message.args == (run.pk, members[1:])
    assert 42.0 <= message.options["countdown"] <= 42.0 * 1.2
    run.refresh_from_db()
    assert (run.accounts_synced, run.accounts_failed) == (1, 0)  # nothing counted failed
    assert Account.objects.get(pk=accounts[1].pk).last_sync_error == ""


@pytest.mark.django_db
def test_a_single_sync_held_back_is_sent_again_later_without_spending_a_retry(
    sync_env, monkeypatch
) -> None:
    account = remote_account(sync_env, "held-single")
    sent = record_messages(monkeypatch, tasks.sync_account)

    fetch_failing(monkeypatch, {"held-single": coordination.Throttled(5.0)})

    result = tasks.sync_account.apply(args=(account.pk,), retries=2).get()

    assert result["outcome"] == "deferred"
    [message] = sent
    assert message.args == (account.pk, None, None)
    assert message.options["kwargs"] == {"slots_reserved": True}
    assert message.options["retries"] == 2 and message.options["countdown"] >= 5.0
    assert Account.objects.get(pk=account.pk).last_sync_error == ""


@pytest.mark.django_db
def test_a_sync_held_back_reserves_its_slots_and_comes_back_for_them(
    sync_env, settings, monkeypatch
) -> None:
    """Its two request slots are taken when it is held back, however far away; when it
    comes back for them it sends both calls without taking two more."""
    sb = sync_env
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "RATE_LIMIT": 4}  # 3/s for syncs
    account = remote_account(sb, "held-slots")
    limiter = sync.sync_client(max_wait=tasks.MAX_THROTTLE_WAIT).throttle
    limiter.reserve(10, bounded=False)  # others took the next 3.3 s
    booked = int(coordination.redis_client().get(limiter.key))
    sent = record_messages(monkeypatch, tasks.sync_account)

    assert tasks.sync_account.apply(args=(account.pk,)).get()["outcome"] == "deferred"

    [message] = sent
    options = message.options
    assert 2.0 < options["countdown"] < 4.0  # when its slots are due (3.3 s after booking)
    after_booking = int(coordination.redis_client().get(limiter.key))
    assert after_booking - booked == 2 * round(1_000_000 / 3)  # two slots, taken now
    sb.reset_calls()

    result = tasks.sync_account.apply(args=(account.pk,), kwargs=options["kwargs"]).get()

    assert result["outcome"] == "synced" and len(sb.api_calls()) == 2
    assert int(coordination.redis_client().get(limiter.key)) == after_booking


@pytest.mark.django_db
def test_a_second_sync_all_while_one_runs_does_nothing(clean_redis) -> None:
    assert coordination.acquire_lock(sync_runs.LEASE, "run:other", timedelta(minutes=1))
    AccountFactory()

    assert tasks.sync_all_accounts() is None

    assert SyncRun.objects.count() == 0
    assert coordination.lock_holder(sync_runs.LEASE) == "run:other"


@pytest.mark.django_db
def test_sync_all_with_no_account_finishes_and_releases_the_lock(clean_redis) -> None:
    run_id = tasks.sync_all_accounts()
    run = SyncRun.objects.get(pk=run_id)
    assert run.finished_at is not None and run.accounts_total == 0
    assert coordination.lock_holder(sync_runs.LEASE) is None


@pytest.mark.django_db
def test_the_lock_is_released_when_the_fan_out_fails(clean_redis, monkeypatch) -> None:
    def broken(chunk_size: int):
        raise RuntimeError("database went away")
        yield  # pragma: no cover

    monkeypatch.setattr(sync_runs, "iter_account_id_chunks", broken)
    with pytest.raises(RuntimeError):
        tasks.sync_all_accounts()

    assert coordination.lock_holder(sync_runs.LEASE) is None
    run = SyncRun.objects.get()
    assert run.finished_at is not None
    assert "Fan-out stopped" in run.failures[0]["error"]


@pytest.mark.django_db
def test_a_batch_sends_groups_with_partner_ids_and_counts_deleted_accounts_as_skipped(
    clean_redis, monkeypatch
) -> None:
    sent = record_messages(monkeypatch, tasks.sync_accounts)
    kept = AccountFactory.create_batch(tasks.ACCOUNTS_PER_TASK + 1)
    gone = AccountFactory(partner_id="gone-1")
    gone_pk = gone.pk
    gone.delete()
    run = SyncRun.objects.create()
    sync_runs.close_fan_out(run.pk, dispatched=len(kept) + 1, skipped=0)

    assert tasks.sync_account_batch(run.pk, [a.pk for a in kept] + [gone_pk]) == len(kept)

    members = [[a.pk, a.partner_id] for a in kept]
    assert sent.args == [
        (run.pk, members[: tasks.ACCOUNTS_PER_TASK]),
        (run.pk, members[tasks.ACCOUNTS_PER_TASK :]),
    ]
    run.refresh_from_db()
    assert run.accounts_skipped == 1 and run.finished_at is None


def _group_run(accounts: list[Account]) -> tuple[SyncRun, list[list]]:
    run = SyncRun.objects.create()
    sync_runs.close_fan_out(run.pk, dispatched=len(accounts), skipped=0)
    return run, [[a.pk, a.partner_id] for a in accounts]


def _remote_group(sandbox, prefix: str) -> tuple[list[Account], SyncRun, list[list]]:
    """Three accounts whose users exist in the sandbox, sent as one group of a run."""
    accounts = [remote_account(sandbox, f"{prefix}-{n}") for n in range(3)]
    return (accounts, *_group_run(accounts))


@pytest.mark.django_db
def test_a_group_counts_every_outcome_and_hands_transient_errors_to_a_retrying_task(
    sync_env, monkeypatch
) -> None:
    sb = sync_env
    good = remote_account(sb, "grp-good", interviews=2)
    ghost = AccountFactory(partner_id="grp-ghost")
    flaky = remote_account(sb, "grp-flaky")
    retried = record_messages(monkeypatch, tasks.sync_account)
    run, members = _group_run([good, ghost, flaky])
    fetch_failing(
        monkeypatch, {"grp-flaky": ServerError("Big Interview refused list_tracks", status=503)}
    )

    assert tasks.sync_accounts(run.pk, members) == 1

    assert Interview.objects.filter(account=good).count() == 2
    assert Account.objects.get(pk=ghost.pk).remote_missing_at is not None
    # The transient failure is neither recorded nor counted: its own task will count it.
    assert Account.objects.get(pk=flaky.pk).last_sync_error == ""
    [message] = retried
    assert message.args == (flaky.pk, run.pk, "grp-flaky")
    assert message.options["retries"] == 1 and message.options["countdown"] >= 0
    run.refresh_from_db()
    assert (run.accounts_synced, run.accounts_failed) == (1, 1)
    assert run.failures[0]["partner_id"] == "grp-ghost"
    assert run.finished_at is None


@pytest.mark.django_db
def test_a_group_past_half_its_time_limit_hands_the_rest_to_a_new_task(
    sync_env, settings, monkeypatch
) -> None:
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "TASK_SOFT_TIME_LIMIT": 60}
    readings = iter([0.0])  # the start; every later reading is past half the limit
    monkeypatch.setattr(tasks, "time", SimpleNamespace(monotonic=lambda: next(readings, 31.0)))
    _, run, members = _remote_group(sync_env, "slow")
    handed = record_messages(monkeypatch, tasks.sync_accounts)

    assert tasks.sync_accounts(run.pk, members) == 1  # always at least one account

    assert handed.args == [(run.pk, members[1:])]
    assert Account.objects.filter(last_synced_at__isnull=False).count() == 1
    run.refresh_from_db()
    assert run.accounts_synced == 1 and run.finished_at is None


@pytest.mark.django_db
def test_a_stopped_group_counts_what_it_did_not_finish_so_the_run_finishes(
    sync_env, monkeypatch
) -> None:
    _, run, members = _remote_group(sync_env, "stop")
    real_apply = sync.apply_snapshot

    def stopped_at_second(account, snapshot):
        if account.partner_id == "stop-1":
            raise SoftTimeLimitExceeded()
        return real_apply(account, snapshot)

    monkeypatch.setattr(sync, "apply_snapshot", stopped_at_second)

    with pytest.raises(SoftTimeLimitExceeded):
        tasks.sync_accounts(run.pk, members)

    run.refresh_from_db()
    assert (run.accounts_synced, run.accounts_failed) == (1, 2)
    assert {f["partner_id"] for f in run.failures} == {"stop-1", "stop-2"}
    assert "SoftTimeLimitExceeded" in run.failures[0]["error"]
    assert run.finished_at is not None
    assert coordination.lock_holder(sync_runs.LEASE) is None


@pytest.mark.django_db
def test_schedule_account_sync_keeps_one_pending_per_account(
    clean_redis, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    sent = record_messages(monkeypatch, tasks.sync_account)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        tasks.schedule_account_sync(7)
    assert sent == []  # nothing before the commit
    for callback in callbacks:
        callback()
    with django_capture_on_commit_callbacks(execute=True):
        tasks.schedule_account_sync(7)
        tasks.schedule_account_sync(8)
    assert sent.args == [(7,), (8,)]

    coordination.clear_pending("sync-account:7")  # what the task does when it starts
    with django_capture_on_commit_callbacks(execute=True):
        tasks.schedule_account_sync(7)
    assert sent.args == [(7,), (8,), (7,)]


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
    assert wait_for(lambda: coordination.lock_holder(sync_runs.LEASE) is None, timeout=5)
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
    assert statuses.count(503) == 4
    # Both listings go out at once: a listing answered 200 while its sibling gave up is
    # asked again when the task retries. The last two calls are the successful pair.
    assert statuses[-2:] == [200, 200] and statuses.count(200) in (2, 3)
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
    # The two listings go out together: one is refused, the task retries both.
    assert sorted(c.status for c in calls) == [200, 200, 200, 429]
    refused = next(c for c in calls if c.status == 429)
    assert all(c.time - refused.time >= 1.0 for c in calls[-2:])


@pytest.mark.integration
def test_permanent_errors_are_recorded_and_not_retried(sync_env, celery_worker_process):
    sb = sync_env
    account = AccountFactory(partner_id="ghost-9")

    tasks.sync_account.delay(account.pk)

    assert wait_for(lambda: Account.objects.get(pk=account.pk).last_sync_error, timeout=20)
    account.refresh_from_db()
    assert account.remote_missing_at is not None
    assert "404" in account.last_sync_error
    assert [c.status for c in sb.api_calls()] == [404, 404]  # both listings, not retried


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
    second = start_worker(celery_app, celery_queue, tmp_path / "second.log", name="second")
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
