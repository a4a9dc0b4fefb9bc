"""Odd data from Big Interview through the sync, on the database under test (the suite
runs on PostgreSQL too, which stores no NUL character): it never blocks an account."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from django_biginterview import sync
from django_biginterview.models import Interview
from django_biginterview.testing.factories import AccountFactory
from tests.support.sandbox import sandbox_client

pytestmark = pytest.mark.django_db


def test_a_nul_in_an_interview_title_is_dropped_and_every_sync_succeeds(
    biginterview_sandbox: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """It used to fail every sync of the account with DataError on PostgreSQL."""
    sandbox = biginterview_sandbox
    sandbox.create_user("nul-1")
    started = sandbox.start_interview("nul-1", title="Top\x00 10 Questions")
    account = AccountFactory(partner_id="nul-1")
    client = sandbox_client(sandbox)

    with caplog.at_level(logging.WARNING, logger="django_biginterview"):
        first = sync.sync_account(account, client)
    sandbox.update_interview("nul-1", started["id"], completed=True)
    again = sync.sync_account(account, client)

    assert (first.outcome, again.outcome) == ("synced", "synced")
    interview = Interview.objects.get(account=account, remote_id=started["id"])
    assert interview.title == "Top 10 Questions"
    assert interview.raw["title"] == "Top 10 Questions"
    assert interview.completed is True
    account.refresh_from_db()
    assert account.last_sync_error == ""
    assert "list_interviews" in caplog.text and "interviews[0].title" in caplog.text
    assert "Top" not in caplog.text  # where, never what
