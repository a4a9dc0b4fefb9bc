"""Erasure: a deleted user, or an erased partner_id, leaves nothing behind.

People are built through the real paths: the sandbox generates their interviews and
notifications, the webhook functions store and process them, and the sync mirrors their
tracks. "No trace" is checked on the stored text of every webhook event (the jsonb
itself on PostgreSQL) and of every sync run's failure list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import timedelta
from io import StringIO
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command, execute_from_command_line
from django.core.management.base import CommandError
from django.db.models import TextField
from django.db.models.functions import Cast
from django.utils import timezone

from django_biginterview import webhook_processing, webhooks
from django_biginterview.erasure import (
    ERASED_PARTNER_ID,
    ERASED_REASON,
    ErasureReport,
    erase_partner_id,
    erase_user,
)
from django_biginterview.models import Account, Interview, SyncRun, Track, TrackStep, WebhookEvent
from django_biginterview.sandbox import Sandbox
from django_biginterview.sync import apply_snapshot, fetch, sync_account
from django_biginterview.testing.factories import (
    AccountFactory,
    AnonymousAccountFactory,
    SyncRunFactory,
    UserFactory,
)
from tests.support.sandbox import sandbox_client
from tests.support.webhooks import body_of

pytestmark = pytest.mark.django_db

Status = WebhookEvent.Status


@dataclass
class Person:
    """Someone with everything this app can store about them, in every event status."""

    partner_id: str
    title: str
    account: Account
    interview_id: int
    notification_ids: list[str]


def new_notifications(sandbox: Sandbox, partner_id: str) -> list[dict[str, Any]]:
    """The partner's notifications the sandbox generated and nothing stored yet."""
    stored = set(WebhookEvent.objects.values_list("remote_id", flat=True))
    return [
        n
        for n in sandbox.notifications
        if n["webhook"]["partner_id"] == partner_id and n["webhook"]["id"] not in stored
    ]


def store(notification: dict[str, Any]) -> webhooks.StoredDelivery:
    return webhooks.store_delivery(webhooks.parse_delivery(body_of(notification)))


def deliver(notification: dict[str, Any]) -> webhook_processing.ProcessOutcome:
    return webhook_processing.process_event(store(notification).event_id)


def make_person(sandbox: Sandbox, account: Account, title: str) -> Person:
    """An old processed event (past the retry window), a recent processed one, a failed
    one and a pending one, the interview (from a webhook, then the sync), and tracks."""
    partner_id = account.partner_id
    sandbox.create_user(partner_id)
    interview = sandbox.start_interview(partner_id, title=title)
    sandbox.complete_interview(partner_id, interview["id"])
    first, second = new_notifications(sandbox, partner_id)
    assert deliver(first).status == Status.PROCESSED
    assert deliver(second).status == Status.PROCESSED
    WebhookEvent.objects.filter(remote_id=first["webhook"]["id"]).update(
        received_at=timezone.now() - timedelta(hours=3)
    )
    sandbox.update_interview(partner_id, interview["id"], title=f"{title} (retake)")
    (failing,) = new_notifications(sandbox, partner_id)
    WebhookEvent.objects.filter(pk=store(failing).event_id).update(
        status=Status.FAILED, attempts=1, last_error=f"could not apply {title!r}"
    )
    sandbox.update_interview(partner_id, interview["id"], title=f"{title} (third take)")
    (pending,) = new_notifications(sandbox, partner_id)
    store(pending)
    assert sync_account(account, sandbox_client(sandbox)).outcome == "synced"
    return Person(
        partner_id=partner_id,
        title=title,
        account=account,
        interview_id=interview["id"],
        notification_ids=[n["webhook"]["id"] for n in (first, second, failing, pending)],
    )


def stored_text() -> str:
    """Everything stored in webhook events and sync-run failures, as the database has it."""
    events = WebhookEvent.objects.annotate(text=Cast("payload", TextField())).values_list(
        "text", "partner_id", "reason", "last_error"
    )
    runs = SyncRun.objects.annotate(text=Cast("failures", TextField())).values_list(
        "text", flat=True
    )
    return "\n".join(["\n".join(map(str, row)) for row in events] + [str(text) for text in runs])


#: The rows ``make_person`` leaves a person.
PERSON_ROWS = {"accounts": 1, "tracks": 2, "track_steps": 3, "interviews": 1}
#: Erasing them: those rows, the old processed event deleted, the other three anonymised.
PERSON_ERASED = {**PERSON_ROWS, "events_deleted": 1, "events_anonymised": 3}


def rows_of(account: Account) -> dict[str, int]:
    return {
        "accounts": Account.objects.filter(pk=account.pk).count(),
        "tracks": Track.objects.filter(account=account).count(),
        "track_steps": TrackStep.objects.filter(track__account=account).count(),
        "interviews": Interview.objects.filter(account=account).count(),
    }


def database_state() -> list[Any]:
    """A snapshot of every table an erasure may touch."""
    return [
        list(Account.objects.order_by("pk").values()),
        list(Track.objects.order_by("pk").values()),
        list(TrackStep.objects.order_by("pk").values()),
        list(Interview.objects.order_by("pk").values()),
        list(WebhookEvent.objects.order_by("pk").values()),
        list(SyncRun.objects.order_by("pk").values()),
    ]


