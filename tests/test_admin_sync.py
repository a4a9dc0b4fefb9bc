"""Admin of accounts, tracks, interviews and sync runs, through the test client as a
superuser: what the pages show, what they never show, and what they cost in queries."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_biginterview import tasks
from django_biginterview.models import Account, Interview, SyncRun, Track, WebhookEvent
from django_biginterview.testing.factories import (
    AccountFactory,
    AccountWithTokenFactory,
    InterviewFactory,
    SyncRunFactory,
    TrackFactory,
    TrackStepFactory,
    UserFactory,
    WebhookEventFactory,
)
from tests.support.messages import record_messages

pytestmark = pytest.mark.django_db

ACCOUNTS = reverse("admin:biginterview_account_changelist")
INTERVIEWS = reverse("admin:biginterview_interview_changelist")
RUNS = reverse("admin:biginterview_syncrun_changelist")


@pytest.fixture
def admin(client):
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def account_with_progress(**kwargs) -> Account:
    account = AccountWithTokenFactory(**kwargs)
    track = TrackFactory(account=account, title="Mastery <Track>", progress="0.5", position=0)
    TrackStepFactory(track=track, step=1, title="Fundamentals", completed=True)
    TrackStepFactory(track=track, step=2, title="Why <here>?")
    InterviewFactory.create_batch(2, account=account)
    InterviewFactory(account=account, deleted_at=timezone.now())
    return account


def test_account_list_shows_escaped_progress_bars_and_counts(admin) -> None:
    account = account_with_progress(partner_id="ada-admin")
    Account.objects.filter(pk=account.pk).update(
        last_sync_error="Big Interview refused list_tracks (HTTP 404)",
        remote_missing_at=timezone.now(),
    )

    html = admin.get(ACCOUNTS).content.decode()

    assert '<progress max="100" value="50">' in html
    assert "Mastery &lt;Track&gt;" in html and "Mastery <Track>" not in html
    assert '<td class="field-interview_count">2</td>' in html
    assert "HTTP 404" in html
    assert ">missing on Big Interview</span>" in html  # in the "last sync" column
    assert account.sso_token not in html


def test_account_list_query_count_does_not_grow(admin) -> None:
    account_with_progress()
    with CaptureQueriesContext(connection) as one:
        assert admin.get(ACCOUNTS).status_code == 200
    for _ in range(20):
        account_with_progress()
    with CaptureQueriesContext(connection) as many:
        assert admin.get(ACCOUNTS).status_code == 200
    assert len(many) == len(one)


def test_account_search_by_username_email_and_partner_id(admin) -> None:
    alice = AccountFactory(partner_id="p-alice", user=UserFactory(username="alice"))
    AccountFactory(partner_id="p-bob", user=UserFactory(username="bob", email="bob@corp.test"))

    by_name = admin.get(ACCOUNTS, {"q": "alice"}).content.decode()
    by_email = admin.get(ACCOUNTS, {"q": "bob@corp.test"}).content.decode()
    by_partner = admin.get(ACCOUNTS, {"q": "p-bob"}).content.decode()

    assert "p-alice" in by_name and "p-bob" not in by_name
    assert "p-bob" in by_email and "p-alice" not in by_email
    assert "p-bob" in by_partner and alice.partner_id not in by_partner


def test_account_filters(admin) -> None:
    AccountFactory(partner_id="p-missing", remote_missing_at=timezone.now())
    AccountFactory(partner_id="p-failing", last_sync_error="boom")
    AccountFactory(partner_id="p-fine", last_synced_at=timezone.now())

    missing = admin.get(ACCOUNTS, {"missing": "yes"}).content.decode()
    failing = admin.get(ACCOUNTS, {"sync": "failed"}).content.decode()
    fine = admin.get(ACCOUNTS, {"sync": "ok"}).content.decode()

    assert "p-missing" in missing and "p-fine" not in missing
    assert "p-failing" in failing and "p-fine" not in failing
    assert "p-fine" in fine and "p-failing" not in fine


def test_account_page_shows_tracks_steps_interviews_read_only_and_no_token(admin) -> None:
    account = account_with_progress()
    url = reverse("admin:biginterview_account_change", args=[account.pk])

    response = admin.get(url)
    html = response.content.decode()

    assert response.status_code == 200
    assert account.sso_token not in html
    assert "Why &lt;here&gt;?" in html and "Fundamentals" in html
    assert "Recent interviews" in html
    assert 'name="partner_id"' not in html  # read-only: no input
    assert admin.post(url, {"partner_id": "changed"}).status_code == 403
    account.refresh_from_db()
    assert account.partner_id != "changed"


def test_recent_interviews_inline_is_capped(admin) -> None:
    account = AccountFactory()
    now = timezone.now()
    for n in range(15):
        InterviewFactory(
            account=account, title=f"Take {n:02}", remote_updated_at=now - timedelta(minutes=n)
        )
    html = admin.get(
        reverse("admin:biginterview_account_change", args=[account.pk])
    ).content.decode()
    assert "Take 00" in html and "Take 09" in html
    assert "Take 10" not in html


def test_sync_now_action_enqueues_the_sync_task(
    admin, monkeypatch, django_capture_on_commit_callbacks, clean_redis
) -> None:
    sent = record_messages(monkeypatch, tasks.sync_account)
    accounts = AccountFactory.create_batch(2)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin.post(
            ACCOUNTS,
            {"action": "sync_now", "_selected_action": [a.pk for a in accounts]},
            follow=True,
        )
    assert sorted(sent.args) == sorted((a.pk,) for a in accounts)
    assert "Sync of 2 accounts scheduled." in response.content.decode()


def test_interview_list_filters_search_and_account_link(admin) -> None:
    account = AccountFactory(partner_id="p-int")
    InterviewFactory(account=account, title="Done one", completed=True, category="Cat A")
    InterviewFactory(account=account, title="Gone one", deleted_at=timezone.now())
    InterviewFactory(title="Elsewhere", category="Cat B")

    completed = admin.get(INTERVIEWS, {"completed__exact": "1"}).content.decode()
    deleted = admin.get(INTERVIEWS, {"deleted": "yes"}).content.decode()
    category = admin.get(INTERVIEWS, {"category": "Cat B"}).content.decode()
    search = admin.get(INTERVIEWS, {"q": "p-int"}).content.decode()

    assert "Done one" in completed and "Gone one" not in completed
    assert "Gone one" in deleted and "Done one" not in deleted
    assert "Elsewhere" in category and "Done one" not in category
    assert "Done one" in search and "Elsewhere" not in search
    link = reverse("admin:biginterview_account_change", args=[account.pk])
    assert f'<a href="{link}">p-int</a>' in search


def test_interview_list_query_count_is_the_same_for_1_and_100_rows(admin) -> None:
    InterviewFactory()
    with CaptureQueriesContext(connection) as one:
        assert admin.get(INTERVIEWS).status_code == 200
    for _ in range(99):
        InterviewFactory()  # each on its own account
    with CaptureQueriesContext(connection) as hundred:
        html = admin.get(INTERVIEWS).content.decode()
    assert "100 interviews" in html
    assert len(hundred) == len(one)


def test_sync_run_list_shows_counts_duration_and_failures(admin) -> None:
    start = timezone.now()
    SyncRunFactory(
        started_at=start,
        finished_at=start + timedelta(seconds=12.5),
        accounts_total=5,
        accounts_synced=3,
        accounts_failed=1,
        accounts_skipped=1,
        failures=[{"partner_id": "p-<ghost>", "error": "HTTP 404"}],
    )
    html = admin.get(RUNS).content.decode()
    assert "12.5 s" in html
    assert "p-&lt;ghost&gt;: HTTP 404" in html
    assert '<td class="field-accounts_synced">3</td>' in html


def test_a_run_closed_as_lost_shows_its_state_lost_accounts_and_reason(admin) -> None:
    start = timezone.now()
    run = SyncRunFactory(
        started_at=start,
        finished_at=start + timedelta(minutes=6),
        accounts_total=40,
        accounts_synced=30,
        accounts_lost=10,
        lost_reason="No sign of life for 5 minutes: 10 account(s) were never reported.",
    )
    SyncRunFactory(started_at=start - timedelta(hours=1), finished_at=None)
    html = admin.get(RUNS).content.decode()
    assert "closed as lost" in html and "running" in html
    assert '<td class="field-accounts_lost">10</td>' in html
    detail = admin.get(reverse("admin:biginterview_syncrun_change", args=[run.pk]))
    assert "10 account(s) were never reported" in detail.content.decode()


@pytest.mark.parametrize("model", [Account, Interview, Track, SyncRun, WebhookEvent])
def test_mirrored_rows_cannot_be_deleted_in_the_admin(admin, model) -> None:
    """A deleted interview row (a tombstone included) would let a late webhook bring the
    interview back: the admin shows Big Interview's data, it never removes it."""
    TrackFactory(account=InterviewFactory(deleted_at=timezone.now()).account)
    SyncRunFactory()
    WebhookEventFactory()
    row = model.objects.first()
    opts = model._meta
    delete_url = reverse(f"admin:{opts.app_label}_{opts.model_name}_delete", args=[row.pk])
    assert admin.post(delete_url, {"post": "yes"}).status_code == 403
    changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
    response = admin.post(
        changelist, {"action": "delete_selected", "_selected_action": [row.pk], "post": "yes"}
    )
    assert response.status_code in (200, 302)
    assert model.objects.filter(pk=row.pk).exists()


def test_deleted_and_missing_filters(admin) -> None:
    gone = InterviewFactory(title="Gone", deleted_at=timezone.now())
    InterviewFactory(title="Kept", account=gone.account)
    missing = AccountFactory(partner_id="missing-one", remote_missing_at=timezone.now())

    deleted_page = admin.get(INTERVIEWS, {"deleted": "yes"}).content.decode()
    kept_page = admin.get(INTERVIEWS, {"deleted": "no"}).content.decode()
    assert "Gone" in deleted_page and "Kept" not in deleted_page
    assert "Kept" in kept_page and "Gone" not in kept_page

    missing_page = admin.get(ACCOUNTS, {"missing": "yes"}).content.decode()
    present_page = admin.get(ACCOUNTS, {"missing": "no"}).content.decode()
    assert missing.partner_id in missing_page and gone.account.partner_id not in missing_page
    assert gone.account.partner_id in present_page and missing.partner_id not in present_page
