"""Anonymous practice cannot be abused (issue #13): only a visitor whose session one of
the site's pages marked gets an account, new accounts are capped per session, per
adapter-given key and in all, clicks spend a reserved share of ``RATE_LIMIT`` that
background syncs never touch, and accounts past their 24-hour life are purged and skipped
by "sync all". Against the sandbox over HTTP and the real Redis.
"""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.contrib.sessions.models import Session
from django.http import HttpRequest, HttpResponse
from django.template import RequestContext, Template
from django.test import Client
from django.urls import include, path
from django.utils import timezone

from django_biginterview import coordination, sso, sync, sync_runs, tasks
from django_biginterview.adapter import DefaultAdapter
from django_biginterview.client import get_client
from django_biginterview.models import Account, Interview, Track
from django_biginterview.testing.factories import (
    AccountFactory,
    AccountWithTokenFactory,
    AnonymousAccountFactory,
    InterviewFactory,
    TrackFactory,
    UserFactory,
)
from django_biginterview.views import ANONYMOUS_ACCOUNT_SESSION_KEY, PRACTICE_OFFERED_SESSION_KEY
from tests.support.app_settings import set_app_settings
from tests.support.redis import use_own_store
from tests.support.web import PRACTICE, offered

LOGIN = "/accounts/login/"


def page(request: HttpRequest) -> HttpResponse:
    """A page of the host's site with the practice link in its navigation."""
    template = Template("{% load biginterview %}<nav>{% biginterview_practice_link %}</nav>")
    return HttpResponse(template.render(RequestContext(request)))


def page_with_the_url_tag(request: HttpRequest) -> HttpResponse:
    template = Template('{% load biginterview %}<a href="{% biginterview_practice_url %}">Go</a>')
    return HttpResponse(template.render(RequestContext(request)))


urlpatterns = [
    path("", page),
    path("url-tag/", page_with_the_url_tag),
    path("biginterview/", include("django_biginterview.urls")),
]


class AddressAdapter(DefaultAdapter):
    """A host that knows its clients connect directly: the rate key is the address."""

    def anonymous_rate_key(self, request: HttpRequest) -> str | None:
        return request.META["REMOTE_ADDR"]


def anonymous_calls(sandbox) -> list:
    return sandbox.api_calls(method="POST", path_prefix="/api/users/anonymous")


@pytest.fixture
def sandbox(db, settings, biginterview_sandbox, private_redis):
    """The sandbox, with anonymous users on and a coordination store of the test's own."""
    set_app_settings(settings, ANONYMOUS_USERS=True)
    use_own_store(settings, private_redis)
    return biginterview_sandbox


def visitor(**headers: str) -> Client:
    """A new browser whose session a page of the site marked."""
    return offered(Client(**headers))


def make_stale(client: Client) -> None:
    """The visitor's anonymous account comes to the end of its token."""
    Account.objects.filter(pk=client.session[ANONYMOUS_ACCOUNT_SESSION_KEY]).update(
        sso_token_expires_at=timezone.now()
    )


# --- A1: only a visitor the site offered the link to ----------------------------------------


def test_a_thousand_cookieless_gets_create_nothing(sandbox):
    client = Client()
    statuses = {client.get(PRACTICE).status_code for _ in range(1000)}
    assert statuses == {302}
    assert client.get(PRACTICE)["Location"].startswith(LOGIN)
    assert not client.cookies  # nothing was even written to a session
    assert not Session.objects.exists()
    assert not Account.objects.exists()
    assert sandbox.api_calls() == []


def test_a_session_no_page_of_the_site_marked_creates_nothing(sandbox):
    client = Client()
    session = client.session  # a session the host uses for something else
    session["cart"] = [1]
    session.save()
    response = client.get(PRACTICE)
    assert response.status_code == 302 and response["Location"].startswith(LOGIN)
    assert not Account.objects.exists()
    assert sandbox.api_calls() == []


def test_a_cross_site_request_creates_nothing_even_from_a_marked_session(sandbox):
    client = visitor()
    response = client.get(PRACTICE, headers={"Sec-Fetch-Site": "cross-site"})
    assert response["Location"].startswith(LOGIN)
    assert not Account.objects.exists()

    for site in ("same-origin", "same-site", "none"):
        assert client.get(PRACTICE, headers={"Sec-Fetch-Site": site}).status_code == 302
    assert Account.objects.count() == 1
    assert len(anonymous_calls(sandbox)) == 1