@pytest.fixture
def alice(biginterview_sandbox: Sandbox) -> Person:
    account = AccountFactory(user=UserFactory(username="alice"), partner_id="u-alice")
    return make_person(biginterview_sandbox, account, "Alice's interview at Initech")


@pytest.fixture
def bob(biginterview_sandbox: Sandbox) -> Person:
    account = AccountFactory(user=UserFactory(username="bob"), partner_id="u-bob")
    return make_person(biginterview_sandbox, account, "Bob's interview at Globex")


def assert_erased(person: Person) -> None:
    assert not Account.objects.filter(partner_id=person.partner_id).exists()
    assert not Interview.objects.filter(remote_id=person.interview_id).exists()
    text = stored_text()
    assert person.partner_id not in text
    assert person.title not in text


def assert_untouched(person: Person) -> None:
    assert rows_of(person.account) == PERSON_ROWS
    assert WebhookEvent.objects.filter(partner_id=person.partner_id).count() == 4
    assert person.title in stored_text()


# --- Deleting a user -------------------------------------------------------------------


def test_deleting_a_user_deletes_their_rows_and_scrubs_their_events(
    alice: Person, bob: Person
) -> None:
    assert rows_of(alice.account) == PERSON_ROWS
    old, recent, failed, pending = alice.notification_ids

    get_user_model().objects.filter(username="alice").delete()  # as the admin's bulk delete

    assert rows_of(alice.account) == dict.fromkeys(rows_of(alice.account), 0)
    assert_erased(alice)
    assert_untouched(bob)
    # Past the retry window a processed event is deleted; the others keep their
    # notification id, and nothing else of the person.
    assert not WebhookEvent.objects.filter(remote_id=old).exists()
    kept = {
        e.remote_id: e for e in WebhookEvent.objects.filter(remote_id__in=alice.notification_ids)
    }
    assert set(kept) == {recent, failed, pending}
    for event in kept.values():
        assert event.partner_id == ERASED_PARTNER_ID
        assert event.last_error == ""
        assert event.payload == {
            "webhook": {
                "id": event.remote_id,
                "event_name": "interview.updated",
                "partner_id": ERASED_PARTNER_ID,
                "api_type": "Interview",
                "api_id": str(alice.interview_id),
                "api_object": None,
            }
        }
    assert kept[recent].status == Status.PROCESSED
    for remote_id in (failed, pending):
        assert (kept[remote_id].status, kept[remote_id].reason) == (Status.IGNORED, ERASED_REASON)
        assert kept[remote_id].next_attempt_at is None
    assert not webhook_processing.due_events(timezone.now() + timedelta(days=1)).filter(
        remote_id__in=alice.notification_ids
    )


def test_deleting_one_user_instance_runs_the_erasure(alice: Person, bob: Person) -> None:
    alice.account.user.delete()

    assert_erased(alice)
    assert_untouched(bob)


def test_sync_run_failures_lose_the_partner_id(alice: Person, bob: Person) -> None:
    run = SyncRunFactory(
        failures=[
            {"partner_id": alice.partner_id, "error": f"404: no user {alice.partner_id}"},
            {"partner_id": "u-alice-2", "error": "422: refused"},
            {"partner_id": bob.partner_id, "error": "timeout"},
            {"partner_id": None, "error": "fan-out stopped"},
        ]
    )

    report = erase_partner_id(alice.partner_id)

    assert report.sync_failures_redacted == 1
    run.refresh_from_db()
    assert run.failures == [
        {"partner_id": ERASED_PARTNER_ID, "error": f"404: no user {ERASED_PARTNER_ID}"},
        {"partner_id": "u-alice-2", "error": "422: refused"},
        {"partner_id": bob.partner_id, "error": "timeout"},
        {"partner_id": None, "error": "fan-out stopped"},
    ]


# --- Erasing by partner_id -------------------------------------------------------------


def test_erase_partner_id_of_an_anonymous_account(
    biginterview_sandbox: Sandbox, bob: Person
) -> None:
    visitor = biginterview_sandbox.state.create_anonymous()["partner_id"]
    anonymous = make_person(
        biginterview_sandbox, AnonymousAccountFactory(partner_id=visitor), "Visitor's take"
    )

    report = erase_partner_id(visitor)

    assert report == ErasureReport(visitor, **PERSON_ERASED)
    assert_erased(anonymous)
    assert_untouched(bob)


def test_erasure_is_idempotent(alice: Person, bob: Person) -> None:
    user = alice.account.user

    assert erase_user(user).total == 11
    assert erase_user(user) == ErasureReport(None)
    assert erase_partner_id(alice.partner_id) == ErasureReport(alice.partner_id)
    user.delete()
    carol = UserFactory(username="carol")  # never had an account
    assert erase_user(carol) == ErasureReport(None)
    carol.delete()

    assert_erased(alice)
    assert_untouched(bob)


