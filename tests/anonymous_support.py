"""Helpers of the anonymous-visitor and error-report tests (not a test module)."""

from __future__ import annotations

from typing import Any

from django_biginterview.views import PRACTICE_OFFERED_SESSION_KEY


def use_own_store(settings: Any, private_redis: Any) -> None:
    """Keep the coordination state (quotas, locks, rate-limit slots) in a Redis of the
    test's own (conftest's ``private_redis``): other test runs share the default one, and
    their fixtures wipe its keys, which would reset a quota in the middle of a test."""
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "REDIS_URL": private_redis.url}


def offered(client: Any) -> Any:
    """The test client after a page of the site offered its visitor the practice link:
    what ``views.offer_anonymous_practice`` (called by the template tags) leaves in the
    session. ``test_anonymous_abuse`` runs the tags themselves."""
    session = client.session
    session[PRACTICE_OFFERED_SESSION_KEY] = True
    session.save()
    return client
