"""The admin's "Big Interview status" page: who may see it, what it shows, what it costs
in queries, the connection test against the sandbox, and that no secret ever shows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_biginterview import status
from django_biginterview.models import WebhookEvent
from django_biginterview.testing.factories import (
    AccountFactory,
    SyncRunFactory,
    UserFactory,
    WebhookEventFactory,
)
from tests.support.app_settings import set_app_settings
from tests.support.procfile import free_port
from tests.support.status import healthy, staff, use_own_store

pytestmark = pytest.mark.django_db

STATUS = reverse("admin:biginterview_status")
APP_INDEX = reverse("admin:app_list", args=["biginterview"])
EVENTS = reverse("admin:biginterview_webhookevent_changelist")
HEALTH_TOKEN = "health-token-1f0e3a5c9b7d4e2f8a6c0b1d3e5f7a9c"
Status = WebhookEvent.Status


@pytest.fixture(autouse=True)
def own_store(settings: Any) -> None:
    use_own_store(settings)
    set_app_settings(settings, HEALTH_TOKEN=HEALTH_TOKEN)


@pytest.fixture
def operator() -> Client:
    return staff("view_syncrun", "view_webhookevent")


def secrets(settings: Any) -> list[str]:
    config = settings.BIGINTERVIEW
    return [s for s in (str(config["API_KEY"] or ""), *config["WEBHOOK_KEYS"], HEALTH_TOKEN) if s]


def assert_no_secret(html: str, settings: Any) -> None:
    for secret in secrets(settings):
        assert secret not in html


# --- Who may see it ------------------------------------------------------------------------


def test_only_staff_who_may_view_sync_runs_see_it() -> None:
    anonymous = Client().get(STATUS)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous["Location"]
    not_staff = Client()
    not_staff.force_login(UserFactory(username="member"))
    assert not_staff.get(STATUS).status_code == 302
    assert staff("view_account", username="support").get(STATUS).status_code == 403
    assert staff("view_syncrun").get(STATUS).status_code == 200
    assert staff("change_syncrun", username="runner").get(STATUS).status_code == 200


def test_the_app_index_links_it_for_those_who_may_see_it(operator: Client) -> None:
    link = f'href="{STATUS}"'
    assert link in operator.get(APP_INDEX).content.decode()
    support = staff("view_account", username="support").get(APP_INDEX)
    assert support.status_code == 200 and link not in support.content.decode()


def test_the_sync_runs_list_links_it(operator: Client) -> None:
    html = operator.get(reverse("admin:biginterview_syncrun_changelist")).content.decode()
    assert f'href="{STATUS}"' in html


def test_it_is_read_only_but_for_the_connection_test(operator: Client) -> None:
    assert operator.put(STATUS).status_code == 405
    assert operator.delete(STATUS).status_code == 405


def test_the_connection_test_is_csrf_protected(settings: Any) -> None:
    user = UserFactory(username="csrf", is_staff=True, is_superuser=True)
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(STATUS).status_code == 403


# --- What it shows ------------------------------------------------------------------------


def test_it_shows_configuration_problems_with_id_message_and_hint(
    operator: Client, settings: Any
) -> None:
    set_app_settings(settings, API_KEY="Bearer 935d85189822bf96c28c4fa79d3d8f31")
    healthy()

    html = operator.get(STATUS).content.decode()

    assert "biginterview.E004" in html
    assert "API_KEY&#x27;] is malformed" in html  # the message
    assert "without &#x27;Bearer&#x27;" in html  # the hint
    assert "configuration_error" in html  # and it needs a person
    assert "935d85189822bf96c28c4fa79d3d8f31" not in html
    assert_no_secret(html, settings)


def test_it_shows_webhooks_the_last_run_and_the_worker(operator: Client, settings: Any) -> None:
    now = timezone.now()
    status.note_worker_alive(now - timedelta(minutes=2))
    run = SyncRunFactory(
        started_at=now - timedelta(minutes=30),
        finished_at=now - timedelta(minutes=30) + timedelta(seconds=75.5),
        accounts_total=12,
        accounts_synced=9,
        accounts_failed=2,
        accounts_skipped=1,
        failures=[
            {"partner_id": "p-<gone>", "error": "NotFound: HTTP 404"},
            {"partner_id": None, "error": "Fan-out stopped: OperationalError"},
        ],
    )
    WebhookEventFactory.create_batch(2, status=Status.PENDING)
    WebhookEventFactory.create_batch(3, status=Status.FAILED, attempts=6)
    WebhookEventFactory(status=Status.PROCESSED, received_at=now - timedelta(minutes=7))

    response = operator.get(STATUS)
    html = response.content.decode()

    assert response.status_code == 200
    assert "<title>Big Interview status" in html
    assert f'<a href="{EVENTS}?status__exact=pending">2</a>' in html
    assert f'<a href="{EVENTS}?status__exact=failed">3</a>' in html
    failed = operator.get(f"{EVENTS}?status__exact=failed")
    assert failed.status_code == 200 and failed.context["cl"].result_count == 3
    assert "3 recent with no retry left" in html and "events_failed" in html
    run_url = reverse("admin:biginterview_syncrun_change", args=[run.pk])
    assert f'<a href="{run_url}">#{run.pk}</a>, finished' in html
    assert "75.5 s" in html
    assert "12 in all: 9 synced, 2 failed, 1 skipped, 0 lost" in html
    assert "<code>p-&lt;gone&gt;</code>: NotFound: HTTP 404" in html
    assert "Fan-out stopped: OperationalError" in html
    assert "2\xa0minutes ago" in html  # the worker's last sign of life
    assert "none in the last" not in html
    assert_no_secret(html, settings)


def test_without_the_events_permission_the_counts_are_not_links() -> None:
    WebhookEventFactory(status=Status.PENDING)
    html = staff("view_syncrun").get(STATUS).content.decode()
    assert EVENTS not in html
    assert "events_failed" not in html


def test_an_empty_install_says_what_is_missing(operator: Client) -> None:
    html = operator.get(STATUS).content.decode()
    assert "No sync run has started yet." in html
    assert "none in the last 1 week" in html
    assert "worker_silent" in html and "sync_stale" in html


def test_a_healthy_install_needs_no_one(operator: Client) -> None:
    healthy()
    html = operator.get(STATUS).content.decode()
    assert "Nothing: the health endpoint answers 200." in html


def test_a_warning_is_listed_without_needing_a_person(operator: Client, settings: Any) -> None:
    healthy()
    set_app_settings(settings, WEBHOOK_KEY=["typo"])

    html = operator.get(STATUS).content.decode()

    assert "<code>biginterview.W011</code> (warning)" in html
    assert "has unknown keys: WEBHOOK_KEY." in html
    assert "Nothing: the health endpoint answers 200." in html


def test_the_page_costs_the_same_queries_on_more_data(operator: Client) -> None:
    healthy()
    with CaptureQueriesContext(connection) as few:
        assert operator.get(STATUS).status_code == 200
    now = timezone.now()
    for n in range(25):
        SyncRunFactory(
            started_at=now - timedelta(hours=n + 1),
            finished_at=now - timedelta(hours=n),
            failures=[{"partner_id": f"p-{n}", "error": "boom"}] * 8,
            accounts_failed=8,
        )
        WebhookEventFactory(status=[Status.PENDING, Status.FAILED, Status.PROCESSED][n % 3])
        AccountFactory()
    with CaptureQueriesContext(connection) as many:
        assert operator.get(STATUS).status_code == 200
    assert len(many) == len(few)


# --- Connection test -------------------------------------------------------------------------


def test_the_sandbox_accepts_the_configured_key(
    operator: Client, biginterview_sandbox: Any, settings: Any
) -> None:
    response = operator.post(STATUS, follow=True)

    assert response.redirect_chain == [(STATUS, 302)]
    html = response.content.decode()
    assert "Big Interview accepted the API key." in html
    [call] = biginterview_sandbox.api_calls(path_prefix="/api/users/")
    assert call.path == f"/api/users/{status.PROBE_PARTNER_ID}/tracks"
    assert_no_secret(html, settings)


def test_a_key_the_sandbox_does_not_know_is_refused(
    operator: Client, biginterview_sandbox_factory: Any, settings: Any
) -> None:
    biginterview_sandbox_factory(api_keys=["another-key-00000000000000000000"])

    html = operator.post(STATUS, follow=True).content.decode()

    assert "Big Interview refused the API key (HTTP 401)." in html
    assert_no_secret(html, settings)


def test_a_service_that_does_not_answer_is_unreachable(operator: Client, settings: Any) -> None:
    set_app_settings(settings, BASE_URL=f"http://127.0.0.1:{free_port()}")

    html = operator.post(STATUS, follow=True).content.decode()

    assert "Big Interview could not be reached" in html
    assert_no_secret(html, settings)


def test_a_missing_key_is_reported_without_a_call(operator: Client, settings: Any) -> None:
    set_app_settings(settings, API_KEY="")
    html = operator.post(STATUS, follow=True).content.decode()
    assert "Not configured: BIGINTERVIEW[&#x27;API_KEY&#x27;] is not set." in html
