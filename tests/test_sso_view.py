"""The "Practice interviews" view end to end, against the sandbox (a real local HTTP server
speaking the documented API), counting the API calls each click makes.
"""

from __future__ import annotations

import logging
import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from django.template import Context, Template
from django.urls import reverse
from django.utils import timezone

from django_biginterview import sync
from django_biginterview.client import get_client
from django_biginterview.models import Account
from django_biginterview.signals import account_created, token_refreshed
from django_biginterview.testing.factories import UserFactory
from django_biginterview.views import ANONYMOUS_ACCOUNT_SESSION_KEY
from tests.support.app_settings import set_app_settings
from tests.support.procfile import free_port
from tests.support.sandbox import user_calls
from tests.support.signals import capture
from tests.support.web import PRACTICE, login_params, offered

LOGIN_REQUIRED_MIDDLEWARE = "django.contrib.auth.middleware.LoginRequiredMiddleware"


def land(location: str) -> requests.Response:
    """Follow the login URL like a browser and return the page Big Interview shows."""
    with requests.Session() as browser:
        return browser.get(location, timeout=5)


def shown_partner_id(page: requests.Response) -> str | None:
    match = re.search(r'id="member-partner-id">([^<]+)<', page.text)
    return match.group(1) if match else None


@pytest.fixture
def user(db):
    return UserFactory(first_name="Ada", last_name="Lovelace", email="ada@example.com")


@pytest.fixture
def logged_in(client, user):
    client.force_login(user)
    return client


@pytest.fixture
def closed_port() -> int:
    return free_port()  # free: nothing listens there


# --- the happy path ----------------------------------------------------------------------


def test_first_click_creates_the_account_and_logs_the_user_in(
    logged_in, user, biginterview_sandbox, django_capture_on_commit_callbacks
):
    sandbox = biginterview_sandbox
    with (
        capture(account_created) as created,
        capture(token_refreshed) as refreshed,
        django_capture_on_commit_callbacks(execute=True),
    ):
        response = logged_in.get(PRACTICE)

    account = Account.objects.get(user=user)
    assert response["Location"].startswith(f"{sandbox.url}/sso/login?token=")
    params = login_params(response)
    assert params == {"token": account.sso_token, "redirect_to": "/members/dashboard"}
    assert "no-store" in response["Cache-Control"]
    assert len(user_calls(sandbox)) == 1
    remote = sandbox.get_user(account.partner_id)
    assert (remote["first_name"], remote["last_name"], remote["email"]) == (
        "Ada",
        "Lovelace",
        "ada@example.com",
    )
    assert remote["token"] == account.sso_token
    assert len(created) == 1 and created[0]["user"] == user
    assert len(refreshed) == 1 and refreshed[0]["created_remotely"] is True

    page = land(response["Location"])
    assert page.status_code == 200
    assert urlsplit(page.url).path == "/members/dashboard"
    assert shown_partner_id(page) == account.partner_id


def test_second_click_with_a_fresh_token_calls_nothing(
    logged_in, user, biginterview_sandbox, django_assert_max_num_queries
):
    first = login_params(logged_in.get(PRACTICE))
    biginterview_sandbox.reset_calls()
    with django_assert_max_num_queries(4):
        second = login_params(logged_in.get(PRACTICE))
    assert biginterview_sandbox.api_calls() == []
    assert second["token"] == first["token"]


def test_expired_token_is_refreshed_with_exactly_one_call(logged_in, user, biginterview_sandbox):
    first = login_params(logged_in.get(PRACTICE))
    account = Account.objects.get(user=user)
    biginterview_sandbox.expire_token(account.partner_id)
    Account.objects.filter(pk=account.pk).update(sso_token_expires_at=timezone.now())
    biginterview_sandbox.reset_calls()

    response = logged_in.get(PRACTICE)
    params = login_params(response)
    assert [c.status for c in user_calls(biginterview_sandbox, account.partner_id)] == [200]
    assert params["token"] != first["token"]
    account.refresh_from_db()
    assert account.sso_token == params["token"]
    assert shown_partner_id(land(response["Location"])) == account.partner_id
    # The old token no longer logs anyone in.
    stale = land(response["Location"].replace(params["token"], first["token"]))
    assert shown_partner_id(stale) is None


