"""Unit tests of the SSO domain functions (``sso.py``), one function at a time.

The API is replaced here by a small recording fake, which fails closed (any call it was
not told to expect is an error). ``test_sso_view.py`` proves the same flow end to end
against the sandbox, a real HTTP server speaking the documented API.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import IntegrityError, connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_biginterview import sso
from django_biginterview.adapter import DefaultAdapter, MissingProfileData, get_adapter
from django_biginterview.client import SSOToken, UserResult
from django_biginterview.exceptions import (
    AuthenticationError,
    LimitReached,
    ServerError,
    TransportError,
    UnexpectedResponse,
)
from django_biginterview.models import Account
from django_biginterview.signals import account_created, token_refreshed
from django_biginterview.testing.factories import (
    AccountFactory,
    AccountWithTokenFactory,
    AnonymousAccountFactory,
    UserFactory,
)
from tests.support.redis import use_own_store
from tests.support.signals import capture

SECRET_TOKEN = "f" * 64


class FakeClient:
    """Answers ``create_or_refresh_user`` / ``create_anonymous_user`` from a script."""

    def __init__(self, *answers: UserResult | Exception) -> None:
        self.answers = list(answers)
        self.calls: list[tuple[str, dict]] = []

    def _answer(self, name: str, **kwargs) -> UserResult:
        self.calls.append((name, kwargs))
        if not self.answers:
            raise AssertionError(f"unexpected API call {name}")
        answer = self.answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def create_or_refresh_user(self, partner_id: str, **profile: str) -> UserResult:
        return self._answer("create_or_refresh_user", partner_id=partner_id, **profile)

    def create_anonymous_user(self) -> UserResult:
        return self._answer("create_anonymous_user")


def user_result(
    partner_id: str = "p",
    *,
    token: str = SECRET_TOKEN,
    hours: float = 48,
    created: bool = True,
    anonymous: bool = False,
    created_at: datetime | None = None,
) -> UserResult:
    return UserResult(
        partner_id=partner_id,
        anonymous=anonymous,
        created_at=created_at or timezone.now(),
        token=SSOToken(token=token, expires_at=timezone.now() + timedelta(hours=hours)),
        created=created,
    )


# --- redirect_to -----------------------------------------------------------------------

SAFE_REDIRECTS = [
    "/members/dashboard",
    "/members/curriculum?chapter=6",
    "/members/mock_interviews/95607/review",
    "/members/mock_interviews/interview_info/52",
    "/members/search?q=a%20b",
    "/members/curriculum?chapter=6#top",
]

ATTACKS = [
    "",
    None,
    "/",  # not the member area: Big Interview's own /sso/ paths live beside it
    "https://evil.com",
    "http://evil.com/members/dashboard",
    "HTTPS://evil.com",
    "javascript:alert(1)",
    "evil.com",
    "members/dashboard",
    "//evil.com",
    "///evil.com",
    "////evil.com",
    "/\\evil.com",
    "\\\\evil.com",
    "/\\/evil.com",
    "\\/evil.com",
    "%2F%2Fevil.com",
    "%2f%2fevil.com",
    "/%2F%2Fevil.com",
    "/%2f/evil.com",
    "/%5Cevil.com",
    "/%5cevil.com",
    "/%252F%252Fevil.com",
    "/%25252F%25252Fevil.com",
    "/%%32%66evil.com",
    "/\tevil.com",
    "\t//evil.com",
    "/\n/evil.com",
    "/members\r\nSet-Cookie: a=b",
    "/members%0d%0aSet-Cookie:%20a=b",
    "/%09/evil.com",
    "/%00",
    " /members/dashboard",
    "/members/ dashboard",
    "/members/dashboard\x7f",
    "\uff0fevil.com",
    "/\uff0fevil.com",
    "/members/caf\u00e9",
    "/members/x//y",
    "/members?next=https://evil.com",
    "/" + "a" * 3000,
]


@pytest.mark.parametrize("value", SAFE_REDIRECTS)
def test_safe_redirect_paths_are_forwarded_unchanged(value):
    assert sso.clean_redirect_to(value) == value


@pytest.mark.parametrize("value", ATTACKS)
def test_anything_but_a_plain_path_is_dropped(value):
    assert sso.clean_redirect_to(value) is None


def test_default_redirect_comes_from_settings(settings):
    assert sso.default_redirect_to() == "/members/dashboard"
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "DEFAULT_REDIRECT_TO": "/members/tracks"}
    assert sso.default_redirect_to() == "/members/tracks"
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "DEFAULT_REDIRECT_TO": None}
    assert sso.default_redirect_to() is None


# --- build_login_url ---------------------------------------------------------------------


def test_login_url_encodes_parameters_as_the_contract_shows(settings):
    url = sso.build_login_url(
        SSOToken(token="abc123", expires_at=timezone.now()),
        redirect_to="/members/curriculum?chapter=6",
        return_url="https://google.com/",
    )
    assert url == (
        "https://acme.biginterview.invalid/sso/login?token=abc123"
        "&redirect_to=%2Fmembers%2Fcurriculum%3Fchapter%3D6"
        "&return_url=https%3A%2F%2Fgoogle.com%2F"
    )


def test_login_url_leaves_out_missing_parameters_and_follows_settings(settings):
    settings.BIGINTERVIEW = {
        **settings.BIGINTERVIEW,
        "BASE_URL": "http://127.0.0.1:9999/",
        "SSO_LOGIN_PATH": "/partner/sso",
    }
    assert sso.build_login_url("t0k") == "http://127.0.0.1:9999/partner/sso?token=t0k"


def test_login_url_token_cannot_smuggle_parameters():
    url = sso.build_login_url("a&redirect_to=//evil.com")
    assert parse_qs(urlsplit(url).query) == {"token": ["a&redirect_to=//evil.com"]}


# --- get_or_create_account ---------------------------------------------------------------


def test_first_use_creates_the_account_with_the_adapter_partner_id(
    db, django_capture_on_commit_callbacks
):
    user = UserFactory()
    with capture(account_created) as received, django_capture_on_commit_callbacks(execute=True):
        account = sso.get_or_create_account(user)
    assert account.partner_id == get_adapter().partner_id_for_user(user)
    assert account.user == user
    assert not account.anonymous
    assert len(received) == 1
    assert received[0]["account"] == account
    assert received[0]["user"] == user
    assert sso.get_or_create_account(user) == account
    assert Account.objects.count() == 1


def test_user_without_email_gets_no_account(db):
    user = UserFactory(email="")
    with pytest.raises(MissingProfileData):
        sso.get_or_create_account(user)
    assert not Account.objects.exists()


def test_losing_the_creation_race_returns_the_winners_row(db, monkeypatch):
    """The row appears between our lookup and our insert: IntegrityError → the winner's row.

    (The real race, with concurrent requests on PostgreSQL, is in test_sso_concurrency.)
    """
    user = UserFactory()
    winner = Account.objects.create(user=user, partner_id="winner-id")
    real_find_account = sso.find_account
    lookups = []

    def find_account_that_misses_once(user):
        lookups.append(user)
        return None if len(lookups) == 1 else real_find_account(user)

    monkeypatch.setattr(sso, "find_account", find_account_that_misses_once)
    account = sso.get_or_create_account(user)
    assert account.pk == winner.pk
    assert account.partner_id == "winner-id"
    assert len(lookups) == 2
    assert Account.objects.count() == 1


def test_partner_id_taken_by_another_user_is_not_hidden(db, settings, caplog):
    settings.BIGINTERVIEW = {
        **settings.BIGINTERVIEW,
        "PARTNER_ID_FUNCTION": "tests.test_sso_unit.constant_partner_id",
    }
    AccountFactory(partner_id="same-for-all")
    with pytest.raises(IntegrityError):
        sso.get_or_create_account(UserFactory())
    assert "PARTNER_ID_FUNCTION" in caplog.text


def constant_partner_id(user) -> str:
    return "same-for-all"


# --- ensure_fresh_token ------------------------------------------------------------------


def test_fresh_token_is_reused_without_query_or_call(db):
    account = AccountWithTokenFactory()
    client = FakeClient()
    with CaptureQueriesContext(connection) as queries:
        token = sso.ensure_fresh_token(account, client)
    assert token.token == account.sso_token
    assert client.calls == []
    assert len(queries) == 0


def test_token_inside_the_margin_is_refreshed_once_and_cached(
    db, django_capture_on_commit_callbacks
):
    account = AccountWithTokenFactory(sso_token_expires_at=timezone.now() + timedelta(minutes=30))
    client = FakeClient(user_result(account.partner_id, token="new" * 10, created=False))
    with capture(token_refreshed) as received, django_capture_on_commit_callbacks(execute=True):
        token = sso.ensure_fresh_token(account, client)
    assert token.token == "new" * 10
    assert [name for name, _ in client.calls] == ["create_or_refresh_user"]
    assert client.calls[0][1]["partner_id"] == account.partner_id
    account.refresh_from_db()
    assert account.sso_token == "new" * 10
    assert account.sso_token_expires_at == token.expires_at
    assert len(received) == 1 and received[0]["created_remotely"] is False
    # The next call is served from the cache.
    assert sso.ensure_fresh_token(account, FakeClient()).token == "new" * 10


def test_margin_setting_decides_what_is_fresh(db, settings):
    account = AccountWithTokenFactory(sso_token_expires_at=timezone.now() + timedelta(hours=3))
    sso.ensure_fresh_token(account, FakeClient())  # 3 h left > 1 h default margin
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "TOKEN_REFRESH_MARGIN": 4 * 3600}
    client = FakeClient(user_result(account.partner_id, token="x" * 64))
    assert sso.ensure_fresh_token(account, client).token == "x" * 64
    assert len(client.calls) == 1


def test_a_concurrent_refresh_seen_under_the_lock_is_reused(db):
    account = AccountWithTokenFactory(sso_token_expires_at=timezone.now() - timedelta(hours=1))
    stale_copy = Account.objects.get(pk=account.pk)
    Account.objects.filter(pk=account.pk).update(
        sso_token="fresh" * 8, sso_token_expires_at=timezone.now() + timedelta(hours=40)
    )
    token = sso.ensure_fresh_token(stale_copy, FakeClient())
    assert token.token == "fresh" * 8
    assert stale_copy.sso_token == "fresh" * 8


@pytest.mark.parametrize(
    "error",
    [
        TransportError("Could not reach Big Interview"),
        ServerError("Big Interview refused", status=503),
        AuthenticationError("Big Interview refused", status=401),
    ],
)
def test_failed_refresh_falls_back_to_a_token_that_has_not_expired(db, caplog, error):
    account = AccountWithTokenFactory(
        sso_token=SECRET_TOKEN, sso_token_expires_at=timezone.now() + timedelta(minutes=20)
    )
    client = FakeClient(error)
    with caplog.at_level(logging.INFO, logger="django_biginterview"):
        token = sso.ensure_fresh_token(account, client)
    assert token.token == SECRET_TOKEN
    assert len(client.calls) == 1
    expected_level = "ERROR" if isinstance(error, AuthenticationError) else "WARNING"
    assert [r.levelname for r in caplog.records] == [expected_level]
    assert account.partner_id in caplog.text
    assert SECRET_TOKEN not in caplog.text


def test_failed_refresh_of_an_expired_token_raises(db):
    account = AccountWithTokenFactory(sso_token_expires_at=timezone.now() - timedelta(seconds=1))
    with pytest.raises(ServerError):
        sso.ensure_fresh_token(account, FakeClient(ServerError("down", status=502)))
    account.refresh_from_db()
    assert account.sso_token_expires_at < timezone.now()


def test_refresh_sends_the_adapter_profile(db):
    user = UserFactory(first_name="Zoë", last_name="", email="zoe@example.com")
    account = AccountFactory(user=user, remote_created_at=None)
    client = FakeClient(user_result(account.partner_id))
    sso.ensure_fresh_token(account, client)
    assert client.calls[0][1] == {
        "partner_id": account.partner_id,
        "first_name": "Zoë",
        "last_name": "-",
        "email": "zoe@example.com",
    }
    account.refresh_from_db()
    assert account.remote_created_at is not None


def test_existing_remote_user_without_email_can_still_refresh(db):
    account = AccountFactory(user=UserFactory(email=""))
    client = FakeClient(user_result(account.partner_id, created=False))
    sso.ensure_fresh_token(account, client)
    assert client.calls[0][1]["email"] == ""


class NamingAdapter(DefaultAdapter):
    fallback_first_name = "Learner"
    fallback_last_name = "Anon"


def test_the_stand_in_profile_of_an_existing_user_comes_from_the_adapter(db, settings):
    settings.BIGINTERVIEW = {
        **settings.BIGINTERVIEW,
        "ADAPTER": "tests.test_sso_unit.NamingAdapter",
    }
    account = AccountFactory(user=UserFactory(first_name="Raw", last_name="Fields", email=""))
    client = FakeClient(user_result(account.partner_id, created=False))
    sso.ensure_fresh_token(account, client)
    sent = client.calls[0][1]
    assert (sent["first_name"], sent["last_name"], sent["email"]) == ("Learner", "Anon", "")


def test_new_remote_user_without_email_is_refused_before_any_call(db):
    account = AccountFactory(user=UserFactory(email=""), remote_created_at=None)
    with pytest.raises(MissingProfileData):
        sso.ensure_fresh_token(account, FakeClient())


def test_a_fallback_token_about_to_expire_is_not_handed_out(db):
    account = AccountWithTokenFactory(sso_token_expires_at=timezone.now() + timedelta(seconds=2))
    with pytest.raises(ServerError):
        sso.ensure_fresh_token(account, FakeClient(ServerError("down", status=503)))


def test_the_minimum_life_follows_its_setting(db, settings):
    account = AccountWithTokenFactory(sso_token_expires_at=timezone.now() + timedelta(minutes=5))
    assert sso.ensure_fresh_token(account, FakeClient(ServerError("down", status=503)))
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "SSO_MIN_TOKEN_LIFE": 600}
    with pytest.raises(ServerError):
        sso.ensure_fresh_token(account, FakeClient(ServerError("down", status=503)))


def test_a_cached_token_under_the_minimum_life_is_never_fresh(db, settings):
    """Even with no refresh margin at all, a token about to expire is refreshed."""
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "TOKEN_REFRESH_MARGIN": 0}
    account = AccountWithTokenFactory(sso_token_expires_at=timezone.now() + timedelta(seconds=10))
    client = FakeClient(user_result(account.partner_id, token="n" * 64, created=False))
    assert sso.ensure_fresh_token(account, client).token == "n" * 64
    assert len(client.calls) == 1


def test_a_new_token_that_expires_too_soon_is_refused_and_not_stored(db):
    account = AccountWithTokenFactory(sso_token_expires_at=timezone.now() - timedelta(hours=1))
    before = account.sso_token
    client = FakeClient(user_result(account.partner_id, token="s" * 64, hours=0.01))
    with pytest.raises(UnexpectedResponse):
        sso.ensure_fresh_token(account, client)
    account.refresh_from_db()
    assert account.sso_token == before


def test_a_refused_interactive_slot_falls_back_to_the_cached_token(db):
    account = AccountWithTokenFactory(sso_token_expires_at=timezone.now() + timedelta(minutes=20))
    client = FakeClient(LimitReached("used up", retry_after=5))
    assert sso.ensure_fresh_token(account, client).token == account.sso_token


# --- practice_token_for_user ---------------------------------------------------------------


def test_failed_first_remote_creation_leaves_no_local_account(db):
    user = UserFactory()
    with pytest.raises(TransportError):
        sso.practice_token_for_user(user, FakeClient(TransportError("down")))
    assert not Account.objects.exists()


def test_practice_token_creates_account_and_token_in_one_go(db):
    user = UserFactory()
    client = FakeClient(user_result("ignored", token="t" * 64))
    token = sso.practice_token_for_user(user, client)
    account = Account.objects.get(user=user)
    assert token.token == account.sso_token == "t" * 64
    assert client.calls[0][1]["partner_id"] == account.partner_id


# --- anonymous visitors ----------------------------------------------------------------


@pytest.fixture
def visitor(settings, private_redis):
    """A visitor, whose quotas and lock live in a coordination store of the test's own."""
    use_own_store(settings, private_redis)
    return sso.AnonymousVisitor.for_session(uuid.uuid4().hex)


