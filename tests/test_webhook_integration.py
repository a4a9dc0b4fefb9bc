"""The webhook receiver with real parts: the sandbox sending over HTTP, the ``live_server``,
a real Celery worker process on real Redis, a Redis killed mid-delivery, and clients
racing each other with the same notification.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse

from django_biginterview import publisher as publisher_module
from django_biginterview import tasks
from django_biginterview.models import Interview, Track, WebhookEvent
from django_biginterview.signals import webhook_received
from django_biginterview.testing.factories import AccountFactory
from tests.support.concurrency import run_concurrently
from tests.support.polling import wait_for
from tests.support.redis import PrivateRedis
from tests.support.signals import capture, connected
from tests.support.webhooks import (
    ClientPoster,
    Enqueued,
    LiveServerPoster,
    body_of,
    delivery_headers,
    sandbox_history,
)

pytestmark = pytest.mark.integration

Status = WebhookEvent.Status


def event_statuses() -> dict[str, str]:
    return dict(WebhookEvent.objects.values_list("remote_id", "status"))


def test_sandbox_deliveries_end_to_end_through_a_real_worker(
    request: pytest.FixtureRequest, live_server: Any, biginterview_sandbox_factory: Any
) -> None:
    """Big Interview (the sandbox) POSTs real deliveries to the running site; a real worker
    consumes real Redis, applies them, and the follow-up sync fetches the tracks."""
    sandbox = biginterview_sandbox_factory(
        webhook_url=live_server.url + reverse("biginterview:webhook")
    )
    # After the sandbox: the worker inherits the test's BIGINTERVIEW (sandbox BASE_URL).
    request.getfixturevalue("celery_worker_process")
    account = AccountFactory(partner_id="e2e-user")
    sandbox.create_user("e2e-user")

    interview = sandbox.start_interview("e2e-user")
    assert wait_for(lambda: Interview.objects.filter(account=account).exists())
    sandbox.complete_interview("e2e-user", interview["id"])
    assert wait_for(lambda: Interview.objects.filter(account=account, completed=True).exists())
    sandbox.delete_interview("e2e-user", interview["id"])
    assert wait_for(
        lambda: Interview.objects.filter(account=account, deleted_at__isnull=False).exists()
    )
    assert sandbox.wait_for_deliveries(3, succeeded=True)
    assert wait_for(lambda: set(event_statuses().values()) == {Status.PROCESSED})

    # A redelivery of a processed notification: 200 again, no new row, nothing reapplied.
    first_id = sandbox.notifications[0]["webhook"]["id"]
    sandbox.redeliver(first_id)
    assert sandbox.wait_for_deliveries(4, succeeded=True)
    assert WebhookEvent.objects.count() == 3
    assert Interview.objects.get(account=account).is_deleted
    assert all(record.status == 200 for record in sandbox.deliveries)

    # The follow-up sync scheduled after the interview events fetched the tracks.
    assert wait_for(lambda: Track.objects.filter(account=account).count() == 2)


def test_simultaneous_duplicates_get_200_one_row_one_processing(
    transactional_db: None, live_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Several senders POST the same notification at the same instant over real HTTP."""
    enqueued = Enqueued()
    monkeypatch.setattr(tasks.process_webhook_events, "apply_async", enqueued.record)
    body = body_of(sandbox_history(updates=0, delete=False)[0])
    poster = LiveServerPoster(live_server.url)
    senders = 8

    def send() -> int:
        return poster.post(body, delivery_headers()).status

    with capture(webhook_received) as announced:
        answers = run_concurrently(send, senders)
    assert answers == [200] * senders
    event = WebhookEvent.objects.get()
    assert enqueued.ids() == [event.pk]
    assert [kw["event"].pk for kw in announced] == [event.pk]


class TestBrokerOutage:
    """The broker dies during a delivery: the sender still gets 200 and the event is kept;
    once the broker is back, the sweeper re-enqueues it and a real worker processes it."""

    @pytest.fixture
    def redis_url(self, private_broker: PrivateRedis) -> str:
        # The worker (``celery_worker_process``) consumes the private Redis too.
        return private_broker.url

    def test_delivery_survives_a_dead_broker_and_the_sweeper_recovers(
        self,
        request: pytest.FixtureRequest,
        transactional_db: None,
        private_broker: PrivateRedis,
        settings: Any,
        caplog: Any,
    ) -> None:
        account = AccountFactory(partner_id="abc123")
        notification = sandbox_history(partner_id="abc123", updates=0, delete=False)[0]

        def kill_broker(sender: Any, event: WebhookEvent, **kwargs: Any) -> None:
            private_broker.kill()  # stored, not yet enqueued: the worst moment

        with connected(webhook_received, kill_broker):
            answer = ClientPoster().post(body_of(notification), delivery_headers())
        assert answer.status == 200
        event = WebhookEvent.objects.get()
        assert event.status == Status.PENDING
        assert publisher_module.webhook_publisher.flush()
        assert "sweeper will retry" in caplog.text

        private_broker.start()
        settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "WEBHOOK_STUCK_AFTER": timedelta(0)}
        assert tasks.sweep_webhook_events() == 1
        request.getfixturevalue("celery_worker_process")
        assert wait_for(
            lambda: WebhookEvent.objects.filter(pk=event.pk, status=Status.PROCESSED).exists()
        )
        assert Interview.objects.filter(account=account).count() == 1