def test_token_inside_the_refresh_margin_is_refreshed(logged_in, user, biginterview_sandbox):
    login_params(logged_in.get(PRACTICE))
    Account.objects.filter(user=user).update(
        sso_token_expires_at=timezone.now() + timedelta(minutes=30)
    )
    biginterview_sandbox.reset_calls()
    login_params(logged_in.get(PRACTICE))
    assert len(user_calls(biginterview_sandbox)) == 1
    assert Account.objects.get(user=user).sso_token_expires_at > timezone.now() + timedelta(
        hours=47
    )


# --- redirect_to and return_url -----------------------------------------------------------


def test_redirect_to_is_forwarded_url_encoded_and_lands_there(logged_in, biginterview_sandbox):
    response = logged_in.get(PRACTICE, {"redirect_to": "/members/curriculum?chapter=6"})
    assert "&redirect_to=%2Fmembers%2Fcurriculum%3Fchapter%3D6" in response["Location"]
    page = land(response["Location"])
    assert page.status_code == 200
    assert urlsplit(page.url).path == "/members/curriculum"
    assert parse_qs(urlsplit(page.url).query) == {"chapter": ["6"]}


@pytest.mark.parametrize(
    "attack",
    [
        "https://evil.example/",
        "//evil.example",
        "/\\evil.example",
        "/%2F%2Fevil.example",
        "%2F%2Fevil.example",
        "/%5Cevil.example",
        "/\t/evil.example",
        "/\r\n/evil.example",
        "\\\\evil.example",
    ],
)
def test_unsafe_redirect_to_falls_back_to_the_default_landing_page(
    logged_in, biginterview_sandbox, attack
):
    response = logged_in.get(PRACTICE, {"redirect_to": attack})
    assert login_params(response)["redirect_to"] == "/members/dashboard"
    assert "evil" not in response["Location"]


def test_encoded_attack_in_the_raw_query_string_is_dropped(logged_in, biginterview_sandbox):
    response = logged_in.get(f"{PRACTICE}?redirect_to=%2F%252F%252Fevil.example")
    assert login_params(response)["redirect_to"] == "/members/dashboard"


def test_landing_page_and_return_url_come_from_settings_only(
    logged_in, biginterview_sandbox, settings
):
    set_app_settings(settings, DEFAULT_REDIRECT_TO="/members/curriculum", RETURN_URL="/bye/")
    response = logged_in.get(PRACTICE, {"return_url": "https://evil.example/"})
    params = login_params(response)
    assert params["redirect_to"] == "/members/curriculum"
    assert params["return_url"] == "http://testserver/bye/"
    assert "evil" not in response["Location"]

    set_app_settings(settings, RETURN_URL="https://careers.example.org/goodbye")
    assert login_params(logged_in.get(PRACTICE))["return_url"] == (
        "https://careers.example.org/goodbye"
    )


def test_logout_from_big_interview_returns_to_the_configured_url(
    logged_in, biginterview_sandbox, settings
):
    set_app_settings(settings, RETURN_URL="https://careers.example.org/goodbye")
    location = logged_in.get(PRACTICE)["Location"]
    with requests.Session() as browser:
        assert browser.get(location, timeout=5).status_code == 200
        logout = browser.post(f"{biginterview_sandbox.url}/sso/logout", allow_redirects=False)
    assert logout.headers["Location"] == "https://careers.example.org/goodbye"


# --- profiles -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("first_name", "last_name", "sent_first", "sent_last"),
    [
        ("", "", "jo", "-"),
        ("Zoë", "Łukasiewicz-李", "Zoë", "Łukasiewicz-李"),
        ("José", "", "José", "-"),
    ],
)
def test_missing_or_non_ascii_names_still_work(
    client, db, biginterview_sandbox, first_name, last_name, sent_first, sent_last
):
    user = UserFactory(username="jo", first_name=first_name, last_name=last_name)
    client.force_login(user)
    response = client.get(PRACTICE)
    partner_id = Account.objects.get(user=user).partner_id
    remote = biginterview_sandbox.get_user(partner_id)
    assert (remote["first_name"], remote["last_name"]) == (sent_first, sent_last)
    assert shown_partner_id(land(response["Location"])) == partner_id


