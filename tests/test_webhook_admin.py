"""The admin's webhook events page and ``manage.py biginterview_webhooks``: both replay
through ``webhook_processing.replay_events``."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.core.management import CommandError, call_command
from django.urls import reverse
from django.utils import timezone

from django_biginterview import mirror, tasks
from django_biginterview.models import Interview, WebhookEvent
from django_biginterview.testing.factories import AccountFactory, UserFactory
from tests.support.webhooks import body_of, sandbox_history

Status = WebhookEvent.Status


@pytest.fixture(scope="module")
def history() -> list[dict[str, Any]]:
    return sandbox_history(partner_id="abc123", updates=1, delete=False)


@pytest.fixture
def no_sync(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    scheduled: list[int] = []
    monkeypatch.setattr(tasks, "schedule_account_sync", scheduled.append)
    return scheduled


def stored_event(notification: dict[str, Any], **fields: Any) -> WebhookEvent:
    webhook = notification["webhook"]
    return WebhookEvent.objects.create(
        remote_id=webhook["id"],
        event_name=webhook["event_name"],
        partner_id=webhook["partner_id"],
        api_type=webhook["api_type"] or "",
        api_id=str(webhook["api_id"]),
        payload=json.loads(body_of(notification)),
        **fields,
    )


@pytest.fixture
def ignored_event(db: None, history: list[dict[str, Any]]) -> WebhookEvent:
    """Arrived before its account existed; the account exists now."""
    return stored_event(history[0], status=Status.IGNORED, reason="no account for partner_id")


@pytest.fixture
def staff_client(db: None, client: Any) -> Any:
    user = UserFactory(username="operator", is_staff=True)
    user.user_permissions.add(
        Permission.objects.get(codename="view_webhookevent"),
        Permission.objects.get(codename="change_webhookevent"),
    )
    client.force_login(user)
    return client


# --- Admin -------------------------------------------------------------------------------


def test_webhook_event_admin_is_registered_with_its_action() -> None:
    model_admin = admin.site._registry[WebhookEvent]
    assert "process_again" in model_admin.actions
    assert model_admin.date_hierarchy == "received_at"
    assert {"status", "event_name"} <= set(model_admin.list_filter)


def test_changelist_filters_and_searches(staff_client: Any, ignored_event: WebhookEvent) -> None:
    url = reverse("admin:biginterview_webhookevent_changelist")
    response = staff_client.get(url, {"status__exact": "ignored"})
    assert response.status_code == 200
    assert ignored_event.remote_id in response.text
    assert ignored_event.remote_id not in staff_client.get(url, {"status__exact": "failed"}).text
    assert ignored_event.remote_id in staff_client.get(url, {"q": "abc123"}).text
    assert ignored_event.remote_id in staff_client.get(url, {"q": ignored_event.remote_id}).text
    assert ignored_event.remote_id not in staff_client.get(url, {"q": "someone-else"}).text


def test_detail_page_pretty_prints_the_escaped_payload_read_only(
    staff_client: Any, history: list[dict[str, Any]]
) -> None:
    notification = json.loads(json.dumps(history[0]))
    notification["webhook"]["api_object"]["title"] = "<script>alert(1)</script>"
    event = stored_event(notification)
    url = reverse("admin:biginterview_webhookevent_change", args=[event.pk])
    response = staff_client.get(url)
    assert response.status_code == 200
    html = response.text
    assert "<pre>{\n  &quot;webhook&quot;: {\n" in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "<script>alert(1)</script>" not in html
    assert 'name="_save"' not in html  # read-only
    for key in [*tasks.app_settings.WEBHOOK_KEYS, tasks.app_settings.API_KEY]:
        assert key not in html


def test_process_again_action_replays_through_the_changelist(
    staff_client: Any, ignored_event: WebhookEvent, no_sync: list[int]
) -> None:
    account = AccountFactory(partner_id="abc123")
    url = reverse("admin:biginterview_webhookevent_changelist")
    response = staff_client.post(
        url,
        {"action": "process_again", "_selected_action": [ignored_event.pk], "index": 0},
        follow=True,
    )
    assert response.status_code == 200
    ignored_event.refresh_from_db()
    assert ignored_event.status == Status.PROCESSED
    assert Interview.objects.filter(account=account).count() == 1
    assert "1 event(s): 1 processed" in response.text
    assert no_sync == [account.pk]


def test_process_again_reports_failures(
    staff_client: Any,
    ignored_event: WebhookEvent,
    monkeypatch: pytest.MonkeyPatch,
    no_sync: list[int],
) -> None:
    AccountFactory(partner_id="abc123")

    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("still broken")

    monkeypatch.setattr(mirror, "upsert_interviews", fail)
    response = staff_client.post(
        reverse("admin:biginterview_webhookevent_changelist"),
        {"action": "process_again", "_selected_action": [ignored_event.pk], "index": 0},
        follow=True,
    )
    assert "1 failed" in response.text
    assert "RuntimeError: still broken" in response.text
    ignored_event.refresh_from_db()
    assert ignored_event.status == Status.FAILED


def test_process_again_needs_the_change_permission(
    client: Any, ignored_event: WebhookEvent
) -> None:
    viewer = UserFactory(username="viewer", is_staff=True)
    viewer.user_permissions.add(Permission.objects.get(codename="view_webhookevent"))
    client.force_login(viewer)
    url = reverse("admin:biginterview_webhookevent_changelist")
    assert "process_again" not in client.get(url).text
    client.post(url, {"action": "process_again", "_selected_action": [ignored_event.pk]})
    ignored_event.refresh_from_db()
    assert ignored_event.status == Status.IGNORED


# --- Command -----------------------------------------------------------------------------


def run(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("biginterview_webhooks", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_status_without_replay_lists(ignored_event: WebhookEvent) -> None:
    out, _ = run("--status", "ignored")
    assert ignored_event.remote_id in out
    assert "no account for partner_id" in out
    assert "1 event(s) match" in out
    out, _ = run("--status", "failed")
    assert ignored_event.remote_id not in out


def test_replay_by_status(ignored_event: WebhookEvent, no_sync: list[int]) -> None:
    account = AccountFactory(partner_id="abc123")
    out, _ = run("--replay", "--status", "ignored")
    assert "Replayed 1 event(s): 1 processed" in out
    ignored_event.refresh_from_db()
    assert ignored_event.status == Status.PROCESSED
    assert no_sync == [account.pk]


def test_replay_by_notification_id_and_since(
    db: None, history: list[dict[str, Any]], no_sync: list[int]
) -> None:
    AccountFactory(partner_id="abc123")
    old = stored_event(
        history[0], status=Status.FAILED, received_at=timezone.now() - timedelta(days=3)
    )
    new = stored_event(history[1], status=Status.FAILED)
    out, _ = run("--replay", "--status", "failed", "--since", "1d")
    assert "Replayed 1 event(s): 1 processed" in out
    old.refresh_from_db()
    assert old.status == Status.FAILED
    out, _ = run("--replay", "--id", old.remote_id)
    assert "1 processed" in out
    old.refresh_from_db()
    new.refresh_from_db()
    assert (old.status, new.status) == (Status.PROCESSED, Status.PROCESSED)


def test_replay_exits_non_zero_when_something_failed(
    ignored_event: WebhookEvent, monkeypatch: pytest.MonkeyPatch, no_sync: list[int]
) -> None:
    AccountFactory(partner_id="abc123")

    def fail(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("still broken")

    monkeypatch.setattr(mirror, "upsert_interviews", fail)
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="1 event"):
        call_command(
            "biginterview_webhooks", "--replay", "--id", ignored_event.remote_id,
            stdout=out, stderr=err,
        )  # fmt: skip
    assert "still broken" in err.getvalue()
    assert "1 failed" in out.getvalue()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replay"], "needs --status or --id"),
        (["--replay", "--id", "nope"], "No webhook event with notification id: nope"),
        (["--since", "last tuesday"], "--since"),
    ],
)
def test_command_refuses_unclear_requests(db: None, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=message):
        run(*args)
