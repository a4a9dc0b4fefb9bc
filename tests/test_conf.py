"""``settings.BIGINTERVIEW`` is read through ``conf.app_settings`` when used, never frozen."""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.test import override_settings

from django_biginterview import conf, settings_reference
from django_biginterview.adapter import DefaultAdapter, get_adapter
from django_biginterview.conf import DEFAULTS, app_settings
from django_biginterview.exceptions import InvalidSetting, MissingSetting

REPO = Path(__file__).resolve().parent.parent


class CustomAdapter(DefaultAdapter):
    pass


def test_override_settings_takes_effect_immediately() -> None:
    assert app_settings.BASE_URL == "https://acme.biginterview.invalid"  # tests/settings.py
    with override_settings(BIGINTERVIEW={"BASE_URL": "https://other.biginterview.com"}):
        assert app_settings.BASE_URL == "https://other.biginterview.com"
        assert DEFAULTS["READ_TIMEOUT"] == app_settings.READ_TIMEOUT
    assert app_settings.BASE_URL == "https://acme.biginterview.invalid"
    assert app_settings.MAX_RETRIES == 2  # tests/settings.py, not the default


def test_every_default_applies_when_biginterview_is_not_configured(settings: Any) -> None:
    del settings.BIGINTERVIEW
    for name, default in DEFAULTS.items():
        assert app_settings.get(name) == default, name
    assert app_settings.CONNECT_TIMEOUT == 3.05
    assert timedelta(hours=1) == app_settings.TOKEN_REFRESH_MARGIN
    assert app_settings.WEBHOOK_KEYS == []
    assert app_settings.SSO_LOGIN_PATH == "/sso/login"
    assert app_settings.DEFAULT_REDIRECT_TO == "/members/dashboard"


@pytest.mark.parametrize("name", ["BASE_URL", "API_KEY"])
@pytest.mark.parametrize("value", [None, "", "absent"])
def test_a_missing_required_setting_names_the_key(settings: Any, name: str, value: Any) -> None:
    configured = dict(settings.BIGINTERVIEW)
    if value == "absent":
        del configured[name]
    else:
        configured[name] = value
    settings.BIGINTERVIEW = configured

    with pytest.raises(MissingSetting, match=rf"BIGINTERVIEW\['{name}'\] is not set") as excinfo:
        getattr(app_settings, name)
    assert isinstance(excinfo.value, ImproperlyConfigured)  # nothing swallows it


def test_require_refuses_empty_values(settings: Any) -> None:
    settings.BIGINTERVIEW = {"WEBHOOK_KEYS": [], "RETURN_URL": ""}
    for name in ("WEBHOOK_KEYS", "RETURN_URL", "REDIS_URL"):
        with pytest.raises(MissingSetting, match=name):
            app_settings.require(name)


def test_base_url_loses_its_trailing_slash(settings: Any) -> None:
    settings.BIGINTERVIEW = {"BASE_URL": "https://acme.biginterview.com/"}
    assert app_settings.BASE_URL == "https://acme.biginterview.com"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(hours=3), timedelta(hours=3)),
        (7200, timedelta(hours=2)),
        (90.5, timedelta(seconds=90.5)),
        (0, timedelta(0)),
    ],
)
@pytest.mark.parametrize(
    "name",
    ["TOKEN_REFRESH_MARGIN", "WEBHOOK_STUCK_AFTER", "WEBHOOK_RETENTION", "SYNC_LOCK_TIMEOUT"],
)
def test_durations_accept_timedelta_or_seconds(
    settings: Any, name: str, value: Any, expected: timedelta
) -> None:
    settings.BIGINTERVIEW = {name: value}
    assert app_settings.get(name) == expected
    assert getattr(app_settings, name) == expected


@pytest.mark.parametrize("value", ["2 hours", True, [60], {"hours": 2}])
def test_a_duration_of_the_wrong_kind_names_the_key(settings: Any, value: Any) -> None:
    settings.BIGINTERVIEW = {"WEBHOOK_RETENTION": value}
    with pytest.raises(InvalidSetting, match=r"BIGINTERVIEW\['WEBHOOK_RETENTION'\]"):
        app_settings.WEBHOOK_RETENTION  # noqa: B018


def test_webhook_keys_is_a_list_without_empty_keys(settings: Any) -> None:
    settings.BIGINTERVIEW = {"WEBHOOK_KEYS": ["new", "", "old"]}
    assert app_settings.WEBHOOK_KEYS == ["new", "old"]
    settings.BIGINTERVIEW = {"WEBHOOK_KEYS": "only-one"}
    assert app_settings.WEBHOOK_KEYS == ["only-one"]
    settings.BIGINTERVIEW = {"WEBHOOK_KEYS": None}
    assert app_settings.WEBHOOK_KEYS == []


def test_mutating_a_returned_default_does_not_change_the_default(settings: Any) -> None:
    del settings.BIGINTERVIEW
    app_settings.get("WEBHOOK_KEYS").append("leaked")
    assert app_settings.get("WEBHOOK_KEYS") == []
    assert DEFAULTS["WEBHOOK_KEYS"] == []


def test_unknown_names_are_attribute_errors() -> None:
    with pytest.raises(AttributeError, match="NO_SUCH_SETTING"):
        app_settings.NO_SUCH_SETTING  # noqa: B018
    with pytest.raises(AttributeError):
        app_settings.get("NO_SUCH_SETTING")
    with pytest.raises(AttributeError):
        app_settings.base_url  # noqa: B018 - settings are upper case only
    assert not hasattr(app_settings, "_private")