def test_user_without_email_gets_a_clear_page_and_nothing_is_created(
    client, db, biginterview_sandbox
):
    client.force_login(UserFactory(email=""))
    response = client.get(PRACTICE)
    assert response.status_code == 409
    assert b"email address" in response.content
    assert biginterview_sandbox.api_calls() == []
    assert not Account.objects.exists()


def test_profile_refused_by_big_interview_gets_its_page_and_a_log(
    client, db, biginterview_sandbox, caplog
):
    client.force_login(UserFactory(email="not-an-email"))
    with caplog.at_level(logging.WARNING, logger="django_biginterview"):
        response = client.get(PRACTICE)
    assert response.status_code == 409
    assert b"refused your profile" in response.content
    assert b"email" in response.content
    assert [c.status for c in user_calls(biginterview_sandbox)] == [422]
    assert "email" in caplog.text
    assert not Account.objects.exists()


# --- anonymous visitors -------------------------------------------------------------------


@pytest.mark.parametrize("login_required_middleware", [False, True])
def test_anonymous_visitor_is_sent_to_login_when_the_feature_is_off(
    client, db, settings, biginterview_sandbox, login_required_middleware
):
    if login_required_middleware:
        settings.MIDDLEWARE = [*settings.MIDDLEWARE, LOGIN_REQUIRED_MIDDLEWARE]
    response = client.get(PRACTICE, {"redirect_to": "/members/curriculum?chapter=6"})
    assert response.status_code == 302
    assert response["Location"] == (
        "/accounts/login/?next=/biginterview/practice/%3Fredirect_to%3D%252Fmembers"
        "%252Fcurriculum%253Fchapter%253D6"
    )
    assert biginterview_sandbox.api_calls() == []


@pytest.mark.parametrize("login_required_middleware", [False, True])
def test_anonymous_visitor_gets_one_account_kept_in_the_session(
    client, db, settings, biginterview_sandbox, login_required_middleware
):
    if login_required_middleware:
        settings.MIDDLEWARE = [*settings.MIDDLEWARE, LOGIN_REQUIRED_MIDDLEWARE]
    set_app_settings(settings, ANONYMOUS_USERS=True)
    offered(client)

    first = client.get(PRACTICE)
    account = Account.objects.get()
    assert account.anonymous and account.user is None
    assert client.session[ANONYMOUS_ACCOUNT_SESSION_KEY] == account.pk
    assert login_params(first)["token"] == account.sso_token
    assert account.sso_token_expires_at <= timezone.now() + timedelta(hours=24)
    assert len(biginterview_sandbox.api_calls(method="POST", path_prefix="/api/users/")) == 1
    assert shown_partner_id(land(first["Location"])) == account.partner_id

    biginterview_sandbox.reset_calls()
    second = client.get(PRACTICE)
    assert login_params(second)["token"] == account.sso_token
    assert biginterview_sandbox.api_calls() == []
    assert Account.objects.count() == 1


def test_anonymous_account_past_its_life_is_replaced(client, db, settings, biginterview_sandbox):
    set_app_settings(settings, ANONYMOUS_USERS=True)
    offered(client).get(PRACTICE)
    old = Account.objects.get()
    Account.objects.filter(pk=old.pk).update(sso_token_expires_at=timezone.now())
    response = client.get(PRACTICE)
    new = Account.objects.exclude(pk=old.pk).get()
    assert client.session[ANONYMOUS_ACCOUNT_SESSION_KEY] == new.pk
    assert shown_partner_id(land(response["Location"])) == new.partner_id


def test_logged_in_user_never_gets_the_sessions_anonymous_account(
    client, user, settings, biginterview_sandbox
):
    set_app_settings(settings, ANONYMOUS_USERS=True)
    offered(client).get(PRACTICE)
    anonymous = Account.objects.get()
    client.force_login(user)
    params = login_params(client.get(PRACTICE))
    assert params["token"] == Account.objects.get(user=user).sso_token != anonymous.sso_token