def test_anonymous_visitor_gets_a_new_account_capped_at_24_hours(
    db, visitor, django_capture_on_commit_callbacks
):
    created_at = timezone.now() - timedelta(hours=1)  # token: 48 h left; account: 23 h
    client = FakeClient(user_result("anon_abc123", anonymous=True, created_at=created_at))
    with django_capture_on_commit_callbacks() as callbacks:
        account, token = sso.get_anonymous_token(None, client, visitor)
    assert len(callbacks) == 2  # account_created and token_refreshed
    assert account.anonymous and account.user is None
    assert account.partner_id == "anon_abc123"
    assert token.expires_at == created_at + timedelta(hours=24)
    assert account.sso_token_expires_at == token.expires_at


def test_anonymous_account_is_reused_while_fresh(db, visitor):
    account = AnonymousAccountFactory(
        sso_token="a" * 64, sso_token_expires_at=timezone.now() + timedelta(hours=20)
    )
    again, token = sso.get_anonymous_token(account.pk, FakeClient(), visitor)
    assert again == account
    assert token.token == "a" * 64


@pytest.mark.parametrize("session_value", ["garbage", 10**9, None])
def test_unknown_anonymous_reference_creates_a_new_account(db, visitor, session_value):
    client = FakeClient(user_result("anon_new", anonymous=True))
    account, _ = sso.get_anonymous_token(session_value, client, visitor)
    assert account.partner_id == "anon_new"


