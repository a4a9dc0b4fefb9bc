"""The sync runs list's "Sync all now": POST only, CSRF-protected, for those who may
change sync runs; it enqueues ``biginterview.sync_all_accounts``, says so when a run
holds the lease, and turns a broker outage into a message, not a 500."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from django_biginterview import sync_runs, tasks
from django_biginterview.models import SyncRun
from django_biginterview.testing.factories import AccountFactory, UserFactory
from tests.support.messages import record_messages
from tests.support.redis import PrivateRedis
from tests.support.status import staff, use_own_store

pytestmark = pytest.mark.django_db

SYNC_ALL = reverse("admin:biginterview_syncrun_sync_all")
RUNS = reverse("admin:biginterview_syncrun_changelist")
BUTTON = f'action="{SYNC_ALL}"'


@pytest.fixture(autouse=True)
def own_store(settings: Any) -> None:
    use_own_store(settings)


@pytest.fixture
def runner() -> Client:
    return staff("change_syncrun", username="runner")


def said(response: Any) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


def test_the_button_shows_for_those_who_may_change_sync_runs(runner: Client) -> None:
    assert BUTTON in runner.get(RUNS).content.decode()
    viewer = staff("view_syncrun", username="viewer").get(RUNS)
    assert viewer.status_code == 200 and BUTTON not in viewer.content.decode()


def test_only_a_post_from_staff_with_the_permission_starts_a_run(
    runner: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = record_messages(monkeypatch, tasks.sync_all_accounts)

    assert runner.get(SYNC_ALL).status_code == 405
    assert staff("view_syncrun", username="viewer").post(SYNC_ALL).status_code == 403
    anonymous = Client().post(SYNC_ALL)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    assert sent == []


def test_a_post_without_the_csrf_token_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    sent = record_messages(monkeypatch, tasks.sync_all_accounts)
    client = Client(enforce_csrf_checks=True)
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    assert client.post(SYNC_ALL).status_code == 403
    assert sent == []


def test_it_enqueues_the_task_and_the_run_shows_in_the_list(
    runner: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = record_messages(monkeypatch, tasks.sync_all_accounts)
    batches = record_messages(monkeypatch, tasks.sync_account_batch)
    account = AccountFactory()

    response = runner.post(SYNC_ALL)

    assert response.status_code == 302 and response["Location"] == RUNS
    assert len(sent) == 1 and sent[0].args == ()
    assert said(response) == [
        "Sync all started in the background: the run appears in this list as soon as a "
        "worker begins it."
    ]

    tasks.sync_all_accounts()  # what the worker does with the message

    run = SyncRun.objects.get()
    assert batches.args == [(run.pk, [account.pk])]
    html = runner.get(RUNS).content.decode()
    run_url = reverse("admin:biginterview_syncrun_change", args=[run.pk])
    assert f'href="{run_url}"' in html and "running" in html


def test_while_a_run_holds_the_lease_it_says_so_and_starts_nothing(
    runner: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    sent = record_messages(monkeypatch, tasks.sync_all_accounts)
    running = sync_runs.begin()
    assert running is not None

    response = runner.post(SYNC_ALL, follow=True)

    assert sent == []
    html = response.content.decode()
    run_url = reverse("admin:biginterview_syncrun_change", args=[running.pk])
    assert f'Nothing started: run <a href="{run_url}">#{running.pk}</a>' in html
    assert "still holds the lease" in html


def test_a_broker_outage_is_a_message_not_a_500(
    runner: Client, private_broker: PrivateRedis
) -> None:
    private_broker.kill()

    response = runner.post(SYNC_ALL)

    assert response.status_code == 302 and response["Location"] == RUNS
    assert said(response) == [
        "Nothing started: the task broker could not be reached. Try again once it is back "
        "(the worker's log says more)."
    ]
    assert not SyncRun.objects.exists()
