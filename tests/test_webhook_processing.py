"""Processing stored events: through ``mirror.py``, exactly once, failures kept and retried.

Notifications come from the real sandbox (``sandbox_history``), stored through the same
functions the view uses.
"""

from __future__ import annotations

import logging
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from django_biginterview import mirror, tasks, webhook_processing, webhooks
from django_biginterview.exceptions import WebhookValidationError
from django_biginterview.models import Interview, WebhookEvent
from django_biginterview.signals import interview_changed
from django_biginterview.testing.factories import AccountFactory, WebhookEventFactory
from tests.support.concurrency import run_concurrently
from tests.support.signals import capture
from tests.support.webhooks import body_of, sandbox_history

# No event id left "in flight" by another test (ids restart with each database).
pytestmark = pytest.mark.usefixtures("clean_redis")

Status = WebhookEvent.Status


@pytest.fixture(scope="module")
def history() -> list[dict[str, Any]]:
    """created, 2 updates, completed, deleted — as the sandbox notified them."""
    return sandbox_history(partner_id="abc123", updates=3, delete=True)


@pytest.fixture
def account(db: None) -> Any:
    return AccountFactory(partner_id="abc123")


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> list[list[int]]:
    """The batches of event ids the sweeper sends, instead of sending them."""
    batches: list[list[int]] = []
    monkeypatch.setattr(
        tasks.process_webhook_events, "apply_async", lambda args=(), **kw: batches.append(args[0])
    )
    return batches


def store(notification: dict[str, Any]) -> WebhookEvent:
    stored = webhooks.store_delivery(webhooks.parse_delivery(body_of(notification)))
    return WebhookEvent.objects.get(pk=stored.event_id)


def deliver(notification: dict[str, Any]) -> webhook_processing.ProcessOutcome | None:
    """Store, and process if new: what the view + task do for one delivery."""
    stored = webhooks.store_delivery(webhooks.parse_delivery(body_of(notification)))
    return webhook_processing.process_event(stored.event_id) if stored.created else None


def interview_state(account: Any) -> dict[str, Any]:
    row = Interview.objects.get(account=account)
    state = {name: getattr(row, name) for name in mirror.INTERVIEW_DATA_FIELDS}
    return {**state, "deleted": row.is_deleted}


# --- The three events ------------------------------------------------------------------


def test_created_writes_the_interview_and_marks_the_event_processed_together(
    account: Any, history: list[dict[str, Any]], django_capture_on_commit_callbacks: Any
) -> None:
    with capture(interview_changed) as changed, django_capture_on_commit_callbacks(execute=True):
        outcome = deliver(history[0])
    assert outcome is not None
    assert (outcome.status, outcome.sync_account_id) == ("processed", account.pk)
    api_object = history[0]["webhook"]["api_object"]
    row = Interview.objects.get(account=account, remote_id=api_object["id"])
    assert row.title == api_object["title"]
    assert row.raw == api_object
    event = WebhookEvent.objects.get()
    assert (event.status, event.attempts, event.last_error) == ("processed", 1, "")
    assert event.processed_at is not None
    assert [(kw["change"], kw["source"]) for kw in changed] == [("created", "webhook")]


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
    assert webhook_processing.process_event(event.pk).status == "skipped"


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
    assert webhook_processing.process_event(event.pk).status == "processed"
    assert webhook_processing.process_event(event.pk).status == "skipped"
    assert len(calls) == 1
    assert webhook_processing.process_event(event.pk, force=True).status == "processed"  # replay
    assert len(calls) == 2


def test_a_purged_event_is_reported_missing(db: None) -> None:
    assert webhook_processing.process_event(987654).status == "missing"


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
        outcome = webhook_processing.process_event(event.pk)
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
    assert webhook_processing.process_event(event.pk).status == "processed"
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
    outcome = webhook_processing.process_event(event.pk)
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
        webhook_processing.process_event(event.pk)
        event.refresh_from_db()
        delays.append(
            None
            if event.next_attempt_at is None
            else round((event.next_attempt_at - started).total_seconds() / 60)
        )
    assert delays == [1, 2, None]
    assert (event.status, event.attempts) == ("failed", 3)
    far_future = timezone.now() + timedelta(days=1)
    assert not webhook_processing.due_events(far_future).filter(pk=event.pk).exists()


class WorkerKilled(BaseException):
    """Stands for SIGKILL in one process: nothing after it runs, no ``except Exception``
    catches it, and the open transaction is rolled back."""


def kill_on(title: str, original: Any) -> Any:
    """``original`` (``upsert_interviews`` or ``upsert_interviews_of_accounts``), dying
    when asked to write an interview titled ``title``."""

    def upsert(*args: Any, **kwargs: Any) -> Any:
        interviews = args[1] if len(args) > 1 else [i for _, batch in args[0] for i in batch]
        if any(interview.title == title for interview in interviews):
            raise WorkerKilled
        return original(*args, **kwargs)

    return upsert


