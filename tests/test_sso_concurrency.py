"""Simultaneous clicks by one user: real concurrent HTTP requests against ``live_server``.

Each request runs in its own server thread with its own database connection. On
PostgreSQL the clicks really overlap (the sandbox answers slowly to widen the window), so
the row lock and the unique-key race are exercised; SQLite serialises writers, so there
the same clicks are sent one after another and the same invariants are asserted.
"""

from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.conf import settings as django_settings
from django.db import connection
from django.utils import timezone

from django_biginterview.models import Account
from django_biginterview.testing.factories import UserFactory
from tests.support.concurrency import run_concurrently
from tests.support.redis import use_own_store
from tests.support.sandbox import user_calls
from tests.support.web import offered

CLICKS = 6


def token_of(response: requests.Response) -> str:
    return parse_qs(urlsplit(response.headers["Location"]).query)["token"][0]


def click_all_at_once(url: str, session_cookie: str) -> list[requests.Response]:
    def click() -> requests.Response:
        return requests.get(
            url,
            cookies={django_settings.SESSION_COOKIE_NAME: session_cookie},
            allow_redirects=False,
            timeout=20,
        )

    if connection.vendor == "postgresql":
        return run_concurrently(click, CLICKS)
    return [click() for _ in range(CLICKS)]


@pytest.fixture
def user_session(transactional_db, client):
    user = UserFactory()
    client.force_login(user)
    return user, client.cookies[django_settings.SESSION_COOKIE_NAME].value


def test_simultaneous_first_clicks_make_one_account_and_one_remote_create(
    live_server, biginterview_sandbox, user_session
):
    user, cookie = user_session
    biginterview_sandbox.set_faults(latency=0.3)

    responses = click_all_at_once(f"{live_server.url}/biginterview/practice/", cookie)

    assert [r.status_code for r in responses] == [302] * CLICKS
    account = Account.objects.get(user=user)
    assert Account.objects.count() == 1
    assert [(c.path, c.status) for c in user_calls(biginterview_sandbox)] == [
        (f"/api/users/{account.partner_id}", 201)
    ]
    assert {token_of(r) for r in responses} == {account.sso_token}


def test_simultaneous_clicks_with_an_expired_token_refresh_it_once(
    live_server, biginterview_sandbox, user_session
):
    user, cookie = user_session
    first = requests.get(
        f"{live_server.url}/biginterview/practice/",
        cookies={django_settings.SESSION_COOKIE_NAME: cookie},
        allow_redirects=False,
        timeout=10,
    )
    assert first.status_code == 302
    Account.objects.filter(user=user).update(sso_token_expires_at=timezone.now())
    biginterview_sandbox.reset_calls()
    biginterview_sandbox.set_faults(latency=0.3)

    responses = click_all_at_once(f"{live_server.url}/biginterview/practice/", cookie)

    assert [r.status_code for r in responses] == [302] * CLICKS
    account = Account.objects.get(user=user)
    assert [c.status for c in user_calls(biginterview_sandbox)] == [200]
    assert {token_of(r) for r in responses} == {account.sso_token}
    assert account.sso_token != token_of(first)
    assert account.sso_token_expires_at > timezone.now() + timedelta(hours=47)


@pytest.fixture
def anonymous_session(transactional_db, client, settings, biginterview_sandbox, private_redis):
    """The session cookie of a logged-out visitor a page of the site offered the link."""
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "ANONYMOUS_USERS": True}
    use_own_store(settings, private_redis)
    offered(client)
    return client.cookies[django_settings.SESSION_COOKIE_NAME].value


def test_simultaneous_clicks_of_one_anonymous_session_make_one_account(
    live_server, biginterview_sandbox, anonymous_session
):
    """The clicks wait for each other on the session's lock (no row to lock yet), and
    the later ones take the account the first one made."""
    biginterview_sandbox.set_faults(latency=0.3)

    responses = click_all_at_once(f"{live_server.url}/biginterview/practice/", anonymous_session)

    assert [r.status_code for r in responses] == [302] * CLICKS
    account = Account.objects.get()
    assert account.anonymous
    calls = biginterview_sandbox.api_calls(method="POST", path_prefix="/api/users/anonymous")
    assert [c.status for c in calls] == [201]
    assert {token_of(r) for r in responses} == {account.sso_token}
