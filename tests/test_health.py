"""``health/``: JSON for uptime monitors, 503 while something needs a person, readable
with the ``HEALTH_TOKEN`` or by staff who may see the status, never showing a secret."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.core.cache import cache
from django.db import DatabaseError, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_biginterview import status, tasks
from django_biginterview.models import WebhookEvent
from django_biginterview.testing.factories import (
    AccountFactory,
    SyncRunFactory,
    WebhookEventFactory,
)
from tests.support.app_settings import set_app_settings
from tests.support.status import healthy, staff, use_own_store

pytestmark = pytest.mark.django_db

HEALTH = reverse("biginterview:health")
TOKEN = "health-token-7c1d9e0b4f2a4d55b8f3a6e1c0d2b9a8"
Status = WebhookEvent.Status


@pytest.fixture(autouse=True)
def own_store(settings: Any) -> None:
    use_own_store(settings)
    set_app_settings(settings, HEALTH_TOKEN=TOKEN)


def monitor(token: str = TOKEN) -> Client:
    """A client sending the token as a monitor does."""
    return Client(headers={"Authorization": f"Bearer {token}"})


def secrets(settings: Any) -> list[str]:
    """The keys of the test settings and the token (a test may have unset some)."""
    config = settings.BIGINTERVIEW
    return [s for s in (str(config["API_KEY"] or ""), *config["WEBHOOK_KEYS"], TOKEN) if s]


def assert_no_secret(response: Any, settings: Any) -> None:
    body = response.content.decode()
    for secret in secrets(settings):
        assert secret not in body
        assert secret not in str(response.headers)


# --- Who may read it ----------------------------------------------------------------------


def test_the_token_reads_the_report(settings: Any) -> None:
    healthy()

    response = monitor().get(HEALTH)

    assert response.status_code == 200
    assert response["Content-Type"] == "application/json"
    assert "no-cache" in response["Cache-Control"]
    document = response.json()
    assert document["status"] == "ok" and document["problems"] == []
    assert document["sync"]["last_run"]["state"] == "finished"
    assert document["worker"]["store_reachable"] is True
    assert_no_secret(response, settings)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"X-Health-Token": TOKEN},
    ],
    ids=["none", "wrong", "longer", "basic", "no-scheme", "other-header"],
)
def test_without_the_token_a_monitor_gets_401_and_nothing_else(
    settings: Any, headers: dict[str, str]
) -> None:
    healthy()
    WebhookEventFactory(status=Status.FAILED)

    response = Client(headers=headers).get(HEALTH)

    assert response.status_code == 401
    assert response["WWW-Authenticate"] == 'Bearer realm="biginterview-health"'
    assert set(response.json()) == {"error"}
    assert_no_secret(response, settings)


def test_no_token_configured_means_no_bearer_gets_in(settings: Any) -> None:
    set_app_settings(settings, HEALTH_TOKEN=None)
    healthy()
    assert monitor("").get(HEALTH).status_code == 401
    assert monitor("None").get(HEALTH).status_code == 401


def test_staff_who_may_see_the_status_read_it_without_the_token(settings: Any) -> None:
    set_app_settings(settings, HEALTH_TOKEN=None)
    healthy()

    assert staff("view_syncrun").get(HEALTH).status_code == 200
    assert staff("change_syncrun", username="runner").get(HEALTH).status_code == 200
    assert staff("view_account", username="support").get(HEALTH).status_code == 403
    assert Client().get(HEALTH).status_code == 401


def test_it_answers_get_and_head_only() -> None:
    healthy()
    assert monitor().head(HEALTH).status_code == 200
    assert monitor().post(HEALTH).status_code == 405


def test_it_works_under_login_required_middleware(settings: Any) -> None:
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
    ]
    healthy()
    assert monitor().get(HEALTH).status_code == 200
    assert Client().get(HEALTH).status_code == 401


# --- 200 or 503 ---------------------------------------------------------------------------


def problem_codes(response: Any) -> list[str]:
    return [problem["code"] for problem in response.json()["problems"]]


@pytest.mark.parametrize(
    ("keys", "code"),
    [
        ({"API_KEY": ""}, "keys_missing"),
        ({"WEBHOOK_KEYS": []}, "keys_missing"),
        ({"BASE_URL": None}, "keys_missing"),
        ({"API_KEY": "Bearer 935d85189822bf96c28c4fa79d3d8f31"}, "configuration_error"),
    ],
    ids=["api-key", "webhook-keys", "base-url", "malformed-key"],
)
def test_keys_not_configured_fail_it(settings: Any, keys: dict[str, Any], code: str) -> None:
    healthy()
    set_app_settings(settings, **keys)

    response = monitor().get(HEALTH)

    assert response.status_code == 503
    assert problem_codes(response) == [code]
    assert response.json()["status"] == "fail"
    assert_no_secret(response, settings)
    assert "935d85189822bf96c28c4fa79d3d8f31" not in response.content.decode()


def test_a_silent_worker_fails_it() -> None:
    now = timezone.now()
    healthy(now)
    status.note_worker_alive(now - timedelta(minutes=6))  # the limit is 5 minutes

    response = monitor().get(HEALTH)

    assert response.status_code == 503
    assert problem_codes(response) == ["worker_silent"]
    assert "6 minutes" in response.json()["problems"][0]["message"]


def test_a_worker_never_seen_fails_it() -> None:
    healthy()
    cache.clear()  # the note is gone (never written, or older than a week)

    response = monitor().get(HEALTH)

    assert response.status_code == 503
    assert problem_codes(response) == ["worker_silent"]
    assert response.json()["worker"]["last_seen_at"] is None


def test_the_webhook_sweep_is_the_workers_sign_of_life(settings: Any) -> None:
    """What a worker runs every minute under beat records the time the report reads."""
    SyncRunFactory(started_at=timezone.now(), finished_at=timezone.now(), accounts_total=0)
    assert monitor().get(HEALTH).status_code == 503

    tasks.sweep_webhook_events()

    response = monitor().get(HEALTH)
    assert response.status_code == 200
    seen = status.worker_last_seen()
    assert seen is not None and timezone.now() - seen < timedelta(seconds=30)


def test_an_unreadable_store_fails_it(settings: Any) -> None:
    healthy()
    set_app_settings(settings, REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens there

    response = monitor().get(HEALTH)

    assert response.status_code == 503
    assert problem_codes(response) == ["store_unreachable"]
    assert response.json()["worker"]["store_reachable"] is False


def test_an_event_failed_with_no_retry_left_recently_fails_it() -> None:
    healthy()
    WebhookEventFactory(status=Status.FAILED, attempts=6, last_error="boom")

    response = monitor().get(HEALTH)

    assert response.status_code == 503
    assert problem_codes(response) == ["events_failed"]
    webhooks = response.json()["webhooks"]
    assert (webhooks["pending"], webhooks["failed"]) == (0, 1)
    assert webhooks["failed_without_retry_recently"] == 1
    assert webhooks["last_received_at"] is not None


def test_failed_events_still_to_retry_or_past_the_window_do_not_fail_it() -> None:
    now = timezone.now()
    healthy(now)
    WebhookEventFactory(
        status=Status.FAILED, attempts=1, next_attempt_at=now + timedelta(minutes=1)
    )
    WebhookEventFactory(status=Status.FAILED, attempts=6, received_at=now - timedelta(days=2))
    WebhookEventFactory(status=Status.PENDING)

    response = monitor().get(HEALTH)

    assert response.status_code == 200
    webhooks = response.json()["webhooks"]
    assert (webhooks["pending"], webhooks["failed"]) == (1, 2)
    assert webhooks["failed_without_retry_recently"] == 0


def test_a_last_run_closed_as_lost_fails_it() -> None:
    now = timezone.now()
    status.note_worker_alive(now)
    SyncRunFactory(
        started_at=now - timedelta(minutes=10),
        finished_at=now - timedelta(minutes=4),
        accounts_total=10,
        accounts_synced=7,
        accounts_lost=3,
        lost_reason="No sign of life for 5 minutes: 3 account(s) were never reported.",
    )

    response = monitor().get(HEALTH)

    assert response.status_code == 503
    assert problem_codes(response) == ["sync_lost"]
    assert response.json()["sync"]["last_run"]["accounts_lost"] == 3


def test_a_last_run_too_old_or_none_fails_it_and_a_running_one_does_not(settings: Any) -> None:
    now = timezone.now()
    status.note_worker_alive(now)
    assert problem_codes(monitor().get(HEALTH)) == ["sync_stale"]  # no run ever

    old = SyncRunFactory(started_at=now - timedelta(days=1, minutes=1), finished_at=now)
    assert problem_codes(monitor().get(HEALTH)) == ["sync_stale"]

    old.finished_at = None  # the same run, still running (its lease is alive)
    old.save()
    assert monitor().get(HEALTH).status_code == 200


@pytest.mark.parametrize(
    "setting",
    ["HEALTH_WORKER_SILENT_AFTER", "HEALTH_FAILED_EVENTS_WINDOW", "HEALTH_SYNC_MAX_AGE"],
)
def test_a_threshold_of_zero_turns_its_check_off(settings: Any, setting: str) -> None:
    WebhookEventFactory(status=Status.FAILED, attempts=6)
    set_app_settings(
        settings,
        HEALTH_WORKER_SILENT_AFTER=0,
        HEALTH_FAILED_EVENTS_WINDOW=0,
        HEALTH_SYNC_MAX_AGE=0,
    )
    assert monitor().get(HEALTH).status_code == 200
    set_app_settings(settings, **{setting: timedelta(minutes=5)})
    assert monitor().get(HEALTH).status_code == 503


def test_a_threshold_it_refuses_is_reported_and_its_default_used(settings: Any) -> None:
    healthy()
    set_app_settings(settings, HEALTH_WORKER_SILENT_AFTER="5m")

    response = monitor().get(HEALTH)

    assert response.status_code == 503
    assert problem_codes(response) == ["configuration_error"]
    [message] = [m for m in response.json()["configuration"] if m["level"] == "error"]
    assert message["id"] == "biginterview.E013"
    assert "HEALTH_WORKER_SILENT_AFTER" in message["message"]


def test_a_database_it_cannot_read_gives_503(monkeypatch: pytest.MonkeyPatch) -> None:
    def down(now: Any = None) -> None:
        raise DatabaseError("connection refused")

    monkeypatch.setattr(status, "take_snapshot", down)

    response = monitor().get(HEALTH)

    assert response.status_code == 503
    assert problem_codes(response) == ["database_unavailable"]


# --- Cost -----------------------------------------------------------------------------------


def test_the_snapshot_takes_three_queries_whatever_the_data(django_assert_num_queries) -> None:
    healthy()
    with django_assert_num_queries(3):
        status.take_snapshot()
    for n in range(30):
        SyncRunFactory(started_at=timezone.now() - timedelta(hours=n + 1))
        WebhookEventFactory(status=[Status.PENDING, Status.FAILED, Status.PROCESSED][n % 3])
        AccountFactory()
    with django_assert_num_queries(3):
        snapshot = status.take_snapshot()
    assert (snapshot.pending_events, snapshot.failed_events) == (10, 10)


def test_the_endpoint_costs_the_same_queries_on_more_data() -> None:
    healthy()
    with CaptureQueriesContext(connection) as few:
        assert monitor().get(HEALTH).status_code == 200
    for _ in range(20):
        WebhookEventFactory(status=Status.PENDING)
        SyncRunFactory(started_at=timezone.now() - timedelta(days=2))
    with CaptureQueriesContext(connection) as many:
        monitor().get(HEALTH)
    assert len(many) == len(few) == 3


@pytest.mark.postgresql
def test_an_index_serves_each_query_of_the_snapshot() -> None:
    """With sequential scans priced out, as in ``test_scale_queries``: none is left, so
    the three queries read indexes only, never the million kept events."""
    healthy()
    WebhookEventFactory.create_batch(3, status=Status.PROCESSED)
    with CaptureQueriesContext(connection) as captured:
        status.take_snapshot()
    assert len(captured) == 3
    with connection.cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        try:
            for query in captured.captured_queries:
                cursor.execute("EXPLAIN " + query["sql"])
                plan = "\n".join(row[0] for row in cursor.fetchall())
                assert "Seq Scan" not in plan, plan
        finally:
            cursor.execute("RESET enable_seqscan")
