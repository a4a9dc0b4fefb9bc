"""``{% biginterview_progress %}`` and ``{% biginterview_recent_interviews %}``."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.template import Context, Template
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_biginterview.testing.factories import (
    AccountFactory,
    InterviewFactory,
    TrackFactory,
    TrackStepFactory,
)

pytestmark = pytest.mark.django_db


def render(source: str, user) -> str:
    request = RequestFactory().get("/")
    request.user = user
    return Template("{% load biginterview %}" + source).render(Context({"request": request}))


def test_progress_shows_bars_and_steps_linking_through_the_practice_view() -> None:
    account = AccountFactory()
    track = TrackFactory(account=account, title="Mastery <Track>", progress="0.5")
    TrackStepFactory(track=track, step=1, title="Fundamentals", completed=True)
    TrackStepFactory(track=track, step=2, title="Why?", link="/members/curriculum?chapter=6")

    html = render("{% biginterview_progress %}", account.user)

    assert '<progress max="100" value="50"' in html
    assert "Mastery &lt;Track&gt;" in html and "Mastery <Track>" not in html
    assert (
        'href="/biginterview/practice/?redirect_to=%2Fmembers%2Fcurriculum%3Fchapter%3D6"' in html
    )
    assert "biginterview-step-completed" in html


def test_progress_costs_the_same_queries_for_many_tracks_and_steps() -> None:
    small = AccountFactory()
    TrackStepFactory(track=TrackFactory(account=small))
    big = AccountFactory()
    for _ in range(5):
        track = TrackFactory(account=big)
        TrackStepFactory.create_batch(6, track=track)
    with CaptureQueriesContext(connection) as few:
        render("{% biginterview_progress %}", small.user)
    with CaptureQueriesContext(connection) as many:
        render("{% biginterview_progress %}", big.user)
    assert len(many) == len(few) == 3


def test_progress_without_account_or_login_offers_to_start() -> None:
    from django_biginterview.testing.factories import UserFactory

    for user in (AnonymousUser(), UserFactory()):
        html = render("{% biginterview_progress %}", user)
        assert "No practice progress yet." in html
        assert 'href="/biginterview/practice/"' in html


def test_recent_interviews_newest_first_linking_to_reviews() -> None:
    account = AccountFactory()
    now = timezone.now()
    for n in range(4):
        InterviewFactory(
            account=account, title=f"Take {n}", remote_updated_at=now - timedelta(minutes=n)
        )
    InterviewFactory(account=account, title="Gone", remote_updated_at=now, deleted_at=now)

    html = render("{% biginterview_recent_interviews limit=3 %}", account.user)

    assert html.index("Take 0") < html.index("Take 1") < html.index("Take 2")
    assert "Take 3" not in html and "Gone" not in html
    assert "/biginterview/practice/?redirect_to=%2Fmembers%2Fmock_interviews%2F" in html
