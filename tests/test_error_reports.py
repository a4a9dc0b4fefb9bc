"""Error reports of the practice path never show an SSO token or the API key.

Each test forces an exception at one point of a real click (the sandbox answers over
HTTP; the database fails through a trigger, not a mock) and builds the report Django
builds for its admins, ``ExceptionReporter(request, *exc_info)``, as text and as HTML,
the latter with every frame's local variables. With ``DEBUG`` off (what admins get by
email) nothing secret may appear; with ``DEBUG`` on (the debug page) the masked values
(``client.Secret``, also what the ``sso_token`` field gives back from the database) keep
the token and the key out as well, except in the database driver's raw row while the ORM
loads an account (see ``test_a_failure_while_loading_the_account``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import django
import pytest
from django.core import mail
from django.db import connection
from django.db.models.signals import post_init
from django.http import HttpRequest, HttpResponse
from django.test import Client
from django.utils import timezone
from django.views.debug import ExceptionReporter

from django_biginterview.models import Account
from django_biginterview.testing.factories import UserFactory
from tests.support.app_settings import set_app_settings
from tests.support.redis import use_own_store
from tests.support.signals import connected
from tests.support.web import PRACTICE, offered

DEBUG_MODES = pytest.mark.parametrize("debug", [False, True], ids=["debug-off", "debug-on"])


@pytest.fixture
def client() -> Client:
    """A client that gets the 500 page (and keeps the exception) instead of raising."""
    return Client(raise_request_exception=False)


@pytest.fixture
def user_client(db, client: Client, biginterview_sandbox) -> Client:
    client.force_login(UserFactory())
    return client


@pytest.fixture
def anonymous_client(db, client: Client, settings, biginterview_sandbox, private_redis) -> Client:
    set_app_settings(settings, ANONYMOUS_USERS=True)
    use_own_store(settings, private_redis)
    return offered(client)


def report(response: HttpResponse, settings, *, debug: bool) -> str:
    """The text and the HTML report of the exception that made ``response`` a 500."""
    assert response.status_code == 500, response.content[:300]
    settings.DEBUG = debug
    reporter = ExceptionReporter(response.wsgi_request, *response.exc_info)
    return reporter.get_traceback_text() + reporter.get_traceback_html()


def secrets(sandbox, settings) -> list[str]:
    """Every token the sandbox ever handed out in this test, and the API key."""
    tokens = [user["token"] for user in sandbox.state.users.values() if user["token"]]
    assert tokens
    return [*tokens, settings.BIGINTERVIEW["API_KEY"]]


def assert_no_secret(text: str, secret_values: list[str]) -> None:
    for secret in secret_values:
        assert secret not in text


def fail_writes(statement: str) -> None:
    """Make every ``statement`` (INSERT or UPDATE) on the account table fail, as a
    database does on a constraint or a trigger of its own; undone with the test's
    transaction."""
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            cursor.execute(
                f"CREATE TRIGGER bi_forced_failure BEFORE {statement} ON biginterview_account "
                "BEGIN SELECT RAISE(ABORT, 'forced failure'); END"
            )
        else:
            cursor.execute(
                "CREATE FUNCTION bi_forced_failure() RETURNS trigger AS $$ BEGIN "
                "RAISE EXCEPTION 'forced failure'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER bi_forced_failure BEFORE {statement} ON biginterview_account "
                "FOR EACH ROW EXECUTE FUNCTION bi_forced_failure()"
            )


@DEBUG_MODES
def test_a_database_failure_storing_a_refreshed_token(
    user_client, biginterview_sandbox, settings, debug
):
    assert user_client.get(PRACTICE).status_code == 302
    Account.objects.update(sso_token_expires_at=timezone.now())
    fail_writes("UPDATE")

    text = report(user_client.get(PRACTICE), settings, debug=debug)

    assert "forced failure" in text and "_store_token" in text
    assert_no_secret(text, secrets(biginterview_sandbox, settings))


@DEBUG_MODES
def test_a_database_failure_storing_a_new_anonymous_account(
    anonymous_client, biginterview_sandbox, settings, debug
):
    fail_writes("INSERT")

    text = report(anonymous_client.get(PRACTICE), settings, debug=debug)

    assert "forced failure" in text and "_store_anonymous_account" in text
    assert_no_secret(text, secrets(biginterview_sandbox, settings))


class FailOnTheWayOut:
    """A host's middleware that fails after the view answered."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        raise RuntimeError("forced failure")
        return response  # pragma: no cover


@DEBUG_MODES
def test_a_failure_after_the_redirect_was_built(user_client, biginterview_sandbox, settings, debug):
    settings.MIDDLEWARE = [f"{__name__}.FailOnTheWayOut", *settings.MIDDLEWARE]

    text = report(user_client.get(PRACTICE), settings, debug=debug)

    assert "forced failure" in text and "_LoginRedirect" in text
    assert_no_secret(text, secrets(biginterview_sandbox, settings))


@DEBUG_MODES
def test_a_failure_building_the_client_shows_no_api_key(db, client, settings, debug):
    set_app_settings(settings, BASE_URL="ftp://acme.biginterview.com")
    client.force_login(UserFactory())

    text = report(client.get(PRACTICE), settings, debug=debug)

    assert "base_url must be an http(s) origin" in text
    assert settings.BIGINTERVIEW["API_KEY"] not in text


def test_a_failure_while_loading_the_account(user_client, biginterview_sandbox, settings):
    """The database driver's raw row holds the token in the clear while the ORM turns it
    into an ``Account``: with ``DEBUG`` off, ``sensitive_variables`` on the view hides
    every frame's locals."""
    assert user_client.get(PRACTICE).status_code == 302

    def fail_on_load(instance: Account, **kwargs: object) -> None:
        if instance.sso_token:
            raise RuntimeError("forced failure")

    with connected(post_init, fail_on_load, sender=Account):
        response = user_client.get(PRACTICE)

    text = report(response, settings, debug=False)
    assert "forced failure" in text and "from_db" in text
    assert_no_secret(text, secrets(biginterview_sandbox, settings))


@pytest.mark.filterwarnings("ignore:Django 2028 will not have a default mailer")
def test_the_admins_email_shows_no_token(user_client, biginterview_sandbox, settings):
    # Django 6 takes addresses; 5.2, (name, address) pairs.
    settings.ADMINS = (
        ["ops@example.com"] if django.VERSION >= (6,) else [("Ops", "ops@example.com")]
    )
    assert user_client.get(PRACTICE).status_code == 302
    Account.objects.update(sso_token_expires_at=timezone.now() - timedelta(seconds=1))
    fail_writes("UPDATE")

    assert user_client.get(PRACTICE).status_code == 500

    [email] = mail.outbox
    assert "forced failure" in email.body
    assert_no_secret(email.body, secrets(biginterview_sandbox, settings))


def test_the_token_comes_back_from_the_database_masked(db) -> None:
    """What a frame holding a fetched account's token shows, in Sentry or on the debug
    page: ``SecretCharField`` gives the value back as a ``Secret``."""
    from django_biginterview.testing.factories import AccountFactory

    AccountFactory(sso_token="a" * 64)
    token = Account.objects.get().sso_token
    assert token == "a" * 64 and repr(token) == "'********'"
    assert repr(Account.objects.values_list("sso_token", flat=True).get()) == "'********'"
