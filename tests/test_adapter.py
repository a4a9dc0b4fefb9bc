"""The default adapter: an opaque, stable partner_id and a profile Big Interview accepts."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model

from django_biginterview.adapter import DefaultAdapter, MissingProfileData, get_adapter
from django_biginterview.testing.factories import UserFactory
from django_biginterview.validators import is_valid_partner_id


def project_partner_id(user) -> str:
    return f"emp-{user.username}"


class ShoutingAdapter(DefaultAdapter):
    def partner_id_for_user(self, user) -> str:
        return "FIXED-ID"


@pytest.fixture
def adapter() -> DefaultAdapter:
    return DefaultAdapter()


def test_partner_id_is_valid_stable_and_per_user(db, adapter):
    ada, bob = UserFactory(), UserFactory()
    first = adapter.partner_id_for_user(ada)
    assert is_valid_partner_id(first)
    assert first == adapter.partner_id_for_user(ada)
    assert first != adapter.partner_id_for_user(bob)


def test_partner_id_is_an_opaque_digest_not_the_pk_or_email(db, adapter):
    user = UserFactory(username="leaky", email="leaky@example.com")
    partner_id = adapter.partner_id_for_user(user)
    assert re.fullmatch(r"u-[0-9a-f]{40}", partner_id)
    assert "leaky" not in partner_id
    assert partner_id != f"u-{user.pk}"


def test_partner_id_does_not_move_when_the_email_or_name_changes(db, adapter):
    user = UserFactory()
    before = adapter.partner_id_for_user(user)
    user.email, user.first_name, user.username = "new@example.com", "New", "renamed"
    user.save()
    assert adapter.partner_id_for_user(user) == before


def test_partner_id_depends_on_the_configured_secret(db, adapter, settings):
    user = UserFactory()
    before = adapter.partner_id_for_user(user)
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "PARTNER_ID_SECRET": "another-secret"}
    assert adapter.partner_id_for_user(user) != before


def test_partner_id_function_setting_overrides_the_default(db, adapter, settings):
    settings.BIGINTERVIEW = {
        **settings.BIGINTERVIEW,
        "PARTNER_ID_FUNCTION": "tests.test_adapter.project_partner_id",
    }
    assert adapter.partner_id_for_user(UserFactory(username="jdoe")) == "emp-jdoe"


def test_partner_id_function_result_is_validated(db, adapter, settings):
    from django_biginterview.exceptions import InvalidPartnerId

    settings.BIGINTERVIEW = {
        **settings.BIGINTERVIEW,
        "PARTNER_ID_FUNCTION": "tests.test_adapter.project_partner_id",
    }
    with pytest.raises(InvalidPartnerId):
        adapter.partner_id_for_user(UserFactory(username="has space"))


def test_adapter_setting_swaps_the_class(settings):
    settings.BIGINTERVIEW = {
        **settings.BIGINTERVIEW,
        "ADAPTER": "tests.test_adapter.ShoutingAdapter",
    }
    assert isinstance(get_adapter(), ShoutingAdapter)
    assert get_adapter().partner_id_for_user(object()) == "FIXED-ID"


def test_profile_sends_names_and_email_as_given(adapter):
    user = get_user_model()(
        username="ada", first_name="Ada", last_name="Lovelace", email="ada@example.com"
    )
    profile = adapter.profile_for_user(user)
    assert (profile.first_name, profile.last_name, profile.email) == (
        "Ada",
        "Lovelace",
        "ada@example.com",
    )


def test_profile_keeps_non_ascii_names(adapter):
    user = get_user_model()(
        username="z", first_name="Zoë", last_name="Łukasiewicz-李", email="zoe@example.com"
    )
    profile = adapter.profile_for_user(user)
    assert profile.first_name == "Zoë"
    assert profile.last_name == "Łukasiewicz-李"


def test_profile_falls_back_when_names_are_missing(adapter):
    user = get_user_model()(
        username="jdoe@example.com", first_name="  ", last_name="", email="jdoe@example.com"
    )
    profile = adapter.profile_for_user(user)
    assert profile.first_name == "jdoe"
    assert profile.last_name == DefaultAdapter.fallback_last_name
    assert profile.first_name and profile.last_name


def test_profile_truncates_very_long_names(adapter):
    user = get_user_model()(
        username="x", first_name="A" * 300, last_name="B" * 300, email="x@example.com"
    )
    profile = adapter.profile_for_user(user)
    assert len(profile.first_name) == 100
    assert len(profile.last_name) == 100


@pytest.mark.parametrize("email", ["", "   ", None])
def test_profile_without_email_names_what_is_missing(adapter, email):
    user = get_user_model()(username="x", first_name="A", last_name="B", email=email)
    with pytest.raises(MissingProfileData) as info:
        adapter.profile_for_user(user)
    assert info.value.missing == ["email"]
