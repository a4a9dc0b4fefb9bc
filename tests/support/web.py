"""The site as a member or visitor reaches it through Django's test client: the practice
link, a logged-in client, the session a page leaves, the login redirect's parameters."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

from django.test import Client

from django_biginterview.views import PRACTICE_OFFERED_SESSION_KEY

#: The practice link (SSO into Big Interview), as the test URLconf mounts it.
PRACTICE = "/biginterview/practice/"


def logged_in(user: Any) -> Client:
    """A new test client logged in as ``user``."""
    client = Client()
    client.force_login(user)
    return client


def offered(client: Client) -> Client:
    """The test client after a page of the site offered its visitor the practice link:
    what ``views.offer_anonymous_practice`` (called by the template tags) leaves in the
    session. ``test_anonymous_abuse`` runs the tags themselves."""
    session = client.session
    session[PRACTICE_OFFERED_SESSION_KEY] = True
    session.save()
    return client


def login_params(response: Any) -> dict[str, str]:
    """The query of the login URL a practice-link response redirects to (it must be a 302)."""
    assert response.status_code == 302, response.content[:500]
    return {
        key: values[0] for key, values in parse_qs(urlsplit(response["Location"]).query).items()
    }
