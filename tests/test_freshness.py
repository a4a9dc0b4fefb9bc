"""Fresh progress (issue #17): Big Interview sends no webhook for track progress, so a
user who views their progress (``me/``, ``{% biginterview_progress %}``) while it is older
than ``PROGRESS_MAX_AGE`` gets a sync asked for in the background, deduplicated by the
pending markers, in ``INTERACTIVE_QUEUE`` ahead of a "sync all"."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.template import Context, Template
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from django_biginterview import sync, tasks
from django_biginterview.models import Account, TrackStep
from django_biginterview.testing.factories import AccountFactory, UserFactory
from tests.support.messages import record_messages
from tests.support.polling import wait_for
from tests.support.sandbox import remote_account, sandbox_client
from tests.support.workers import start_worker, stop_worker

MAX_AGE = timedelta(minutes=1)


# -- When progress counts as stale -----------------------------------------------------------


@pytest.mark.parametrize(
    ("synced_ago", "failed_ago", "missing", "stale"),
    [
        (None, None, False, True),  # never synced
        (timedelta(seconds=30), None, False, False),
        (timedelta(seconds=61), None, False, True),
        (timedelta(minutes=5), timedelta(seconds=10), False, False),  # just failed: wait
        (timedelta(minutes=5), timedelta(minutes=2), False, True),
        (None, None, True, False),  # missing on Big Interview: a sync would repeat the 404
    ],
)
def test_progress_is_stale_once_the_last_attempt_is_older_than_the_maximum_age(
    synced_ago: timedelta | None, failed_ago: timedelta | None, missing: bool, stale: bool
) -> None:
    now = timezone.now()
    account = Account(
        partner_id="p",
        last_synced_at=now - synced_ago if synced_ago else None,
        last_sync_error_at=now - failed_ago if failed_ago else None,
        remote_missing_at=now if missing else None,
    )
    assert sync.progress_is_stale(account, now) is stale


def test_the_maximum_age_follows_its_setting(settings: Any) -> None:
    account = Account(partner_id="p", last_synced_at=timezone.now() - timedelta(minutes=3))
    assert sync.progress_is_stale(account)
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "PROGRESS_MAX_AGE": timedelta(minutes=5)}
    assert not sync.progress_is_stale(account)


# -- Asking for a sync -----------------------------------------------------------------------


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch, clean_redis: None) -> Any:
    """The sync messages sent. The tests using it commit (``transaction=True``): a sync is
    sent when the view's transaction commits."""
    return record_messages(monkeypatch, tasks.sync_account)


@pytest.mark.django_db(transaction=True)
def test_a_stale_view_asks_once_for_an_interactive_sync_in_the_interactive_queue(
    settings: Any, sent: Any
) -> None:
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "INTERACTIVE_QUEUE": "bi-interactive"}
    account = AccountFactory(last_synced_at=timezone.now() - 2 * MAX_AGE)

    assert tasks.refresh_stale_progress(account)
    assert tasks.refresh_stale_progress(account)  # a second view: still pending

    [message] = sent
    assert message.args == (account.pk,)
    assert message.options["kwargs"] == {"interactive": True}
    assert message.options["queue"] == "bi-interactive"


@pytest.mark.django_db(transaction=True)
def test_a_pending_background_sync_does_not_hold_back_the_interactive_one(sent: Any) -> None:
    account = AccountFactory(last_synced_at=timezone.now() - 2 * MAX_AGE)
    tasks.schedule_account_sync(account.pk)  # e.g. after a webhook, maybe behind a sync all
    tasks.refresh_stale_progress(account)
    assert [m.options.get("kwargs") for m in sent] == [{}, {"interactive": True}]
    assert "queue" not in sent[1].options  # INTERACTIVE_QUEUE unset: the default queue


@pytest.mark.django_db(transaction=True)
def test_a_lost_refresh_is_asked_for_again_after_the_maximum_age(settings: Any, sent: Any) -> None:
    """Its worker died, or its marker lives in a store the worker does not share: the
    marker outlives the staleness it answers by no more than ``PROGRESS_MAX_AGE``."""
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "PROGRESS_MAX_AGE": 1}
    account = AccountFactory(last_synced_at=None)
    tasks.refresh_stale_progress(account)
    tasks.refresh_stale_progress(account)
    assert len(sent) == 1
    time.sleep(1.5)
    tasks.refresh_stale_progress(account)
    assert len(sent) == 2


@pytest.mark.django_db(transaction=True)
def test_fresh_progress_asks_for_nothing(sent: Any) -> None:
    account = AccountFactory(last_synced_at=timezone.now())
    assert not tasks.refresh_stale_progress(account)
    assert not tasks.refresh_stale_progress(None)  # no account yet
    assert sent == []