def test_biginterview_that_is_not_a_dict_is_refused_clearly(settings: Any) -> None:
    settings.BIGINTERVIEW = ["BASE_URL", "https://acme.biginterview.com"]
    with pytest.raises(InvalidSetting, match="BIGINTERVIEW must be a dict"):
        app_settings.READ_TIMEOUT  # noqa: B018


def test_adapter_is_the_configured_class_read_at_use_time(settings: Any) -> None:
    assert type(get_adapter()) is DefaultAdapter
    settings.BIGINTERVIEW = {"ADAPTER": f"{__name__}.CustomAdapter"}
    assert type(get_adapter()) is CustomAdapter


def test_every_key_reads_as_its_declared_type(settings: Any) -> None:
    del settings.BIGINTERVIEW
    kinds = {
        conf.Number: float,
        conf.Count: int,
        conf.Duration: timedelta,
        conf.Flag: bool,
        conf.KeyList: list,
        conf.Text: str,
        conf.Choice: str,
        conf.ImportPath: str,
    }
    for declaration in conf.declarations():
        if declaration.required:
            continue
        value = getattr(app_settings, declaration.name)
        expected = kinds.get(type(declaration))
        if expected is None:  # the optional kinds
            assert value is None or isinstance(value, str), declaration.name
        else:
            assert type(value) is expected, declaration.name


def test_a_whole_number_given_as_a_float_reads_as_an_int(settings: Any) -> None:
    settings.BIGINTERVIEW = {"WEBHOOK_MAX_ATTEMPTS": 4.0, "CONNECT_TIMEOUT": 2}
    assert app_settings.WEBHOOK_MAX_ATTEMPTS == 4
    assert type(app_settings.WEBHOOK_MAX_ATTEMPTS) is int
    assert type(app_settings.CONNECT_TIMEOUT) is float


@pytest.mark.parametrize(
    ("name", "value", "requirement"),
    [
        ("WEBHOOK_MAX_ATTEMPTS", 2.5, "a whole number, above 0"),
        ("WEBHOOK_MAX_BODY_SIZE", "256k", "a whole number (bytes), above 0"),
        ("READ_TIMEOUT", 0, "a number (seconds), above 0"),
        ("INTERACTIVE_RATE_SHARE", 1, "a number, above 0 and below 1"),
        ("RATE_LIMIT", -1, "a number (per second), zero or more"),
        ("ANONYMOUS_USERS", "yes", "True or False"),
        ("API_SCHEMA_ACCESS", "everyone", "one of 'authenticated', 'staff', 'public'"),
    ],
)
def test_a_refused_value_says_what_the_key_must_be(
    settings: Any, name: str, value: Any, requirement: str
) -> None:
    settings.BIGINTERVIEW = {name: value}
    with pytest.raises(InvalidSetting) as excinfo:
        getattr(app_settings, name)
    assert f"BIGINTERVIEW['{name}'] must be {requirement}" in str(excinfo.value)


def test_the_committed_settings_reference_is_what_the_declarations_render() -> None:
    committed = (REPO / "docs" / "settings.md").read_text()
    assert committed == settings_reference.render(), (
        "docs/settings.md is stale: python -m django_biginterview.settings_reference "
        "> docs/settings.md"
    )


def test_the_committed_checks_page_is_what_the_checks_docstring_renders() -> None:
    committed = (REPO / "docs" / "checks.md").read_text()
    assert committed == settings_reference.render_checks(), (
        "docs/checks.md is stale: python -m django_biginterview.settings_reference checks "
        "> docs/checks.md"
    )
    assert "`biginterview.W017`" in committed


def test_the_readme_table_agrees_with_the_declarations() -> None:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Configuration (`settings.BIGINTERVIEW`)", 1)[1]
    rows = re.findall(r"^\| `([A-Z_]+)` \| (.+?) \| (.+?) \|$", section.split("###", 1)[0], re.M)
    assert {name for name, _, _ in rows} >= {"BASE_URL", "API_KEY", "WEBHOOK_KEYS"}
    for name, default, meaning in rows:
        declaration = conf.declared(name)
        assert (default, meaning) == (declaration.default_text, declaration.doc), name
    assert "docs/settings.md" in section


def test_caches_built_from_settings_are_rebuilt_when_the_settings_change(settings: Any) -> None:
    built: list[str] = []

    @conf.cleared_on_setting_change()
    def client_for(url: str) -> str:
        built.append(url)
        return url

    client_for("a")
    client_for("a")
    assert built == ["a"]
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "READ_TIMEOUT": 1}
    client_for("a")
    assert built == ["a", "a"]
    with override_settings(SECRET_KEY="unrelated"):
        client_for("a")
    assert built == ["a", "a"]


def test_the_client_the_sync_client_and_redis_follow_a_settings_change(
    settings: Any, redis_url: str
) -> None:
    from django_biginterview import client, coordination, sync

    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "REDIS_URL": redis_url}
    before = (client.get_client(), sync.sync_client(), coordination.redis_client())
    assert before == (client.get_client(), sync.sync_client(), coordination.redis_client())

    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "READ_TIMEOUT": 2.5}
    after = (client.get_client(), sync.sync_client(), coordination.redis_client())
    assert all(new is not old for new, old in zip(after, before, strict=True))
    assert after[0].timeout[1] == after[1].timeout[1] == 2.5