def test_regular_account_pk_is_never_taken_as_anonymous(db, visitor):
    regular = AccountWithTokenFactory()
    client = FakeClient(user_result("anon_new", anonymous=True))
    account, token = sso.get_anonymous_token(regular.pk, client, visitor)
    assert account.partner_id == "anon_new"
    assert token.token != regular.sso_token


def test_stale_anonymous_account_is_replaced_but_kept_when_the_api_fails(db, visitor):
    account = AnonymousAccountFactory(
        sso_token="a" * 64, sso_token_expires_at=timezone.now() + timedelta(minutes=10)
    )
    again, token = sso.get_anonymous_token(
        account.pk, FakeClient(ServerError("x", status=503)), visitor
    )
    assert again == account and token.token == "a" * 64
    replaced, token = sso.get_anonymous_token(
        account.pk, FakeClient(user_result("anon_next", anonymous=True)), visitor
    )
    assert replaced.partner_id == "anon_next"


def test_anonymous_accounts_are_not_refreshed_through_the_user_endpoint(db):
    account = AnonymousAccountFactory()
    with pytest.raises(ValueError):
        sso.ensure_fresh_token(account, FakeClient())


@pytest.mark.parametrize("holder", ["anonymous", "regular"])
def test_a_partner_id_already_held_here_is_refused_not_reused(db, visitor, caplog, holder):
    """Big Interview hands out an id a local account has: storing it would fail on the
    unique key (an unhandled 500 before), and taking over the row would give its old
    visitor this visitor's token."""
    taken = (
        AnonymousAccountFactory(partner_id="anon_taken", sso_token="o" * 64)
        if holder == "anonymous"
        else AccountWithTokenFactory(partner_id="anon_taken")
    )
    token_before = taken.sso_token
    client = FakeClient(user_result("anon_taken", anonymous=True, token="n" * 64))
    with pytest.raises(UnexpectedResponse) as raised:
        sso.get_anonymous_token(None, client, visitor)
    assert raised.value.__context__ is None  # the IntegrityError is not chained
    assert Account.objects.count() == 1
    taken.refresh_from_db()
    assert taken.sso_token == token_before
    assert "anon_taken" in caplog.text and "n" * 64 not in caplog.text