@pytest.mark.django_db(transaction=True)
def test_a_broker_outage_never_breaks_the_page(
    monkeypatch: pytest.MonkeyPatch, clean_redis: None, caplog: Any
) -> None:
    def down(*args: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker down")

    monkeypatch.setattr(tasks.sync_account, "apply_async", down)
    account = AccountFactory(last_synced_at=None)
    assert tasks.refresh_stale_progress(account)  # asked; the send failed and was logged
    assert "Could not enqueue a sync" in caplog.text


@pytest.mark.django_db(transaction=True)
def test_me_and_the_progress_tag_ask_for_a_sync_of_stale_progress(client: Any, sent: Any) -> None:
    user = UserFactory()
    stale = AccountFactory(user=user, last_synced_at=timezone.now() - 2 * MAX_AGE)
    client.force_login(user)

    assert client.get(reverse("biginterview:api-me")).status_code == 200
    assert sent.args == [(stale.pk,)]

    request = RequestFactory().get("/")
    request.user = user
    Template("{% load biginterview %}{% biginterview_progress %}").render(
        Context({"request": request})
    )
    assert sent.args == [(stale.pk,)]  # still pending: one sync for both views

    Account.objects.filter(pk=stale.pk).update(last_synced_at=timezone.now())
    fresh_user = UserFactory()
    AccountFactory(user=fresh_user, last_synced_at=timezone.now())
    request.user = fresh_user
    Template("{% load biginterview %}{% biginterview_progress %}").render(
        Context({"request": request})
    )
    assert sent.args == [(stale.pk,)]


# -- The API calls it costs ------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_an_hour_of_views_costs_one_sync_per_maximum_age(
    monkeypatch: pytest.MonkeyPatch, sent: Any
) -> None:
    """A user viewing their progress every 15 s for an hour: one sync (two API calls) a
    minute, 60 in all; a user who views it once in the hour costs one."""
    account = AccountFactory(last_synced_at=None)
    start = timezone.now()
    for second in range(0, 3600, 15):
        now = start + timedelta(seconds=second)
        monkeypatch.setattr(sync.timezone, "now", lambda now=now: now)
        account.refresh_from_db()
        asked = len(sent)
        tasks.refresh_stale_progress(account)
        if len(sent) > asked:  # the worker runs it at once: marker cleared, account synced
            tasks.coordination.clear_pending(tasks._pending_name(account.pk, True))
            Account.objects.filter(pk=account.pk).update(last_synced_at=now)
    assert len(sent) == 60


# -- With a real worker and Big Interview's sandbox -------------------------------------------


@pytest.fixture
def two_queue_worker(
    transactional_db: None,
    biginterview_sandbox: Any,
    redis_url: str,
    celery_app: Any,
    celery_queue: str,
    settings: Any,
    tmp_path: Path,
    clean_redis: None,
) -> Any:
    """The sandbox, and a worker consuming the default queue and ``INTERACTIVE_QUEUE``,
    as the README's worker line does."""
    settings.BIGINTERVIEW = {
        **settings.BIGINTERVIEW,
        "INTERACTIVE_QUEUE": f"{celery_queue}-interactive",
        "RATE_LIMIT": 0,
    }
    process = start_worker(
        celery_app,
        celery_queue,
        tmp_path / "worker.log",
        redis_url=redis_url,
        also_consumes=[f"{celery_queue}-interactive"],
    )
    try:
        yield biginterview_sandbox
    finally:
        stop_worker(process)


def _step_done(account: Account, title: str, step: int) -> bool:
    return TrackStep.objects.filter(
        track__account=account, track__title=title, step=step, completed=True
    ).exists()


@pytest.mark.integration
def test_a_step_done_on_big_interview_reaches_me_after_a_view(
    two_queue_worker: Any, client: Any
) -> None:
    sb = two_queue_worker
    user = UserFactory()
    account = remote_account(sb, "fresh-1", user=user)
    sync.sync_account(account, sandbox_client(sb))
    title = sb.tracks("fresh-1")[0]["title"]
    sb.complete_step("fresh-1", title, 1)  # no webhook: Big Interview sends none for this
    Account.objects.filter(pk=account.pk).update(last_synced_at=timezone.now() - 2 * MAX_AGE)
    client.force_login(user)

    started = time.monotonic()
    first = client.get(reverse("biginterview:api-me")).json()
    assert not first["tracks"][0]["steps"][0]["completed"]  # shown as stored, no waiting

    def shown() -> bool:
        steps = client.get(reverse("biginterview:api-me")).json()["tracks"][0]["steps"]
        return bool(steps[0]["completed"])

    wait_for(shown, timeout=60, interval=0.5)
    print(f"step visible in me/ {time.monotonic() - started:.1f} s after the first view")


@pytest.mark.integration
def test_a_refresh_does_not_wait_behind_a_sync_all(two_queue_worker: Any) -> None:
    """Forty slow syncs fill the default queue (as a "sync all" does); a refresh asked for
    after them is done while most of them still wait."""
    sb = two_queue_worker
    backlog = [remote_account(sb, f"backlog-{n}") for n in range(40)]
    viewer = remote_account(sb, "viewer", last_synced_at=None)
    sb.set_faults(latency=0.25)  # every API call: 0.25 s; a backlog sync 0.5 s at least
    for account in backlog:
        tasks.sync_account.apply_async(args=(account.pk,))

    assert tasks.refresh_stale_progress(viewer)
    wait_for(
        lambda: Account.objects.filter(pk=viewer.pk, last_synced_at__isnull=False).exists(),
        timeout=60,
        interval=0.2,
    )
    synced_backlog = Account.objects.filter(
        pk__in=[a.pk for a in backlog], last_synced_at__isnull=False
    ).count()
    assert synced_backlog < len(backlog) // 2
