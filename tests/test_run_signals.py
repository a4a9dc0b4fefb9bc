"""``sync_run_finished`` and the run's ERROR line: sent once when a "sync all" run ends,
complete or closed as lost, however often its last report or the close is repeated."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from django_biginterview import coordination, sync_runs, tasks
from django_biginterview.models import Account, SyncRun
from django_biginterview.signals import sync_run_finished
from django_biginterview.sync import SyncResult
from django_biginterview.testing.factories import AccountFactory
from tests.support.sandbox import remote_account, sandbox_client
from tests.support.signals import capture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


def open_run(total: int) -> SyncRun:
    run = sync_runs.begin()
    assert run is not None
    sync_runs.close_fan_out(run.pk, dispatched=total, skipped=0)
    return run


def lapse_lease(run: SyncRun) -> None:
    """What the lease's TTL does once nothing renews it (the run's workers died)."""
    coordination.release_lock(sync_runs.LEASE, sync_runs.lease_token(run.pk))


def report(run_id: int, results: list[SyncResult]) -> None:
    """What every sync task does with its results: count them, finish the run if complete."""
    sync_runs.record_results(run_id, results)
    sync_runs.finish_if_complete(run_id)


def records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == level]


def test_a_clean_run_sends_ok_once_and_logs_no_error(
    caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    run = open_run(total=2)
    report(run.pk, [SyncResult(1, "a", "synced")])
    gone = 10**9  # an account deleted since the fan-out: the task counts it as skipped
    with capture(sync_run_finished) as received, django_capture_on_commit_callbacks(execute=True):
        tasks.sync_account(gone, run_id=run.pk)
        tasks.sync_account(gone, run_id=run.pk)  # its message, delivered again
    assert [(kw["run"].pk, kw["ok"], kw["sender"]) for kw in received] == [(run.pk, True, SyncRun)]
    assert received[0]["run"].state == "finished"
    assert records(caplog, logging.ERROR) == []
    assert any(
        f"run #{run.pk}: 1 synced, 0 failed, 1 skipped" in m for m in records(caplog, logging.INFO)
    )


def test_a_run_with_failures_sends_not_ok_once_and_logs_an_error_with_its_counts(
    caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    run = open_run(total=3)
    with capture(sync_run_finished) as received, django_capture_on_commit_callbacks(execute=True):
        report(run.pk, [SyncResult(1, "a", "synced")])
        assert received == []  # not complete yet
        last = [SyncResult(2, "b", "failed", error="NotFound: 404"), SyncResult(3, "c", "synced")]
        report(run.pk, last)
        report(run.pk, last)  # a retry beside the redelivered group
        assert sync_runs.finish_if_complete(run.pk) is None
    assert len(received) == 1
    sent = received[0]
    assert sent["ok"] is False
    assert (sent["run"].pk, sent["run"].accounts_failed, sent["run"].state) == (
        run.pk,
        1,
        "finished",
    )
    [line] = records(caplog, logging.ERROR)
    assert f"Big Interview sync run #{run.pk}: 2 synced, 1 failed, 0 skipped" in line
    assert "b: NotFound: 404" in line


def test_a_lost_run_sends_not_ok_once_however_often_it_is_closed(
    caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    run = open_run(total=3)
    sync_runs.record_results(run.pk, [SyncResult(1, "a", "synced")])
    lapse_lease(run)
    with capture(sync_run_finished) as received, django_capture_on_commit_callbacks(execute=True):
        assert [r.pk for r in sync_runs.close_lost_runs()] == [run.pk]
        assert sync_runs.close_lost_runs() == []  # the next minute's close, or a new run's
        assert tasks.close_lost_sync_runs() == 0
        # A late report moves its account from lost to its outcome, without a new signal.
        report(run.pk, [SyncResult(2, "b", "synced")])
    assert len(received) == 1
    sent = received[0]
    assert sent["ok"] is False and sent["run"].pk == run.pk
    assert (sent["run"].state, sent["run"].accounts_lost) == ("lost", 2)
    [line] = records(caplog, logging.ERROR)
    assert f"sync run #{run.pk}: 1 synced, 0 failed, 0 skipped" in line
    assert "closed as lost, 2 account(s) lost" in line
    run.refresh_from_db()
    assert (run.accounts_synced, run.accounts_lost) == (2, 1)


def test_a_complete_run_nobody_finished_is_closed_once_as_finished(
    caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    """Every account was counted but the worker died before finishing the run."""
    run = open_run(total=1)
    sync_runs.record_results(run.pk, [SyncResult(1, "a", "synced")])
    lapse_lease(run)
    with capture(sync_run_finished) as received, django_capture_on_commit_callbacks(execute=True):
        sync_runs.close_lost_runs()
        sync_runs.close_lost_runs()
        assert sync_runs.finish_if_complete(run.pk) is None
    assert [(kw["run"].state, kw["ok"]) for kw in received] == [("finished", True)]
    assert records(caplog, logging.ERROR) == []


def test_the_signal_waits_for_the_commit(django_capture_on_commit_callbacks: Any) -> None:
    run = open_run(total=1)
    with capture(sync_run_finished) as received:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            report(run.pk, [SyncResult(1, "a", "failed", error="boom")])
        assert received == [] and len(callbacks) == 1
        callbacks[0]()
    assert [kw["run"].pk for kw in received] == [run.pk]


def test_an_inline_run_against_the_sandbox_alerts_without_a_secret(
    biginterview_sandbox: Any,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Any,
) -> None:
    sandbox = biginterview_sandbox
    remote_account(sandbox, "alert-1", interviews=1)
    token = "f" * 64
    AccountFactory(partner_id="alert-ghost", sso_token=token)  # unknown there: 404
    with capture(sync_run_finished) as received, django_capture_on_commit_callbacks(execute=True):
        run = sync_runs.sync_all_inline(sandbox_client(sandbox), chunk_size=10)
    assert run is not None
    assert [(kw["run"].pk, kw["ok"]) for kw in received] == [(run.pk, False)]
    [line] = records(caplog, logging.ERROR)
    assert f"sync run #{run.pk}: 1 synced, 1 failed, 0 skipped" in line
    assert "alert-ghost" in line
    for secret in (sandbox.api_key, settings.BIGINTERVIEW["API_KEY"], token):
        assert secret not in caplog.text
    assert Account.objects.filter(
        partner_id="alert-ghost", remote_missing_at__isnull=False
    ).exists()