@pytest.mark.urls(__name__)
@pytest.mark.parametrize("page_path", ["/", "/url-tag/"])
def test_a_page_with_the_practice_link_lets_the_next_click_through(sandbox, page_path):
    client = Client()
    assert client.get(page_path).status_code == 200
    assert client.session[PRACTICE_OFFERED_SESSION_KEY] is True

    response = client.get(PRACTICE)

    account = Account.objects.get()
    assert account.anonymous
    assert response["Location"].startswith(f"{sandbox.url}/sso/login?token=")
    assert client.session[ANONYMOUS_ACCOUNT_SESSION_KEY] == account.pk


@pytest.mark.urls(__name__)
def test_the_link_marks_no_session_when_anonymous_users_are_off(db, settings):
    client = Client()
    client.get("/")
    assert not client.cookies
    assert not Session.objects.exists()


@pytest.mark.urls(__name__)
def test_the_link_marks_no_session_for_a_logged_in_user(sandbox):
    client = Client()
    client.force_login(UserFactory())
    client.get("/")
    assert PRACTICE_OFFERED_SESSION_KEY not in client.session


# --- A2: quotas ------------------------------------------------------------------------------


def test_one_session_gets_at_most_its_quota_of_accounts(sandbox, settings):
    set_app_settings(settings, ANONYMOUS_ACCOUNTS_PER_SESSION=2)
    client = visitor()
    assert client.get(PRACTICE).status_code == 302
    make_stale(client)
    assert client.get(PRACTICE).status_code == 302
    make_stale(client)

    refused = client.get(PRACTICE)

    assert refused.status_code == 503
    assert b"Big Interview is unavailable" in refused.content
    assert 23 * 3600 < int(refused["Retry-After"]) <= 24 * 3600 + 1
    assert Account.objects.count() == 2
    assert len(anonymous_calls(sandbox)) == 2
    # Another visitor is not held back by this one's quota.
    assert visitor().get(PRACTICE).status_code == 302


def test_all_visitors_together_get_at_most_the_hourly_quota(sandbox, settings, caplog):
    set_app_settings(settings, ANONYMOUS_ACCOUNTS_PER_HOUR=3)
    statuses = [visitor().get(PRACTICE).status_code for _ in range(5)]
    assert statuses == [302, 302, 302, 503, 503]
    assert Account.objects.count() == 3
    assert len(anonymous_calls(sandbox)) == 3
    assert "refused by a limit of this site" in caplog.text


def test_a_refused_click_uses_up_no_other_quota(sandbox, settings):
    """All or none: a click the hourly quota refuses does not count for its session."""
    set_app_settings(settings, ANONYMOUS_ACCOUNTS_PER_HOUR=1, ANONYMOUS_ACCOUNTS_PER_SESSION=1)
    assert visitor().get(PRACTICE).status_code == 302
    late = visitor()
    assert late.get(PRACTICE).status_code == 503
    set_app_settings(settings, ANONYMOUS_ACCOUNTS_PER_HOUR=2)
    assert late.get(PRACTICE).status_code == 302


def test_the_adapter_rate_key_caps_one_address(sandbox, settings):
    set_app_settings(
        settings,
        ADAPTER=f"{__name__}.AddressAdapter",
        ANONYMOUS_ACCOUNTS_PER_RATE_KEY=2,
    )
    same_address = [visitor(REMOTE_ADDR="203.0.113.7").get(PRACTICE) for _ in range(3)]
    assert [r.status_code for r in same_address] == [302, 302, 503]
    assert 3500 < int(same_address[-1]["Retry-After"]) <= 3601
    assert visitor(REMOTE_ADDR="198.51.100.2").get(PRACTICE).status_code == 302
    assert Account.objects.count() == 3


def test_the_default_adapter_gives_no_rate_key(rf):
    assert DefaultAdapter().anonymous_rate_key(rf.get(PRACTICE)) is None


def test_anonymous_accounts_pause_while_the_store_is_down(sandbox, settings, caplog):
    """Without the store no quota can hold: no account is made (logged-in users still
    get theirs, their limiter falls back to a per-process limit)."""
    client = visitor()
    redis_url = settings.BIGINTERVIEW["REDIS_URL"]
    set_app_settings(settings, REDIS_URL="redis://127.0.0.1:1/0")
    try:
        response = client.get(PRACTICE)
    finally:
        set_app_settings(settings, REDIS_URL=redis_url)
    assert response.status_code == 503
    assert not Account.objects.exists()
    assert anonymous_calls(sandbox) == []
    assert "Coordination store unavailable" in caplog.text