def test_an_attempt_is_counted_when_processing_starts_so_a_poison_event_ends_failed(
    account: Any,
    history: list[dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    settings: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "WEBHOOK_MAX_ATTEMPTS": 3}
    poison = {**history[0], "webhook": {**history[0]["webhook"]}}
    poison["webhook"]["api_object"] = {**poison["webhook"]["api_object"], "title": "POISON"}
    monkeypatch.setattr(mirror, "upsert_interviews", kill_on("POISON", mirror.upsert_interviews))
    event = store(poison)
    for started in (1, 2, 3):
        with pytest.raises(WorkerKilled):
            webhook_processing.process_event(event.pk)
        event.refresh_from_db()
        # The work was rolled back; the count of its start was committed before it.
        assert (event.status, event.attempts) == (Status.PENDING, started)

    outcome = webhook_processing.process_event(event.pk)

    assert outcome.failed
    event.refresh_from_db()
    assert (event.status, event.attempts, event.next_attempt_at) == (Status.FAILED, 3, None)
    assert "started 3 times without finishing" in event.last_error
    assert "failed for good" in caplog.text
    far_future = timezone.now() + timedelta(days=1)
    assert not webhook_processing.due_events(far_future).filter(pk=event.pk).exists()


def test_a_poison_event_in_a_batch_counts_against_no_other_event(
    account: Any, history: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch, settings: Any
) -> None:
    """The batch path counts nothing until it commits; a batch that died is sent again by
    the sweeper and its events go one at a time, each start counted, so only the poison
    event spends attempts and the others end processed on their first."""
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "WEBHOOK_MAX_ATTEMPTS": 2}
    first, second = store(history[0]), store(history[1])
    poison_notification = {**history[2], "webhook": {**history[2]["webhook"]}}
    poison_notification["webhook"]["id"] = "poison-1"
    poison_notification["webhook"]["api_object"] = {
        **poison_notification["webhook"]["api_object"],
        "id": 777,
        "title": "POISON",
    }
    poison = store(poison_notification)
    monkeypatch.setattr(
        mirror,
        "upsert_interviews_of_accounts",
        kill_on("POISON", mirror.upsert_interviews_of_accounts),
    )
    batch = [first.pk, poison.pk, second.pk]

    def attempts() -> tuple[int, int, int]:
        by_pk = dict(WebhookEvent.objects.values_list("pk", "attempts"))
        return by_pk[first.pk], by_pk[poison.pk], by_pk[second.pk]

    with pytest.raises(WorkerKilled):  # the batch, in one transaction
        tasks.process_webhook_events(batch)
    assert attempts() == (0, 0, 0)

    with pytest.raises(WorkerKilled):  # sent again: one by one, the poison dies again
        tasks.process_webhook_events(batch)
    assert attempts() == (1, 1, 0)

    with pytest.raises(WorkerKilled):
        tasks.process_webhook_events(batch)
    assert attempts() == (1, 2, 0)

    assert tasks.process_webhook_events(batch) == ["skipped", "failed", "processed"]
    statuses = dict(WebhookEvent.objects.values_list("pk", "status"))
    assert statuses[poison.pk] == Status.FAILED
    assert statuses[first.pk] == statuses[second.pk] == Status.PROCESSED
    assert attempts() == (1, 2, 1)


def notifications_for(accounts: int, per_account: int) -> list[dict[str, Any]]:
    """``interview.created`` notifications, ``per_account`` for each of ``accounts``."""
    template = sandbox_history(partner_id="abc123", updates=0, delete=False)[0]
    out = []
    for a in range(accounts):
        for n in range(per_account):
            webhook = {**template["webhook"], "id": f"b-{a}-{n}", "partner_id": f"acct-{a}"}
            webhook["api_object"] = {**webhook["api_object"], "id": 10_000 * a + n}
            out.append({**template, "webhook": webhook})
    return out


@pytest.mark.parametrize("accounts", [2, 12])
def test_a_batch_costs_the_same_queries_however_many_events(
    db: None, accounts: int, django_assert_max_num_queries: Any
) -> None:
    for a in range(accounts):
        AccountFactory(partner_id=f"acct-{a}")
    ids = [store(n).pk for n in notifications_for(accounts, per_account=3)]

    with django_assert_max_num_queries(12):
        outcomes = webhook_processing.process_events(ids)

    assert {o.status for o in outcomes} == {"processed"}
    assert Interview.objects.count() == 3 * accounts
    assert set(WebhookEvent.objects.values_list("status", "attempts")) == {("processed", 1)}