def test_anonymous_visitor_during_an_outage_gets_the_friendly_page(
    client, db, settings, biginterview_sandbox
):
    set_app_settings(settings, ANONYMOUS_USERS=True)
    biginterview_sandbox.set_faults(error_rate=1.0, error_status=503)
    response = offered(client).get(PRACTICE)
    assert response.status_code == 503
    assert ANONYMOUS_ACCOUNT_SESSION_KEY not in client.session
    assert not Account.objects.exists()


def test_anonymous_users_not_enabled_by_big_interview_are_logged_as_such(
    client, db, settings, biginterview_sandbox_factory, caplog
):
    biginterview_sandbox_factory(anonymous_users=False)  # the service answers 403
    set_app_settings(settings, ANONYMOUS_USERS=True)
    with caplog.at_level(logging.WARNING, logger="django_biginterview"):
        response = offered(client).get(PRACTICE)
    assert response.status_code == 503
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and "anonymous users" in errors[0]
    assert "API key" not in caplog.text


def test_a_click_during_an_outage_retries_at_most_once(logged_in, biginterview_sandbox, settings):
    """The configured MAX_RETRIES suits the sync; a waiting user gets one retry at most."""
    set_app_settings(settings, MAX_RETRIES=5, RETRY_BACKOFF=0.01)
    biginterview_sandbox.set_faults(error_rate=1.0, error_status=503)
    response = logged_in.get(PRACTICE)
    assert response.status_code == 503
    assert len(user_calls(biginterview_sandbox)) == 2


def test_logged_in_user_passes_login_required_middleware(logged_in, settings, biginterview_sandbox):
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, LOGIN_REQUIRED_MIDDLEWARE]
    assert login_params(logged_in.get(PRACTICE))["token"]


# --- when things go wrong ----------------------------------------------------------------


@pytest.mark.parametrize(
    "faults",
    [
        {"error_rate": 1.0, "error_status": 503},
        {"error_rate": 1.0, "error_status": 500},
        {"error_rate": 1.0, "error_status": 502},
        {"rate_limit": True, "retry_after": 120},
    ],
    ids=["503", "500", "502", "429"],
)
def test_outage_gives_the_friendly_page(logged_in, biginterview_sandbox, caplog, faults):
    biginterview_sandbox.set_faults(**faults)
    with caplog.at_level(logging.WARNING, logger="django_biginterview"):
        response = logged_in.get(PRACTICE)
    assert response.status_code == 503
    assert b"Big Interview is unavailable" in response.content
    assert "no-store" in response["Cache-Control"]
    assert biginterview_sandbox.api_calls()  # it did try
    assert "unavailable" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    if "rate_limit" in faults:
        assert int(response["Retry-After"]) >= 120


def test_a_user_big_interview_lost_is_recreated_on_the_next_click(
    logged_in, user, biginterview_sandbox_factory
):
    """Big Interview loses the user (here: a new, empty sandbox) and a sync gets its 404:
    the cached token died with the user, so the next click recreates them instead of
    sending the visitor to a login that fails."""
    biginterview_sandbox_factory()
    first = login_params(logged_in.get(PRACTICE))
    account = Account.objects.get(user=user)
    sandbox = biginterview_sandbox_factory()
    sync.sync_account_safely(account, get_client())
    account.refresh_from_db()
    assert account.remote_missing_at is not None
    assert account.sso_token == first["token"]  # still cached, not yet expired

    response = logged_in.get(PRACTICE)

    params = login_params(response)
    assert [c.status for c in user_calls(sandbox, account.partner_id)] == [201]
    assert params["token"] != first["token"]
    account.refresh_from_db()
    assert (account.sso_token, account.remote_missing_at) == (params["token"], None)
    assert shown_partner_id(land(response["Location"])) == account.partner_id


def test_no_cached_token_is_offered_for_a_lost_user_when_big_interview_is_down(
    logged_in, user, biginterview_sandbox
):
    login_params(logged_in.get(PRACTICE))
    Account.objects.filter(user=user).update(remote_missing_at=timezone.now())
    biginterview_sandbox.set_faults(error_rate=1.0, error_status=503)
    assert logged_in.get(PRACTICE).status_code == 503


