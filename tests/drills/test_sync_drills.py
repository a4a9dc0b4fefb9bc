""" "Sync all" drills, 40 accounts at 250 ms per API call: a storm of 503 and 429, an
account that kills whoever syncs it, and a pool process killed mid-run."""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import pytest

from django_biginterview import tasks
from django_biginterview.models import Account, SyncRun
from django_biginterview.sandbox import Sandbox
from tests.drills.conftest import StartProcess
from tests.drills.harness import (
    API_LATENCY,
    Clock,
    kill_pool_child,
    pool_kills,
    remote_accounts,
    wait_long,
)

pytestmark = pytest.mark.drill

ACCOUNTS = 40


def finished_run(after: int = 0) -> SyncRun | None:
    return SyncRun.objects.filter(pk__gt=after, finished_at__isnull=False).order_by("pk").first()


def unsynced() -> int:
    return Account.objects.filter(last_synced_at__isnull=True).count()


def books(run: SyncRun) -> str:
    return (
        f"{run.accounts_synced} synced / {run.accounts_failed} failed / "
        f"{run.accounts_lost} lost of {run.accounts_total}"
    )


def storm(sandbox: Sandbox, seconds: float) -> None:
    """Alternate, second by second: every call 429 (Retry-After 1), then 80% of calls
    503 (Retry-After 1); then Big Interview is merely slow again."""
    deadline = time.monotonic() + seconds
    phase = 0
    while time.monotonic() < deadline:
        if phase % 2 == 0:
            sandbox.set_faults(latency=API_LATENCY, rate_limit=True, retry_after=1)
        else:
            sandbox.set_faults(
                latency=API_LATENCY, error_rate=0.8, error_status=503, error_retry_after=1
            )
        phase += 1
        time.sleep(1)
    sandbox.set_faults(latency=API_LATENCY)


def test_sync_all_rides_out_a_storm_of_503_and_429(
    drill_sandbox: Sandbox, start_process: StartProcess, report: Any
) -> None:
    remote_accounts(drill_sandbox, "sync-storm", ACCOUNTS)
    start_process("worker")

    clock = Clock()
    tasks.sync_all_accounts.apply_async()
    storm(drill_sandbox, seconds=10)
    run = wait_long(finished_run, timeout=180)
    took = clock()

    statuses = Counter(call.status for call in drill_sandbox.api_calls())
    report(
        f"503/429 storm: run {books(run) if run else 'NOT FINISHED'} after {took:.1f} s; "
        f"API answers {dict(sorted(statuses.items()))}"
    )
    assert run is not None, f"the run never finished: {SyncRun.objects.values()}"
    assert (run.accounts_synced, run.accounts_failed) == (ACCOUNTS, 0), run.failures
    assert unsynced() == 0
    assert statuses[429] and statuses[503]


def test_an_account_that_kills_its_worker_is_recorded_failed_and_the_run_finishes(
    drill_sandbox: Sandbox, start_process: StartProcess, report: Any
) -> None:
    accounts = remote_accounts(drill_sandbox, "sync-poison", ACCOUNTS)
    poison = accounts[17].partner_id
    worker = start_process("worker", BI_DRILL_POISON_PARTNER_ID=poison)

    clock = Clock()
    tasks.sync_all_accounts.apply_async()
    run = wait_long(finished_run, timeout=120)
    took = clock()

    report(
        f"poison account: run {books(run) if run else 'NOT FINISHED'} after {took:.1f} s; "
        f"{pool_kills(worker)} pool processes killed; failures "
        f"{run.failures if run else SyncRun.objects.values('failures').first()}"
    )
    assert run is not None, f"the run never finished: {SyncRun.objects.values()}"
    assert (run.accounts_synced, run.accounts_failed) == (ACCOUNTS - 1, 1), run.failures
    assert [failure["partner_id"] for failure in run.failures] == [poison]
    assert run.failures[0]["error"]
    assert set(
        Account.objects.filter(last_synced_at__isnull=True).values_list("partner_id", flat=True)
    ) == {poison}
    assert worker.alive


def test_a_pool_process_killed_mid_run_loses_no_account(
    drill_sandbox: Sandbox, start_process: StartProcess, celery_app: Any, report: Any
) -> None:
    """SIGKILL a pool process 2 s into "sync all": within 60 s every account is synced and
    the run closed with exact books; a new "sync all" right after it runs to the end."""
    remote_accounts(drill_sandbox, "sync-kill", ACCOUNTS)
    worker = start_process("worker")

    tasks.sync_all_accounts.apply_async()
    time.sleep(2)
    pid, task = kill_pool_child(worker, celery_app, "biginterview.sync_account")
    clock = Clock()

    def recovered() -> SyncRun | None:
        run = finished_run()
        return run if run is not None and unsynced() == 0 else None

    run = wait_long(recovered, timeout=60)
    took = clock()
    first = run or SyncRun.objects.order_by("pk").first()
    report(
        f"kill mid-run: pool process {pid} ({task or 'idle'}) killed 2 s in; "
        f"{ACCOUNTS - unsynced()}/{ACCOUNTS} accounts synced, run "
        f"{books(first) if first else 'missing'}, "
        f"{'finished' if run else 'NOT FINISHED'} {took:.1f} s after the kill"
    )
    assert run is not None, f"{unsynced()} accounts unsynced; runs {SyncRun.objects.values()}"
    assert (run.accounts_synced, run.accounts_failed, run.accounts_lost) == (ACCOUNTS, 0, 0)

    clock = Clock()
    tasks.sync_all_accounts.apply_async()
    second = wait_long(lambda: finished_run(after=run.pk), timeout=60)
    report(f"kill mid-run: the next run {books(second) if second else 'NOT FINISHED'} "
           f"in {clock():.1f} s")  # fmt: skip
    assert second is not None, f"the next run did not finish: {SyncRun.objects.values()}"
    assert (second.accounts_synced, second.accounts_failed) == (ACCOUNTS, 0)
