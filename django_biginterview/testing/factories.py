"""factory-boy factories for every model. Requires the ``test`` extra (factory-boy)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal
from typing import Any

import factory
from django.contrib.auth import get_user_model
from django.utils import timezone

from ..models import Account, Interview, SyncRun, Track, TrackStep, WebhookEvent


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ("username",)

    username = factory.Sequence(lambda n: f"user{n}")
    email = factory.LazyAttribute(lambda u: f"{u.username}@example.com")
    first_name = "Ada"
    last_name = "Lovelace"
    password = factory.django.Password("password")


class AccountFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Account

    user: Any = factory.SubFactory(UserFactory)
    partner_id = factory.Sequence(lambda n: f"partner-{n}")
    anonymous = False
    remote_created_at = factory.LazyFunction(timezone.now)


class AnonymousAccountFactory(AccountFactory):
    user = None
    anonymous = True
    partner_id = factory.Sequence(lambda n: f"anon_{n}")


class AccountWithTokenFactory(AccountFactory):
    sso_token = factory.Sequence(lambda n: f"{n:064x}")
    sso_token_expires_at = factory.LazyFunction(lambda: timezone.now() + timedelta(hours=48))


class TrackFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Track

    account = factory.SubFactory(AccountFactory)
    title = factory.Sequence(lambda n: f"Track {n}")
    progress = Decimal("0.5")
    position = factory.Sequence(int)


class TrackStepFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = TrackStep

    track = factory.SubFactory(TrackFactory)
    step = factory.Sequence(lambda n: n + 1)
    title = factory.Sequence(lambda n: f"Step {n}")
    link = factory.LazyAttribute(lambda s: f"/members/curriculum?chapter={s.step}")
    completed = False


class InterviewFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Interview

    account = factory.SubFactory(AccountFactory)
    remote_id = factory.Sequence(lambda n: 90000 + n)
    title = "Top 10 Questions"
    interviewer_name = "Jordan"
    category = "Top 10 Questions: 1"
    completed = False
    remote_created_at = factory.LazyFunction(timezone.now)
    remote_updated_at = factory.LazyFunction(timezone.now)
    review_path = factory.LazyAttribute(lambda i: f"/members/mock_interviews/{i.remote_id}/review")
    retake_path = "/members/mock_interviews/interview_info/52"


class WebhookEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = WebhookEvent

    remote_id = factory.Sequence(lambda n: str(100000 + n))
    event_name = "interview.created"
    partner_id = "abc123"
    api_type = "Interview"
    api_id = "95607"
    payload = factory.LazyAttribute(
        lambda e: {
            "webhook": {
                "id": e.remote_id,
                "event_name": e.event_name,
                "partner_id": e.partner_id,
                "api_id": e.api_id,
                "api_type": e.api_type,
                "api_object": None,
            }
        }
    )


class SyncRunFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SyncRun