# --- A2: the quotas themselves, on Redis and on the cache fallback -----------------------


@pytest.fixture(params=["redis", "cache"])
def store(request, settings):
    if request.param == "redis":
        use_own_store(settings, request.getfixturevalue("private_redis"))
    else:
        set_app_settings(settings, REDIS_URL=None)
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}


def quota(name: str, limit: int) -> coordination.Quota:
    scope = coordination.organisation_scope()
    return coordination.Quota(f"{scope}:{name}", limit, timedelta(hours=1))


def test_quotas_are_used_all_or_none(store):
    small, large = quota("small", 1), quota("large", 5)
    coordination.use_quotas([small, large])
    with pytest.raises(coordination.QuotaExceeded) as refused:
        coordination.use_quotas([large, small])
    assert refused.value.quota == small
    assert 0 < refused.value.wait <= 3600
    for _ in range(4):  # the refused call counted nothing against ``large``
        coordination.use_quotas([large])
    with pytest.raises(coordination.QuotaExceeded):
        coordination.use_quotas([large])


# --- A3: clicks spend their own share of RATE_LIMIT -----------------------------------------


def book(limiter: coordination.RateLimiter, seconds: float) -> None:
    """Reserve every slot of ``limiter`` for the next ``seconds``: what a queue of
    workers leaves in the store (Redis' clock, as the limiter's script uses)."""
    client = coordination.redis_client()
    now_s, now_us = client.time()
    client.set(limiter.key, str((now_s + seconds) * 1_000_000 + now_us), px=int(seconds * 2000))


def test_the_two_shares_add_up_to_rate_limit(settings):
    set_app_settings(settings, RATE_LIMIT=8, INTERACTIVE_RATE_SHARE=0.25)
    assert coordination.interactive_rate() == 2
    assert coordination.background_rate() == 6
    assert coordination.interactive_rate_limiter(max_wait=1).rate == 2
    assert coordination.rate_limiter().rate == 6
    assert sync.sync_client().throttle.rate == 6
    set_app_settings(settings, INTERACTIVE_RATE_SHARE=0.5)
    assert sync.sync_client().throttle.rate == 4  # the cached client follows the setting


@pytest.fixture
def user_client(sandbox, client):
    client.force_login(UserFactory())
    return client


def test_a_click_spends_the_interactive_share(user_client, sandbox):
    assert user_client.get(PRACTICE).status_code == 302
    interactive = coordination.interactive_rate_limiter(max_wait=1)
    assert coordination.redis_client().get(interactive.key) is not None
    assert coordination.redis_client().get(coordination.rate_limiter().key) is None


def test_a_click_never_waits_behind_a_running_sync_all(user_client, sandbox):
    background = coordination.rate_limiter(max_wait=tasks.MAX_THROTTLE_WAIT)
    book(background, 60)
    with pytest.raises(coordination.Throttled):
        background()  # the syncs are held back a minute...

    started = time.monotonic()
    response = user_client.get(PRACTICE)

    assert response.status_code == 302  # ...the click is not
    assert time.monotonic() - started < 2


def test_a_click_past_the_interactive_share_gets_the_unavailable_page(user_client, sandbox, caplog):
    book(coordination.interactive_rate_limiter(max_wait=1), 60)
    response = user_client.get(PRACTICE)
    assert response.status_code == 503
    assert b"Big Interview is unavailable" in response.content
    assert 55 < int(response["Retry-After"]) <= 61
    assert sandbox.api_calls() == []
    assert "interactive share of RATE_LIMIT" in caplog.text


@pytest.mark.parametrize(
    ("booked", "budget", "status"), [(1, 10, 302), (1, 1, 503)], ids=["waits", "no-time-left"]
)
def test_a_click_waits_for_its_slot_only_within_its_time_budget(
    user_client, sandbox, settings, booked, budget, status
):
    """At most ``SSO_MAX_THROTTLE_WAIT`` (3 s), and never more than half the budget."""
    set_app_settings(settings, SSO_TIME_BUDGET=budget)
    book(coordination.interactive_rate_limiter(max_wait=1), booked)
    started = time.monotonic()
    assert user_client.get(PRACTICE).status_code == status
    waited = time.monotonic() - started
    assert (waited > 0.8) if status == 302 else (waited < 0.5)