def test_a_batch_that_raises_is_applied_one_by_one_and_only_the_bad_event_fails(
    account: Any, history: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    good, bad = store(history[0]), store(history[1])
    WebhookEvent.objects.filter(pk=bad.pk).update(payload={"webhook": "not an object"})

    outcomes = webhook_processing.process_events([good.pk, bad.pk])

    assert [o.status for o in outcomes] == ["processed", "failed"]
    bad.refresh_from_db()
    assert (bad.status, bad.attempts) == (Status.FAILED, 1)
    assert "no 'webhook' object" in bad.last_error


def test_without_redis_every_event_goes_one_by_one(
    account: Any, history: list[dict[str, Any]], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no shared store a batch that died could not be told apart: each start is
    counted instead."""
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "REDIS_URL": None}
    starts: list[int] = []
    original = webhook_processing._start_attempt
    monkeypatch.setattr(
        webhook_processing,
        "_start_attempt",
        lambda event_id, **kw: starts.append(event_id) or original(event_id, **kw),
    )
    ids = [store(n).pk for n in history[:2]]

    assert [o.status for o in webhook_processing.process_events(ids)] == ["processed"] * 2
    assert starts == ids


def test_a_duplicate_message_for_a_done_event_counts_no_attempt(
    account: Any, history: list[dict[str, Any]]
) -> None:
    """The sweeper re-claims a backlog that is still queued: the second message of an
    event finds it done and leaves its count alone."""
    event = store(history[0])
    assert webhook_processing.process_event(event.pk).status == "processed"
    assert webhook_processing.process_event(event.pk).status == "skipped"
    event.refresh_from_db()
    assert event.attempts == 1


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

    def run() -> str:
        return webhook_processing.process_event(event.pk).status

    if connection.vendor == "postgresql":
        outcomes = run_concurrently(run, 2, timeout=20)
    else:
        outcomes = [run() for _ in range(2)]
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
            webhook_processing.process_event(stored.event_id)
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
    db: None, settings: Any, enqueued: list[list[int]]
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
    assert enqueued == [[stuck.pk, due.pk]]  # one batch, oldest first
    # Leased: the next sweep, a minute later, does not send them again.
    assert tasks.sweep_webhook_events() == 0
    assert len(enqueued) == 1
    untouched = [fresh, backing_off, exhausted, done, ignored]
    assert not {e.pk for e in untouched} & set(enqueued[0])


def test_sweeper_sends_a_large_backlog_in_batches_in_one_run(
    db: None, enqueued: list[list[int]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(webhook_processing, "SWEEP_CLAIM", 7)
    monkeypatch.setattr(webhook_processing, "SWEEP_BATCH", 3)
    old = timezone.now() - timedelta(hours=1)
    backlog = [WebhookEventFactory(received_at=old) for _ in range(16)]

    assert tasks.sweep_webhook_events() == 16

    assert [len(batch) for batch in enqueued] == [3, 3, 1, 3, 3, 1, 2]
    assert sorted(pk for batch in enqueued for pk in batch) == [e.pk for e in backlog]
    # Claiming counts no attempt: that happens when processing starts.
    assert set(WebhookEvent.objects.values_list("attempts", flat=True)) == {0}


def test_a_sweep_with_nothing_due_reads_only_sweepable_rows(db: None) -> None:
    """The claim query names the partial index's condition, so PostgreSQL can answer
    from that index instead of walking every event (checked with EXPLAIN in the scale
    tests); here: the condition is in the SQL and the query is one statement."""
    WebhookEventFactory.create_batch(3, status=Status.PROCESSED)
    with CaptureQueriesContext(connection) as ctx:
        assert webhook_processing.claim_due_events() == []
    selects = [q["sql"] for q in ctx.captured_queries if q["sql"].startswith("SELECT")]
    assert len(selects) == 1 and "next_attempt_at" in selects[0]


def test_sweeper_survives_a_broker_outage(
    db: None, settings: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    from kombu.exceptions import OperationalError as BrokerDown

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise BrokerDown("Connection refused")

    monkeypatch.setattr(tasks.process_webhook_events, "apply_async", refuse)
    WebhookEventFactory(received_at=timezone.now() - timedelta(hours=1))
    assert tasks.sweep_webhook_events() == 0
    assert "could not reach the broker" in caplog.text


# --- Retention ---------------------------------------------------------------------------


def test_purge_deletes_exhausted_failures_after_their_own_retention(
    db: None, settings: Any
) -> None:
    settings.BIGINTERVIEW = {
        **settings.BIGINTERVIEW,
        "WEBHOOK_RETENTION": timedelta(days=30),
        "WEBHOOK_FAILED_RETENTION": timedelta(days=90),
    }
    now = timezone.now()
    kept = [
        # exhausted, but a person may still need it
        WebhookEventFactory(received_at=now - timedelta(days=89), status=Status.FAILED),
        # still to be retried
        WebhookEventFactory(
            received_at=now - timedelta(days=91), status=Status.FAILED, next_attempt_at=now
        ),
    ]
    WebhookEventFactory(received_at=now - timedelta(days=91), status=Status.FAILED)
    assert tasks.purge_webhook_events() == 1
    assert set(WebhookEvent.objects.values_list("pk", flat=True)) == {e.pk for e in kept}


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
