"""Processing stored events: through ``mirror.py``, exactly once, failures kept and retried.

Notifications come from the real sandbox (``sandbox_history``), stored through the same
functions the view uses.
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_biginterview import mirror, tasks, webhooks
from django_biginterview.exceptions import WebhookValidationError
from django_biginterview.models import Interview, WebhookEvent
from django_biginterview.signals import interview_changed
from django_biginterview.testing.factories import AccountFactory, WebhookEventFactory
from tests.test_webhook_support import body_of, sandbox_history

Status = WebhookEvent.Status

STATE_FIELDS = (
    "title",
    "interviewer_name",
    "category",
    "completed",
    "remote_created_at",
    "remote_updated_at",
    "review_path",
    "retake_path",
    "raw",
)


@pytest.fixture(scope="module")
def history() -> list[dict[str, Any]]:
    """created, 2 updates, completed, deleted — as the sandbox notified them."""
    return sandbox_history(partner_id="abc123", updates=3, delete=True)


@pytest.fixture
def account(db: None) -> Any:
    return AccountFactory(partner_id="abc123")


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(
        tasks.process_webhook_event, "apply_async", lambda args=(), **kw: calls.append(args)
    )
    return calls


def store(notification: dict[str, Any]) -> WebhookEvent:
    stored = webhooks.store_delivery(webhooks.parse_delivery(body_of(notification)))
    return WebhookEvent.objects.get(pk=stored.event_id)


def deliver(notification: dict[str, Any]) -> webhooks.ProcessOutcome | None:
    """Store, and process if new: what the view + task do for one delivery."""
    stored = webhooks.store_delivery(webhooks.parse_delivery(body_of(notification)))
    return webhooks.process_event(stored.event_id) if stored.created else None


def interview_state(account: Any) -> dict[str, Any]:
    row = Interview.objects.get(account=account)
    return {**{name: getattr(row, name) for name in STATE_FIELDS}, "deleted": row.is_deleted}


# --- The three events ------------------------------------------------------------------


def test_created_writes_the_interview_and_marks_the_event_processed_together(
    account: Any, history: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    changes: list[tuple[str, str]] = []

    def on_changed(sender: Any, interview: Interview, change: str, source: str, **kw: Any) -> None:
        changes.append((change, source))

    interview_changed.connect(on_changed)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            outcome = deliver(history[0])
    finally:
        interview_changed.disconnect(on_changed)
    assert outcome is not None
    assert (outcome.status, outcome.sync_account_id) == ("processed", account.pk)
    api_object = history[0]["webhook"]["api_object"]
    row = Interview.objects.get(account=account, remote_id=api_object["id"])
    assert row.title == api_object["title"]
    assert row.raw == api_object
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts, event.last_error) == ("processed", 1, "")
    assert event.processed_at is not None
    assert changes == [("created", "webhook")]


def test_update_before_create_still_creates_and_the_late_create_changes_nothing(
    account: Any, history: list[dict[str, Any]]
) -> None:
    deliver(history[2])
    assert interview_state(account)["title"] == history[2]["webhook"]["api_object"]["title"]
    deliver(history[0])  # older: must not roll the data back
    assert interview_state(account)["title"] == history[2]["webhook"]["api_object"]["title"]
    assert WebhookEvent.objects.filter(status=Status.PROCESSED).count() == 2


def test_delete_is_sticky_even_against_late_older_updates(
    account: Any, history: list[dict[str, Any]]
) -> None:
    for notification in history:
        deliver(notification)
    assert interview_state(account)["deleted"]
    late = {"webhook": {**history[1]["webhook"], "id": "late-redelivery"}}
    deliver(late)
    state = interview_state(account)
    assert state["deleted"]
    assert state["title"] == history[-2]["webhook"]["api_object"]["title"]


def test_delete_before_anything_leaves_a_tombstone_that_later_data_cannot_revive(
    account: Any, history: list[dict[str, Any]]
) -> None:
    deliver(history[-1])
    assert interview_state(account)["deleted"]
    deliver(history[0])
    state = interview_state(account)
    assert state["deleted"]
    assert state["title"] == history[0]["webhook"]["api_object"]["title"]


def test_event_for_an_unknown_partner_is_kept_and_ignored(
    db: None, history: list[dict[str, Any]]
) -> None:
    outcome = deliver(history[0])
    assert outcome is not None and outcome.status == "ignored"
    event = WebhookEvent.objects.get()
    assert (event.status, event.reason) == ("ignored", "no account for partner_id")
    assert not Interview.objects.exists()
    # Processing it again (a redelivered task) does nothing more.
    assert webhooks.process_event(event.pk).status == "skipped"


def test_unknown_event_name_is_kept_and_ignored_with_its_name(
    account: Any, history: list[dict[str, Any]]
) -> None:
    notification = {"webhook": {**history[0]["webhook"], "event_name": "interview.exploded"}}
    outcome = deliver(notification)
    assert outcome is not None and outcome.status == "ignored"
    assert WebhookEvent.objects.get().reason == "unknown event interview.exploded"
    assert not Interview.objects.exists()


def test_a_processed_event_is_never_processed_twice(
    account: Any, history: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[int] = []
    original = mirror.upsert_interviews
    monkeypatch.setattr(
        mirror, "upsert_interviews", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    event = store(history[0])
    assert webhooks.process_event(event.pk).status == "processed"
    assert webhooks.process_event(event.pk).status == "skipped"
    assert len(calls) == 1
    assert webhooks.process_event(event.pk, force=True).status == "processed"  # replay
    assert len(calls) == 2


def test_a_purged_event_is_reported_missing(db: None) -> None:
    assert webhooks.process_event(987654).status == "missing"


# --- Failures ----------------------------------------------------------------------------


def test_a_failure_rolls_back_its_writes_and_is_recorded_separately(
    account: Any,
    history: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "WEBHOOK_RETRY_BACKOFF": 10}
    original = mirror.upsert_interviews

    def write_then_fail(*args: Any, **kwargs: Any) -> Any:
        original(*args, **kwargs)
        assert Interview.objects.exists()  # the write happened ...
        raise RuntimeError("mirror exploded")

    monkeypatch.setattr(mirror, "upsert_interviews", write_then_fail)
    event = store(history[0])
    before = timezone.now()
    with django_capture_on_commit_callbacks() as callbacks:
        outcome = webhooks.process_event(event.pk)
    assert outcome.status == "failed"
    assert not Interview.objects.exists()  # ... and was rolled back
    assert callbacks == []  # no interview_changed for a rolled-back change
    event.refresh_from_db()
    assert event.status == Status.FAILED
    assert event.attempts == 1
    assert event.last_error == "RuntimeError: mirror exploded"
    assert event.processed_at is None
    assert before + timedelta(seconds=10) <= event.next_attempt_at
    assert event.next_attempt_at <= timezone.now() + timedelta(seconds=10)

    # A failed event is not "already seen": the next run processes it.
    monkeypatch.setattr(mirror, "upsert_interviews", original)
    assert webhooks.process_event(event.pk).status == "processed"
    event.refresh_from_db()
    assert (event.status, event.attempts, event.last_error) == ("processed", 2, "")
    assert event.next_attempt_at is None
    assert Interview.objects.count() == 1


def test_an_unparseable_interview_is_refused_and_a_stored_one_fails_readably(
    account: Any, history: list[dict[str, Any]]
) -> None:
    webhook = dict(history[0]["webhook"])
    webhook["api_object"] = {**webhook["api_object"], "updated_at": "yesterday"}
    with pytest.raises(WebhookValidationError, match="api_object: Invalid ISO 8601 date"):
        deliver({"webhook": webhook})

    # Stored before the receiver checked objects (an older version): processing fails
    # with a readable error instead of looping.
    event = WebhookEvent.objects.create(
        remote_id=webhook["id"],
        event_name=webhook["event_name"],
        partner_id=webhook["partner_id"],
        payload={"webhook": webhook},
    )
    outcome = webhooks.process_event(event.pk)
    assert outcome.failed
    event.refresh_from_db()
    assert event.last_error == "UnexpectedResponse: Invalid ISO 8601 date in response."


def test_backoff_doubles_until_max_attempts_then_stays_failed(
    account: Any, history: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    settings.BIGINTERVIEW = {
        **settings.BIGINTERVIEW,
        "WEBHOOK_RETRY_BACKOFF": timedelta(seconds=60),
        "WEBHOOK_MAX_ATTEMPTS": 3,
    }

    def fail(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("database hiccup")

    monkeypatch.setattr(mirror, "upsert_interviews", fail)
    event = store(history[0])
    delays = []
    for _ in range(3):
        started = timezone.now()
        webhooks.process_event(event.pk)
        event.refresh_from_db()
        delays.append(
            None
            if event.next_attempt_at is None
            else round((event.next_attempt_at - started).total_seconds() / 60)
        )
    assert delays == [1, 2, None]
    assert (event.status, event.attempts) == ("failed", 3)
    far_future = timezone.now() + timedelta(days=1)
    assert not webhooks.due_events(far_future).filter(pk=event.pk).exists()


def test_concurrent_processing_of_one_event_applies_it_once(
    transactional_db: None, history: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A redelivered task racing the first one: the row lock makes the second wait and
    then see ``processed``. Real threads on PostgreSQL; SQLite has no row locks, so there
    the two runs are sequential (same guarantee, without the race)."""
    AccountFactory(partner_id="abc123")
    event = store(history[0])
    calls: list[int] = []
    original = mirror.upsert_interviews

    def slow(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        time.sleep(0.3)  # hold the lock while the other thread arrives
        return original(*args, **kwargs)

    monkeypatch.setattr(mirror, "upsert_interviews", slow)
    outcomes: list[str] = []
    if connection.vendor == "postgresql":
        barrier = threading.Barrier(2)

        def run() -> None:
            from django.db import connection as thread_connection

            try:
                barrier.wait()
                outcomes.append(webhooks.process_event(event.pk).status)
            finally:
                thread_connection.close()

        threads = [threading.Thread(target=run) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(20)
    else:
        outcomes = [webhooks.process_event(event.pk).status for _ in range(2)]
    assert sorted(outcomes) == ["processed", "skipped"]
    assert len(calls) == 1
    assert Interview.objects.count() == 1


# --- Any order, any duplication --------------------------------------------------------


@hypothesis_settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_any_order_and_duplication_ends_like_in_order_delivery(
    account: Any, history: list[dict[str, Any]], data: st.DataObject
) -> None:
    with_delete = data.draw(st.booleans(), label="with_delete")
    notifications = history if with_delete else history[:-1]

    def reset() -> None:
        WebhookEvent.objects.all().delete()
        Interview.objects.all().delete()

    reset()
    for notification in notifications:
        deliver(notification)
    expected = interview_state(account)

    reset()
    order = list(data.draw(st.permutations(range(len(notifications))), label="order"))
    for extra in data.draw(st.lists(st.integers(0, len(notifications) - 1), max_size=4)):
        order.insert(data.draw(st.integers(0, len(order)), label="at"), extra)
    for index in order:
        stored = webhooks.store_delivery(webhooks.parse_delivery(body_of(notifications[index])))
        # A new event is processed; a duplicate may also see its task redelivered.
        if stored.created or data.draw(st.booleans(), label="task redelivered"):
            webhooks.process_event(stored.event_id)
    assert interview_state(account) == expected
    assert WebhookEvent.objects.count() == len(notifications)
    assert set(WebhookEvent.objects.values_list("status", flat=True)) == {"processed"}


# --- The task: follow-up sync -----------------------------------------------------------


def test_the_task_schedules_a_sync_of_the_account_after_an_interview_event(
    account: Any, history: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduled: list[int] = []
    monkeypatch.setattr(tasks, "schedule_account_sync", scheduled.append)
    event = store(history[0])
    assert tasks.process_webhook_event(event.pk) == "processed"
    assert scheduled == [account.pk]


def test_no_sync_is_scheduled_for_an_ignored_event(
    db: None, history: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    scheduled: list[int] = []
    monkeypatch.setattr(tasks, "schedule_account_sync", scheduled.append)
    event = store(history[0])  # no local account
    assert tasks.process_webhook_event(event.pk) == "ignored"
    assert scheduled == []


def test_a_failing_sync_scheduler_never_fails_the_event(
    account: Any, history: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    def not_ready(account_id: int) -> None:
        raise NotImplementedError

    monkeypatch.setattr(tasks, "schedule_account_sync", not_ready)
    caplog.set_level(logging.WARNING, "django_biginterview")
    event = store(history[0])
    assert tasks.process_webhook_event(event.pk) == "processed"
    event.refresh_from_db()
    assert event.status == Status.PROCESSED
    assert "Could not schedule a sync" in caplog.text


# --- Sweeper -----------------------------------------------------------------------------


def test_sweeper_reenqueues_stuck_pending_and_due_failed_events_once(
    db: None, settings: Any, enqueued: list[tuple[Any, ...]]
) -> None:
    settings.BIGINTERVIEW = {
        **settings.BIGINTERVIEW,
        "WEBHOOK_STUCK_AFTER": timedelta(minutes=5),
        "WEBHOOK_MAX_ATTEMPTS": 3,
    }
    now = timezone.now()
    old = now - timedelta(minutes=10)
    stuck = WebhookEventFactory(received_at=old)
    fresh = WebhookEventFactory(received_at=now)
    due = WebhookEventFactory(
        received_at=old, status=Status.FAILED, attempts=1, next_attempt_at=now
    )
    backing_off = WebhookEventFactory(
        received_at=old,
        status=Status.FAILED,
        attempts=1,
        next_attempt_at=now + timedelta(minutes=1),
    )
    exhausted = WebhookEventFactory(received_at=old, status=Status.FAILED, attempts=3)
    done = WebhookEventFactory(received_at=old, status=Status.PROCESSED)
    ignored = WebhookEventFactory(received_at=old, status=Status.IGNORED)

    assert tasks.sweep_webhook_events() == 2
    assert sorted(enqueued) == sorted([(stuck.pk,), (due.pk,)])
    # Leased: the next sweep, a minute later, does not send them again.
    assert tasks.sweep_webhook_events() == 0
    assert len(enqueued) == 2
    untouched = [fresh, backing_off, exhausted, done, ignored]
    assert not {e.pk for e in untouched} & {pk for (pk,) in enqueued}


def test_sweeper_survives_a_broker_outage(
    db: None, settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    from kombu.exceptions import OperationalError as BrokerDown

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise BrokerDown("Connection refused")

    monkeypatch.setattr(tasks.process_webhook_event, "apply_async", refuse)
    WebhookEventFactory(received_at=timezone.now() - timedelta(hours=1))
    assert tasks.sweep_webhook_events() == 0
    assert "could not reach the broker" in caplog.text


# --- Retention ---------------------------------------------------------------------------


def test_purge_deletes_old_processed_and_ignored_events_only(db: None, settings: Any) -> None:
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "WEBHOOK_RETENTION": timedelta(days=30)}
    old = timezone.now() - timedelta(days=31)
    recent = timezone.now() - timedelta(days=29)
    kept = [
        WebhookEventFactory(received_at=old, status=Status.FAILED),
        WebhookEventFactory(received_at=old, status=Status.PENDING),
        WebhookEventFactory(received_at=recent, status=Status.PROCESSED),
        WebhookEventFactory(received_at=recent, status=Status.IGNORED),
    ]
    WebhookEventFactory(received_at=old, status=Status.PROCESSED)
    WebhookEventFactory(received_at=old, status=Status.IGNORED)
    assert tasks.purge_webhook_events() == 2
    assert set(WebhookEvent.objects.values_list("pk", flat=True)) == {e.pk for e in kept}


@pytest.mark.parametrize("retention", [timedelta(hours=1, minutes=59), timedelta(0), 60])
def test_purge_refuses_a_retention_under_two_hours(
    db: None, settings: Any, retention: Any, caplog: Any
) -> None:
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "WEBHOOK_RETENTION": retention}
    WebhookEventFactory(received_at=timezone.now() - timedelta(days=1), status=Status.PROCESSED)
    with pytest.raises(ImproperlyConfigured, match="WEBHOOK_RETENTION"):
        tasks.purge_webhook_events()
    assert "Webhook purge refused" in caplog.text
    assert WebhookEvent.objects.count() == 1