def test_a_cached_token_is_used_when_the_interactive_share_is_used_up(user_client, sandbox):
    assert user_client.get(PRACTICE).status_code == 302
    Account.objects.update(sso_token_expires_at=timezone.now() + timedelta(minutes=30))
    book(coordination.interactive_rate_limiter(max_wait=1), 60)
    sandbox.reset_calls()

    response = user_client.get(PRACTICE)

    assert response.status_code == 302
    assert sandbox.api_calls() == []


# --- A4: accounts past their life -------------------------------------------------------------


def past_life() -> timezone.datetime:
    return timezone.now() - timedelta(hours=24, minutes=1)


@pytest.fixture
def accounts(db):
    """One account of each kind the purge and "sync all" must tell apart."""
    expired = AnonymousAccountFactory(remote_created_at=past_life())
    expired_unknown_creation = AnonymousAccountFactory(
        remote_created_at=None, created_at=past_life()
    )
    expired_and_missing = AnonymousAccountFactory(
        remote_created_at=past_life(), remote_missing_at=timezone.now()
    )
    alive = AnonymousAccountFactory(remote_created_at=timezone.now() - timedelta(hours=23))
    regular_old = AccountFactory(remote_created_at=past_life())
    missing = AccountFactory(remote_missing_at=timezone.now())
    return {
        "past_life": {expired.pk, expired_unknown_creation.pk, expired_and_missing.pk},
        "alive": {alive.pk, regular_old.pk},
        "missing": {missing.pk},
    }


def test_the_purge_deletes_anonymous_accounts_past_their_life(accounts):
    expired = Account.objects.get(pk=min(accounts["past_life"]))
    InterviewFactory(account=expired)
    TrackFactory(account=expired)

    assert tasks.purge_anonymous_accounts() == 3

    assert set(Account.objects.values_list("pk", flat=True)) == (
        accounts["alive"] | accounts["missing"]
    )
    assert not Interview.objects.exists() and not Track.objects.exists()
    assert tasks.purge_anonymous_accounts() == 0


def test_the_purge_goes_in_batches(db, monkeypatch):
    monkeypatch.setattr(sso, "PURGE_BATCH_SIZE", 2)
    for _ in range(5):
        AnonymousAccountFactory(remote_created_at=past_life())
    assert sso.purge_anonymous_accounts() == 5
    assert not Account.objects.exists()


def test_sync_all_skips_anonymous_accounts_past_their_life(accounts):
    visited = set(sync_runs.accounts_to_sync().values_list("pk", flat=True))
    assert visited == accounts["alive"]
    # Each left-out account is counted once, whatever the reasons it is left out for.
    assert sync_runs.count_skipped_accounts() == len(accounts["past_life"] | accounts["missing"])


def test_a_sync_all_run_spends_no_call_on_them(sandbox):
    for partner_id in ("alive-1", "alive-2"):
        sandbox.create_user(partner_id)
        AccountFactory(partner_id=partner_id)
    expired = AnonymousAccountFactory(remote_created_at=past_life())

    run = sync_runs.sync_all_inline(get_client(), chunk_size=10)

    assert (run.accounts_total, run.accounts_synced, run.accounts_skipped) == (3, 2, 1)
    assert not [c for c in sandbox.api_calls() if expired.partner_id in c.path]


def test_the_purge_task_is_registered_under_its_documented_name(celery_app):
    assert "biginterview.purge_anonymous_accounts" in celery_app.tasks


def test_a_visitor_whose_account_was_purged_gets_a_new_one(sandbox):
    client = visitor()
    client.get(PRACTICE)
    Account.objects.update(remote_created_at=past_life(), sso_token_expires_at=timezone.now())
    sso.purge_anonymous_accounts()

    assert client.get(PRACTICE).status_code == 302

    assert Account.objects.get().pk == client.session[ANONYMOUS_ACCOUNT_SESSION_KEY]


def test_regular_accounts_with_tokens_are_never_purged(db):
    AccountWithTokenFactory(remote_created_at=past_life(), created_at=past_life())
    assert sso.purge_anonymous_accounts() == 0
