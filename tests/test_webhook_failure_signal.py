"""``webhook_event_failed`` and its ERROR line: sent once when an event ends ``failed`` with
no retry left, however many messages reach it afterwards, and never naming the payload."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone

from django_biginterview import mirror, webhook_processing, webhooks
from django_biginterview.models import WebhookEvent
from django_biginterview.signals import webhook_event_failed
from django_biginterview.testing.factories import AccountFactory
from tests.support.signals import capture
from tests.support.webhooks import body_of, sandbox_history

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]

Status = WebhookEvent.Status
TITLE = "Secret Interview Title 7f3a"  # payload data: in last_error, never in the log


@pytest.fixture(scope="module")
def created() -> dict[str, Any]:
    """An ``interview.created`` notification as the sandbox sends it, titled ``TITLE``."""
    notification = sandbox_history(partner_id="fail-1", updates=0, delete=False)[0]
    notification["webhook"]["api_object"]["title"] = TITLE
    return notification


@pytest.fixture
def event(settings: Any, created: dict[str, Any]) -> WebhookEvent:
    """``created``, stored, for a known account; three attempts allowed."""
    settings.BIGINTERVIEW = {
        **settings.BIGINTERVIEW,
        "WEBHOOK_MAX_ATTEMPTS": 3,
        "WEBHOOK_RETRY_BACKOFF": timedelta(seconds=1),
    }
    AccountFactory(partner_id="fail-1")
    stored = webhooks.store_delivery(webhooks.parse_delivery(body_of(created)))
    return WebhookEvent.objects.get(pk=stored.event_id)


@pytest.fixture
def failing_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(account: Any, interviews: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"cannot store {interviews[0].title}")

    monkeypatch.setattr(mirror, "upsert_interviews", fail)


def errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]


@pytest.mark.usefixtures("failing_mirror")
def test_the_last_failed_attempt_sends_the_signal_and_logs_an_error_once(
    event: WebhookEvent,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with capture(webhook_event_failed) as received:
        for _ in range(2):  # failures with a retry planned: nothing to alert about
            with django_capture_on_commit_callbacks(execute=True):
                assert webhook_processing.process_event(event.pk).failed
        assert received == [] and errors(caplog) == []

        with django_capture_on_commit_callbacks(execute=True):
            outcome = webhook_processing.process_event(event.pk)

        assert outcome.failed
        assert len(received) == 1
        sent = received[0]["event"]
        assert sent.pk == event.pk and received[0]["sender"] is WebhookEvent
        assert (sent.status, sent.attempts, sent.next_attempt_at) == (Status.FAILED, 3, None)
        assert sent.last_error == f"RuntimeError: cannot store {TITLE}"

        # A redelivered message, and a sweep: the event is done, nothing is sent again.
        with django_capture_on_commit_callbacks(execute=True):
            again = webhook_processing.process_event(event.pk)
        assert (again.status, again.reason) == (Status.FAILED, "no attempts left")
        assert not webhook_processing.due_events(timezone.now() + timedelta(days=1)).exists()
    assert len(received) == 1

    [line] = errors(caplog)
    assert f"Webhook event {event.pk} (notification {event.remote_id}, interview.created)" in line
    assert "after 3 attempt(s): RuntimeError" in line
    assert f"--replay --id {event.remote_id}" in line
    assert TITLE not in line  # the stored error quotes the payload; this line does not
    assert "fail-1" not in line
    for key in (settings.BIGINTERVIEW["API_KEY"], *settings.BIGINTERVIEW["WEBHOOK_KEYS"]):
        assert key not in line


@pytest.mark.usefixtures("failing_mirror")
def test_the_signal_waits_for_the_commit(
    event: WebhookEvent, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "WEBHOOK_MAX_ATTEMPTS": 1}
    with capture(webhook_event_failed) as received:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            assert webhook_processing.process_event(event.pk).failed
        assert received == []  # the transaction has not committed
        for callback in callbacks:
            callback()
    assert [kwargs["event"].pk for kwargs in received] == [event.pk]


@pytest.mark.usefixtures("failing_mirror")
def test_a_replay_failing_again_sends_nothing_more(
    event: WebhookEvent,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "WEBHOOK_MAX_ATTEMPTS": 1}
    with (
        capture(webhook_event_failed) as received,
        django_capture_on_commit_callbacks(execute=True),
    ):
        webhook_processing.process_event(event.pk)
        summary = webhook_processing.replay_events([event.pk, event.pk])
    assert summary.count("failed") == 2
    event.refresh_from_db()
    assert (event.status, event.attempts) == (Status.FAILED, 3)
    assert len(received) == 1 and len(errors(caplog)) == 1


def test_a_poison_event_is_announced_when_its_last_start_is_found_unfinished(
    event: WebhookEvent, caplog: pytest.LogCaptureFixture, django_capture_on_commit_callbacks: Any
) -> None:
    """Each start was counted and the worker died each time (no failure recorded): the
    next message finds the attempts spent and ends the event."""
    WebhookEvent.objects.filter(pk=event.pk).update(attempts=3)
    with capture(webhook_event_failed) as received:
        for _ in range(2):  # the first ends it; a duplicate message finds it ended
            with django_capture_on_commit_callbacks(execute=True):
                assert webhook_processing.process_event(event.pk).failed
    assert len(received) == 1
    sent = received[0]["event"]
    assert (sent.pk, sent.status, sent.attempts) == (event.pk, Status.FAILED, 3)
    assert "started 3 times without finishing" in sent.last_error
    [line] = errors(caplog)
    assert f"Webhook event {event.pk} (notification {event.remote_id}" in line
    assert "processing never finished (worker lost each time)" in line


def test_a_retry_planned_before_max_attempts_was_lowered_ends_announced_once(
    event: WebhookEvent, settings: Any, django_capture_on_commit_callbacks: Any
) -> None:
    WebhookEvent.objects.filter(pk=event.pk).update(
        status=Status.FAILED, attempts=2, next_attempt_at=timezone.now(), last_error="earlier"
    )
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "WEBHOOK_MAX_ATTEMPTS": 2}
    with capture(webhook_event_failed) as received:
        for _ in range(2):
            with django_capture_on_commit_callbacks(execute=True):
                assert webhook_processing.process_event(event.pk).reason == "no attempts left"
    assert len(received) == 1
    sent = received[0]["event"]
    assert (sent.next_attempt_at, sent.attempts) == (None, 2)
    event.refresh_from_db()
    assert (event.next_attempt_at, event.last_error) == (None, "earlier")


def test_an_event_that_succeeds_on_a_retry_sends_nothing(
    event: WebhookEvent, monkeypatch: pytest.MonkeyPatch, django_capture_on_commit_callbacks: Any
) -> None:
    original = mirror.upsert_interviews
    monkeypatch.setattr(mirror, "upsert_interviews", lambda *a, **k: 1 / 0)
    with capture(webhook_event_failed) as received:
        with django_capture_on_commit_callbacks(execute=True):
            assert webhook_processing.process_event(event.pk).failed
        monkeypatch.setattr(mirror, "upsert_interviews", original)
        with django_capture_on_commit_callbacks(execute=True):
            assert webhook_processing.process_event(event.pk).status == Status.PROCESSED
    assert received == []