def test_dry_run_counts_and_changes_nothing(alice: Person) -> None:
    before = database_state()

    planned = erase_user(alice.account.user, dry_run=True)

    assert database_state() == before
    assert planned == ErasureReport(alice.partner_id, **PERSON_ERASED, dry_run=True)
    assert str(planned) == (
        "would delete 1 account, 2 tracks, 3 track steps, 1 interview, 1 webhook event; "
        "anonymise 3 webhook events; redact 0 sync failure entries"
    )
    done = erase_user(alice.account.user)
    assert done == replace(planned, dry_run=False)


# --- What comes after: late webhooks, running syncs ------------------------------------


def test_a_late_retry_of_a_stored_notification_is_a_duplicate(
    biginterview_sandbox: Sandbox, alice: Person
) -> None:
    notifications = {n["webhook"]["id"]: n for n in biginterview_sandbox.notifications}
    erase_partner_id(alice.partner_id)
    events = WebhookEvent.objects.count()

    for remote_id in alice.notification_ids[1:]:  # still inside Big Interview's retry window
        assert store(notifications[remote_id]).created is False

    assert WebhookEvent.objects.count() == events
    assert_erased(alice)


@pytest.mark.parametrize("batch", [False, True], ids=["one-by-one", "batch"])
def test_a_late_webhook_for_an_erased_partner_creates_nothing(
    biginterview_sandbox: Sandbox, alice: Person, batch: bool
) -> None:
    erase_partner_id(alice.partner_id)
    biginterview_sandbox.start_interview(alice.partner_id, title="After the erasure")
    event_id = store(biginterview_sandbox.notifications[-1]).event_id

    if batch:
        (outcome,) = webhook_processing.process_events([event_id])
    else:
        outcome = webhook_processing.process_event(event_id)

    assert (outcome.status, outcome.reason) == (Status.IGNORED, webhook_processing.NO_ACCOUNT)
    assert outcome.sync_account_id is None
    assert not Account.objects.filter(partner_id=alice.partner_id).exists()
    assert not Interview.objects.filter(account__partner_id=alice.partner_id).exists()


def test_a_running_sync_of_an_erased_account_writes_nothing(
    biginterview_sandbox: Sandbox, alice: Person
) -> None:
    snapshot = fetch(alice.account, sandbox_client(biginterview_sandbox))
    erase_partner_id(alice.partner_id)  # while the sync talked to Big Interview

    result = apply_snapshot(alice.account, snapshot)

    assert (result.outcome, result.error) == ("skipped", "Account deleted.")
    assert rows_of(alice.account) == dict.fromkeys(rows_of(alice.account), 0)
    assert_erased(alice)


# --- The command -------------------------------------------------------------------------


def run_command(*args: str) -> str:
    out = StringIO()
    call_command("biginterview_erase", *args, stdout=out)
    return out.getvalue()


def test_command_dry_run_then_erase(alice: Person, bob: Person) -> None:
    visitor = AnonymousAccountFactory(partner_id="anon_visitor")
    before = database_state()

    output = run_command("--user", "alice", "--partner-id", "anon_visitor", "--dry-run")

    assert database_state() == before
    assert output.splitlines() == [
        "user alice (partner_id u-alice): would delete 1 account, 2 tracks, 3 track steps, "
        "1 interview, 1 webhook event; anonymise 3 webhook events; redact 0 sync failure entries",
        "partner_id anon_visitor: would delete 1 account, 0 tracks, 0 track steps, "
        "0 interviews, 0 webhook events; anonymise 0 webhook events; redact 0 sync failure entries",
        "Dry run: nothing was changed.",
    ]

    output = run_command("--user", "alice", "--partner-id", "anon_visitor")

    assert output.splitlines()[0].startswith("user alice (partner_id u-alice): deleted 1 account")
    assert_erased(alice)
    assert not Account.objects.filter(pk=visitor.pk).exists()
    assert_untouched(bob)
    assert run_command("--user", "alice") == "user alice: nothing stored\n"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--user", "alice", "--user", "nobody"], "No such user: nobody. Nothing was erased."),
        (
            ["--user", "alice", "--partner-id", "u-nobody"],
            "No account or webhook event with partner_id: u-nobody",
        ),
        (["--partner-id", "[erased]"], "Not a valid partner_id: '[erased]'"),
        ([], "Name at least one --user or --partner-id."),
    ],
)
def test_command_refuses_unknown_targets_and_erases_nothing(
    alice: Person, args: list[str], message: str
) -> None:
    before = database_state()

    with pytest.raises(CommandError, match=re.escape(message)):
        run_command(*args)

    assert database_state() == before


def test_command_exits_non_zero_for_an_erased_partner_id(
    alice: Person, capsys: pytest.CaptureFixture[str]
) -> None:
    erase_partner_id(alice.partner_id)

    with pytest.raises(SystemExit) as exit_info:
        execute_from_command_line(["manage.py", "biginterview_erase", "--partner-id", "u-alice"])

    assert exit_info.value.code == 1
    assert "(unknown, or erased already)" in capsys.readouterr().err
