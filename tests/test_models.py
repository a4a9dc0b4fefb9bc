"""The models' invariants live in the database: each constraint refuses a bad row.

Every violation runs in its own ``transaction.atomic()`` so the test goes on after the
IntegrityError on PostgreSQL too, and the rows that were refused are shown to be absent.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from django_biginterview.models import Account, Interview, Track, TrackStep, WebhookEvent
from django_biginterview.testing.factories import (
    AccountFactory,
    AccountWithTokenFactory,
    AnonymousAccountFactory,
    InterviewFactory,
    TrackFactory,
    TrackStepFactory,
    UserFactory,
    WebhookEventFactory,
)

pytestmark = pytest.mark.django_db

TOKEN = "19633c68a809dda515d78bbee308012634b73f4142b4ae58d8790c7094c66417"


def refused(create: object) -> None:
    """Run ``create`` and assert the database refuses it, leaving the transaction usable."""
    with pytest.raises(IntegrityError), transaction.atomic():
        create()  # type: ignore[operator]


def test_partner_id_is_unique() -> None:
    AccountFactory(partner_id="abc123")
    refused(lambda: AccountFactory(partner_id="abc123"))
    assert Account.objects.filter(partner_id="abc123").count() == 1


def test_partner_id_is_never_empty() -> None:
    refused(lambda: AccountFactory(partner_id=""))


def test_a_user_has_at_most_one_account() -> None:
    account = AccountFactory()
    refused(lambda: AccountFactory(user=account.user))


def test_a_regular_account_needs_a_user() -> None:
    refused(lambda: Account.objects.create(partner_id="no-user", anonymous=False, user=None))
    assert not Account.objects.filter(partner_id="no-user").exists()
    anonymous = AnonymousAccountFactory()
    assert anonymous.user is None


def test_track_title_is_unique_per_account() -> None:
    track = TrackFactory(title="Fast Track")
    refused(lambda: TrackFactory(account=track.account, title="Fast Track"))
    TrackFactory(title="Fast Track")  # another account may have the same title
    assert Track.objects.filter(title="Fast Track").count() == 2


@pytest.mark.parametrize("progress", [Decimal("-0.0001"), Decimal("1.0001"), Decimal("5")])
def test_track_progress_stays_between_zero_and_one(progress: Decimal) -> None:
    refused(lambda: TrackFactory(progress=progress))
    assert not Track.objects.exists()


@pytest.mark.parametrize("progress", [Decimal("0"), Decimal("0.5"), Decimal("1")])
def test_track_progress_bounds_are_allowed(progress: Decimal) -> None:
    track = TrackFactory(progress=progress)
    track.refresh_from_db()
    assert track.progress == progress
    assert track.percent == round(progress * 100)


def test_step_number_is_unique_per_track() -> None:
    step = TrackStepFactory(step=1)
    refused(lambda: TrackStepFactory(track=step.track, step=1))
    TrackStepFactory(step=1)  # the same number on another track
    assert TrackStep.objects.filter(step=1).count() == 2
    assert str(step) == f"1. {step.title}"


def test_interview_remote_id_is_unique_per_account() -> None:
    interview = InterviewFactory(remote_id=95607)
    refused(lambda: InterviewFactory(account=interview.account, remote_id=95607))
    InterviewFactory(remote_id=95607)  # the same id under another account
    assert Interview.objects.filter(remote_id=95607).count() == 2


def test_webhook_notification_id_is_unique() -> None:
    WebhookEventFactory(remote_id="123456789")
    refused(lambda: WebhookEventFactory(remote_id="123456789"))
    assert WebhookEvent.objects.filter(remote_id="123456789").count() == 1


def test_deleting_a_user_deletes_the_account_and_its_mirror() -> None:
    interview = InterviewFactory()
    TrackStepFactory(track=TrackFactory(account=interview.account))
    interview.account.user.delete()
    assert not Account.objects.exists()
    assert not Interview.objects.exists()
    assert not TrackStep.objects.exists()


@pytest.mark.parametrize("partner_id", ["abc\n", "a b", "x" * 65, "ünï", "a/b"])
def test_full_clean_refuses_a_partner_id_that_breaks_the_rules(partner_id: str) -> None:
    account = Account(partner_id=partner_id, user=UserFactory())
    with pytest.raises(ValidationError) as excinfo:
        account.full_clean()
    assert "partner_id" in excinfo.value.message_dict


def test_full_clean_accepts_a_valid_partner_id() -> None:
    Account(partner_id="aZ0-_" * 12 + "abcd", user=UserFactory()).full_clean()


def test_account_str_and_repr_never_include_the_token() -> None:
    account = AccountWithTokenFactory(partner_id="abc123", sso_token=TOKEN)
    assert str(account) == "abc123"
    assert repr(account) == f"<Account pk={account.pk} partner_id='abc123'>"
    for text in (str(account), repr(account)):
        assert TOKEN not in text


class TestHasFreshToken:
    """``has_fresh_token`` decides whether the SSO redirect may reuse the cached token."""

    def account(
        self, token: str = TOKEN, expires_in: timedelta | None = timedelta(hours=48)
    ) -> Account:
        now = timezone.now()
        return Account(
            partner_id="abc123",
            sso_token=token,
            sso_token_expires_at=None if expires_in is None else now + expires_in,
        )

    def test_a_token_well_within_its_life_is_fresh(self) -> None:
        assert self.account().has_fresh_token(timedelta(hours=1))

    def test_no_token_is_never_fresh(self) -> None:
        assert not self.account(token="").has_fresh_token(timedelta(0))

    def test_a_token_without_expiry_is_never_fresh(self) -> None:
        assert not self.account(expires_in=None).has_fresh_token(timedelta(0))

    def test_an_expired_token_is_not_fresh(self) -> None:
        assert not self.account(expires_in=timedelta(seconds=-1)).has_fresh_token(timedelta(0))

    def test_a_token_inside_the_margin_is_not_fresh(self) -> None:
        account = self.account(expires_in=timedelta(minutes=30))
        assert not account.has_fresh_token(timedelta(hours=1))
        assert account.has_fresh_token(timedelta(minutes=29))

    def test_the_boundary_is_exclusive(self) -> None:
        now = timezone.now()
        account = Account(sso_token=TOKEN, sso_token_expires_at=now + timedelta(hours=1))
        assert not account.has_fresh_token(timedelta(hours=1), now=now)
        assert account.has_fresh_token(timedelta(hours=1), now=now - timedelta(microseconds=1))

    def test_now_is_taken_from_the_argument(self) -> None:
        expires_at = timezone.now() + timedelta(hours=2)
        account = Account(sso_token=TOKEN, sso_token_expires_at=expires_at)
        assert account.has_fresh_token(timedelta(0))
        assert not account.has_fresh_token(timedelta(0), now=expires_at + timedelta(days=1))