def test_a_maintenance_retry_after_reaches_the_visitor(logged_in, settings, httpserver):
    """Big Interview (here a plain HTTP server) answers 503 with ``Retry-After``: no retry
    blocks the click, and the page tells the browser when to come back."""
    httpserver.expect_request(re.compile(r"/api/users/[^/]+"), method="POST").respond_with_data(
        "<html>Down for maintenance</html>", status=503, headers={"Retry-After": "600"}
    )
    set_app_settings(settings, BASE_URL=httpserver.url_for("/").rstrip("/"))
    response = logged_in.get(PRACTICE)
    assert response.status_code == 503
    assert b"Big Interview is unavailable" in response.content
    assert int(response["Retry-After"]) >= 600
    assert len(httpserver.log) == 1


def test_slow_big_interview_gives_the_friendly_page(logged_in, biginterview_sandbox, settings):
    set_app_settings(settings, READ_TIMEOUT=0.2, MAX_RETRIES=0)
    biginterview_sandbox.set_faults(latency=1.0)
    response = logged_in.get(PRACTICE)
    assert response.status_code == 503
    assert b"Big Interview is unavailable" in response.content


def test_unreachable_big_interview_gives_the_friendly_page(logged_in, settings, closed_port):
    set_app_settings(settings, BASE_URL=f"http://127.0.0.1:{closed_port}")
    response = logged_in.get(PRACTICE)
    assert response.status_code == 503
    assert not Account.objects.exists()


@pytest.mark.parametrize("error_status", [503, 401])
def test_token_inside_the_margin_is_used_when_the_refresh_fails(
    logged_in, user, biginterview_sandbox, settings, caplog, error_status
):
    first = login_params(logged_in.get(PRACTICE))
    account = Account.objects.get(user=user)
    Account.objects.filter(pk=account.pk).update(
        sso_token_expires_at=timezone.now() + timedelta(minutes=30)
    )
    if error_status == 401:
        set_app_settings(settings, API_KEY="0" * 32)
    else:
        biginterview_sandbox.set_faults(error_rate=1.0, error_status=error_status)
    biginterview_sandbox.reset_calls()
    with caplog.at_level(logging.WARNING, logger="django_biginterview"):
        response = logged_in.get(PRACTICE)
    assert login_params(response)["token"] == first["token"]
    assert user_calls(biginterview_sandbox)  # it tried to refresh
    assert account.partner_id in caplog.text
    assert first["token"] not in caplog.text
    # The cached token still logs the user in.
    assert shown_partner_id(land(response["Location"])) == account.partner_id


@pytest.mark.parametrize(
    ("seconds_left", "min_life", "status"),
    [(2, None, 503), (300, None, 302), (300, 600, 503)],
    ids=["2s-left", "5min-left", "5min-left-under-10min-minimum"],
)
def test_a_cached_token_about_to_expire_is_never_handed_out(
    logged_in, user, biginterview_sandbox, settings, seconds_left, min_life, status
):
    """When the refresh fails, the cached token is used only with ``SSO_MIN_TOKEN_LIFE``
    (60 s by default) left: the visitor still has to follow the redirect."""
    if min_life is not None:
        set_app_settings(settings, SSO_MIN_TOKEN_LIFE=min_life)
    first = login_params(logged_in.get(PRACTICE))
    Account.objects.filter(user=user).update(
        sso_token_expires_at=timezone.now() + timedelta(seconds=seconds_left)
    )
    biginterview_sandbox.set_faults(error_rate=1.0, error_status=503)
    response = logged_in.get(PRACTICE)
    assert response.status_code == status
    if status == 503:
        assert first["token"].encode() not in response.content
        assert b"Big Interview is unavailable" in response.content


def test_expired_token_and_outage_gives_the_friendly_page(logged_in, user, biginterview_sandbox):
    logged_in.get(PRACTICE)
    Account.objects.filter(user=user).update(sso_token_expires_at=timezone.now())
    biginterview_sandbox.set_faults(error_rate=1.0, error_status=503)
    assert logged_in.get(PRACTICE).status_code == 503