def test_an_anonymous_token_about_to_expire_is_not_handed_out(db, visitor):
    account = AnonymousAccountFactory(
        sso_token="a" * 64, sso_token_expires_at=timezone.now() + timedelta(seconds=2)
    )
    with pytest.raises(ServerError):
        sso.get_anonymous_token(account.pk, FakeClient(ServerError("x", status=503)), visitor)


def test_an_anonymous_account_near_the_end_of_its_life_is_refused(db, visitor):
    """Created remotely 23 h 59 min ago: its token is capped one minute from now."""
    created_at = timezone.now() - timedelta(hours=23, minutes=59, seconds=30)
    client = FakeClient(user_result("anon_old", anonymous=True, created_at=created_at))
    with pytest.raises(UnexpectedResponse):
        sso.get_anonymous_token(None, client, visitor)
    assert not Account.objects.exists()


def test_a_used_up_quota_keeps_the_visitors_usable_account(db, visitor, settings):
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "ANONYMOUS_ACCOUNTS_PER_SESSION": 1}
    sso.get_anonymous_token(None, FakeClient(user_result("anon_1", anonymous=True)), visitor)
    stale = Account.objects.get()
    Account.objects.update(sso_token_expires_at=timezone.now() + timedelta(minutes=10))

    again, _ = sso.get_anonymous_token(stale.pk, FakeClient(), visitor)
    assert again == stale  # the quota refused a new one; the old one still works
    Account.objects.update(sso_token_expires_at=timezone.now())
    with pytest.raises(LimitReached):
        sso.get_anonymous_token(stale.pk, FakeClient(), visitor)
