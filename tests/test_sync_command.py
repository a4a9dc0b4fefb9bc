"""``manage.py biginterview_sync`` against the sandbox over real HTTP."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command

from django_biginterview import coordination, sync_runs, tasks
from django_biginterview.models import Interview, SyncRun
from django_biginterview.testing.factories import AccountFactory, UserFactory
from tests.support.sandbox import remote_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def sandbox(biginterview_sandbox, settings, clean_redis):
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "RATE_LIMIT": 0}
    return biginterview_sandbox


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(*args: str, stdout: io.StringIO | None = None) -> str:
    out = stdout or io.StringIO()
    call_command("biginterview_sync", *args, stdout=out)
    return out.getvalue()


def test_one_account_by_partner_id_or_username(sandbox) -> None:
    remote_account(sandbox, "cmd-1", interviews=2, user=UserFactory(username="carol"))
    remote_account(sandbox, "cmd-2", interviews=1)

    by_user = run("--user", "carol")
    by_id = run("--partner-id", "cmd-2")

    assert "cmd-1: synced (2 new, 0 updated, 0 deleted interviews; tracks changed)" in by_user
    assert "cmd-2: synced (1 new" in by_id
    assert Interview.objects.count() == 3


def test_a_failing_account_exits_non_zero(sandbox) -> None:
    AccountFactory(partner_id="cmd-ghost")
    out = io.StringIO()
    with pytest.raises(CommandError, match="1 of 1"):
        call_command("biginterview_sync", "--partner-id", "cmd-ghost", stdout=out)
    assert "cmd-ghost: failed:" in out.getvalue() and "404" in out.getvalue()


def test_unknown_targets_are_a_clear_error(sandbox) -> None:
    with pytest.raises(CommandError, match="nobody"):
        run("--user", "nobody")
    with pytest.raises(CommandError, match="no-such"):
        run("--partner-id", "no-such")


def test_all_prints_plain_lines_and_a_summary_and_fails_on_failure(sandbox) -> None:
    remote_account(sandbox, "all-a", interviews=1)
    remote_account(sandbox, "all-b")
    AccountFactory(partner_id="all-ghost")
    out = io.StringIO()

    with pytest.raises(CommandError, match="1 account"):
        call_command("biginterview_sync", "--all", stdout=out)

    text = out.getvalue()
    assert "\r" not in text
    assert "all-a: synced" in text and "all-ghost: failed" in text
    assert "2 synced, 1 failed, 0 skipped" in text
    run_row = SyncRun.objects.get()
    assert run_row.finished_at is not None and run_row.accounts_failed == 1
    assert coordination.lock_holder(sync_runs.LEASE) is None


def test_all_shows_a_progress_bar_on_a_terminal(sandbox) -> None:
    for n in range(3):
        remote_account(sandbox, f"tty-{n}")
    text = run("--all", stdout=Terminal())
    assert "\r[" in text and "3/3 (0 failed)" in text
    assert "3 synced, 0 failed, 0 skipped" in text


def test_all_does_nothing_while_another_run_holds_the_lock(sandbox) -> None:
    remote_account(sandbox, "locked-1")
    coordination.acquire_lock(sync_runs.LEASE, "run:other", timedelta(minutes=1))
    with pytest.raises(CommandError, match="Another sync"):
        run("--all")
    assert sandbox.api_calls() == []
    assert SyncRun.objects.count() == 0


def test_async_enqueues_instead_of_syncing(
    sandbox, monkeypatch, django_capture_on_commit_callbacks
):
    account = remote_account(sandbox, "async-1")
    sent: list[tuple[str, tuple]] = []
    monkeypatch.setattr(
        tasks.sync_account, "apply_async", lambda args, **kw: sent.append(("one", tuple(args)))
    )
    monkeypatch.setattr(
        tasks.sync_all_accounts, "apply_async", lambda *a, **kw: sent.append(("all", ()))
    )
    with django_capture_on_commit_callbacks(execute=True):
        run("--partner-id", "async-1", "--async")
    run("--all", "--async")

    assert sent == [("one", (account.pk,)), ("all", ())]
    assert sandbox.api_calls() == []


def test_runs_shows_a_run_closed_as_lost_once_its_lease_lapsed(sandbox) -> None:
    dead = sync_runs.begin()
    sync_runs.close_fan_out(dead.pk, dispatched=3, skipped=0)
    coordination.release_lock(sync_runs.LEASE, sync_runs.lease_token(dead.pk))  # lapsed

    text = run("--runs")

    assert f"[lost] Big Interview sync run #{dead.pk}: 0 synced" in text
    assert "3 account(s) lost" in text