def test_rejected_api_key_gives_the_page_and_an_error_log(
    logged_in, biginterview_sandbox, settings, caplog
):
    wrong_key = "0123456789abcdef0123456789abcdef"
    set_app_settings(settings, API_KEY=wrong_key)
    with caplog.at_level(logging.DEBUG):
        response = logged_in.get(PRACTICE)
    assert response.status_code == 503
    assert b"Big Interview is unavailable" in response.content
    assert [c.status for c in biginterview_sandbox.api_calls()] == [401]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert errors and "API_KEY" in errors[0].getMessage()
    assert wrong_key not in caplog.text
    assert wrong_key.encode() not in response.content


def test_host_project_can_override_the_unavailable_page(logged_in, biginterview_sandbox, settings):
    settings.TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "OPTIONS": {
                "loaders": [
                    (
                        "django.template.loaders.locmem.Loader",
                        {"biginterview/unavailable.html": "Our own outage page"},
                    ),
                    "django.template.loaders.app_directories.Loader",
                ]
            },
        }
    ]
    biginterview_sandbox.set_faults(error_rate=1.0, error_status=503)
    response = logged_in.get(PRACTICE)
    assert response.status_code == 503
    assert response.content == b"Our own outage page"


# --- secrets ---------------------------------------------------------------------------------


def test_token_and_key_appear_only_in_the_location(
    logged_in, user, biginterview_sandbox, settings, caplog
):
    with caplog.at_level(logging.DEBUG):
        first = logged_in.get(PRACTICE)  # create
        Account.objects.filter(user=user).update(
            sso_token_expires_at=timezone.now() + timedelta(minutes=5)
        )
        biginterview_sandbox.set_faults(error_rate=1.0, error_status=503)
        fallback = logged_in.get(PRACTICE)  # refresh fails, cached token used
        Account.objects.filter(user=user).update(sso_token_expires_at=timezone.now())
        outage = logged_in.get(PRACTICE)  # refresh fails, nothing usable
        biginterview_sandbox.clear_faults()
        refreshed = logged_in.get(PRACTICE)  # refresh succeeds
    tokens = {login_params(r)["token"] for r in (first, fallback, refreshed)}
    assert len(tokens) == 2
    secrets = [*tokens, settings.BIGINTERVIEW["API_KEY"]]
    for response in (first, fallback, outage, refreshed):
        for secret in secrets:
            assert secret.encode() not in response.content
    assert outage.status_code == 503
    for secret in secrets:
        assert secret not in caplog.text
        assert all(secret not in str(r.args) for r in caplog.records)
    assert "unavailable" in caplog.text  # the failures were logged


# --- template tags -------------------------------------------------------------------------


def render(source: str, **context) -> str:
    return Template("{% load biginterview %}" + source).render(Context(context))


def test_practice_link_tag_renders_one_line_link():
    html = render("{% biginterview_practice_link %}")
    assert html == f'<a href="{reverse("biginterview:practice")}">Practice interviews</a>'


def test_practice_link_tag_takes_redirect_to_label_and_class():
    html = render(
        '{% biginterview_practice_link redirect_to="/members/curriculum?chapter=6" '
        'label="Chapter 6" css_class="nav-link" %}'
    )
    assert html == (
        '<a href="/biginterview/practice/?redirect_to=%2Fmembers%2Fcurriculum%3Fchapter%3D6" '
        'class="nav-link">Chapter 6</a>'
    )


def test_practice_link_tag_escapes_its_label():
    html = render("{% biginterview_practice_link label=label %}", label="<b>Go</b>")
    assert "&lt;b&gt;Go&lt;/b&gt;" in html


def test_practice_url_tag_and_the_view_agree(logged_in, biginterview_sandbox):
    url = render(
        "{% biginterview_practice_url redirect_to=link as u %}{{ u|safe }}",
        link="/members/mock_interviews/95607/review",
    )
    assert (
        url == "/biginterview/practice/?redirect_to=%2Fmembers%2Fmock_interviews%2F95607%2Freview"
    )
    response = logged_in.get(url)
    assert login_params(response)["redirect_to"] == "/members/mock_interviews/95607/review"


def test_practice_url_tag_without_redirect_to():
    assert render("{% biginterview_practice_url %}") == "/biginterview/practice/"
