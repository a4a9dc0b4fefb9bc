from urllib.parse import urlsplit

from django.conf import settings

from django_biginterview.testing.factories import AccountFactory, InterviewFactory


def test_factories_build_related_rows(db):
    interview = InterviewFactory()
    assert interview.account.user.email.endswith("@example.com")
    assert AccountFactory().partner_id != interview.account.partner_id


def test_the_test_settings_name_a_host_that_never_resolves() -> None:
    """A test that forgets the sandbox fails closed (``.invalid``, RFC 2606) instead of
    reaching for a real organisation's Big Interview."""
    host = urlsplit(settings.BIGINTERVIEW["BASE_URL"]).hostname
    assert host is not None and host.endswith(".invalid")
