"""System checks on ``settings.BIGINTERVIEW``: the functions directly, then ``manage.py check``.

This module doubles as a URLconf without the app's URLs (``urlpatterns`` below), to show
the webhook-key check only fires when the webhook is routed.
"""

from __future__ import annotations

import re
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.checks import ERROR, WARNING, CheckMessage
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_biginterview import checks, conf
from django_biginterview.adapter import DefaultAdapter
from django_biginterview.checks import (
    check_api_key,
    check_base_url,
    check_durations,
    check_importables,
    check_numbers,
    check_partner_id_decision,
    check_schema_access,
    check_settings,
    check_settings_deploy,
    check_shared_store,
    check_unknown_keys,
    check_webhook_keys,
)

urlpatterns: list[Any] = []  # a project that has not routed the webhook

API_KEY = "935d85189822bf96c28c4fa79d3d8f31"
VALID = {
    "BASE_URL": "https://acme.biginterview.com",
    "API_KEY": API_KEY,
    "WEBHOOK_KEYS": ["webhook-key-current"],
    "REDIS_URL": "redis://127.0.0.1:6379/0",
}


def ids(messages: list[CheckMessage]) -> list[str]:
    return [message.id or "" for message in messages]


@pytest.fixture
def configure(settings: Any) -> Any:
    """Set ``BIGINTERVIEW`` to the valid configuration plus ``changes``."""

    def apply(**changes: Any) -> None:
        settings.BIGINTERVIEW = {**VALID, **changes}

    return apply


def test_a_valid_configuration_is_clean(configure: Any) -> None:
    configure()
    assert check_settings() == []
    assert check_settings_deploy() == []


# -- BASE_URL ------------------------------------------------------------------------------


def test_missing_base_url_warns_and_is_an_error_under_deploy(configure: Any) -> None:
    configure(BASE_URL=None)
    [warning] = check_base_url()
    assert (warning.id, warning.level) == ("biginterview.W001", WARNING)
    assert "BASE_URL" in warning.msg
    [error] = check_base_url(deploy=True)
    assert (error.id, error.level) == ("biginterview.E001", ERROR)


@pytest.mark.parametrize(
    "value",
    [
        "acme.biginterview.com",
        "ftp://acme.biginterview.com",
        "https://",
        "https://acme.biginterview.com/api",
        "https://acme.biginterview.com?org=acme",
        "https://acme.biginterview.com#top",
        "https://user:secret@acme.biginterview.com",
        "https://acme.biginterview.com:port",
        "http://[::1",
        42,
        ["https://acme.biginterview.com"],
    ],
)
def test_a_base_url_that_is_not_an_origin_is_an_error(configure: Any, value: Any) -> None:
    configure(BASE_URL=value)
    assert ids(check_base_url()) == ["biginterview.E002"]
    assert check_base_url()[0].level == ERROR


@pytest.mark.parametrize(
    "value",
    [
        "https://acme.biginterview.com",
        "https://acme.biginterview.com/",
        "https://acme.biginterview.com:8443",
    ],
)
def test_https_origins_are_accepted(configure: Any, value: str) -> None:
    configure(BASE_URL=value)
    assert check_base_url() == []
    assert check_base_url(deploy=True) == []


def test_plain_http_is_flagged_only_with_debug_off(configure: Any, settings: Any) -> None:
    configure(BASE_URL="http://acme.biginterview.com")
    settings.DEBUG = False
    assert ids(check_base_url()) == ["biginterview.W007"]
    assert ids(check_base_url(deploy=True)) == ["biginterview.E007"]
    settings.DEBUG = True
    assert check_base_url() == []
    assert check_base_url(deploy=True) == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:8765", ["biginterview.W007", "biginterview.W012"]),
        ("http://localhost:8765", ["biginterview.W007", "biginterview.W012"]),
        ("https://localhost", ["biginterview.W012"]),
        ("https://[::1]:8765", ["biginterview.W012"]),
        ("https://10.0.0.5", ["biginterview.W012"]),
        ("https://sandbox.localhost", ["biginterview.W012"]),
        ("https://acme.biginterview.com", []),
    ],
)
def test_a_local_sandbox_url_warns_with_debug_off(
    configure: Any, settings: Any, url: str, expected: list[str]
) -> None:
    configure(BASE_URL=url)
    settings.DEBUG = False
    assert ids(check_base_url()) == expected
    settings.DEBUG = True
    assert check_base_url() == []


# -- API_KEY -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, ""])
def test_missing_api_key_warns_and_is_an_error_under_deploy(configure: Any, value: Any) -> None:
    configure(API_KEY=value)
    assert ids(check_api_key()) == ["biginterview.W003"]
    assert ids(check_api_key(deploy=True)) == ["biginterview.E003"]


@pytest.mark.parametrize(
    "value",
    [f"Bearer {API_KEY}", f" {API_KEY}", f"{API_KEY}\n", f"{API_KEY}\r\nX: y", "clé-é", 12345],
)
def test_a_malformed_api_key_is_an_error(configure: Any, value: Any) -> None:
    configure(API_KEY=value)
    [error] = check_api_key()
    assert (error.id, error.level) == ("biginterview.E004", ERROR)
    assert "Bearer" in (error.hint or "")
    if isinstance(value, str):
        assert value.strip() not in error.msg  # the check never prints the key


# -- WEBHOOK_KEYS --------------------------------------------------------------------------


@pytest.mark.parametrize("value", [None, []])
def test_empty_webhook_keys_while_routed_warns(configure: Any, value: Any) -> None:
    configure(WEBHOOK_KEYS=value)
    assert ids(check_webhook_keys()) == ["biginterview.W005"]
    assert ids(check_webhook_keys(deploy=True)) == ["biginterview.E005"]


def test_empty_webhook_keys_are_fine_when_the_webhook_is_not_routed(
    configure: Any, settings: Any
) -> None:
    configure(WEBHOOK_KEYS=[])
    settings.ROOT_URLCONF = __name__
    assert check_webhook_keys() == []
    assert check_webhook_keys(deploy=True) == []


def test_a_project_without_root_urlconf_gets_no_crash(configure: Any, settings: Any) -> None:
    configure(WEBHOOK_KEYS=[])
    del settings.ROOT_URLCONF
    assert check_webhook_keys() == []


@pytest.mark.parametrize("value", ["one-key", ["", "key"], [None], [123], [" padded "], {"k": 1}])
def test_malformed_webhook_keys_are_an_error(configure: Any, value: Any) -> None:
    configure(WEBHOOK_KEYS=value)
    assert ids(check_webhook_keys()) == ["biginterview.E006"]


def test_several_webhook_keys_are_fine(configure: Any) -> None:
    configure(WEBHOOK_KEYS=("new-key", "old-key"))
    assert check_webhook_keys() == []


# -- the rest ------------------------------------------------------------------------------


def test_biginterview_that_is_not_a_dict_gives_one_clear_error(settings: Any) -> None:
    settings.BIGINTERVIEW = [("BASE_URL", "https://acme.biginterview.com")]
    assert ids(check_settings()) == ["biginterview.E008"]
    assert check_settings_deploy() == []


def test_unknown_keys_warn_with_their_names(configure: Any) -> None:
    configure(BASE_ULR="https://typo.example", RETRIES=3)
    [warning] = check_unknown_keys()
    assert warning.id == "biginterview.W011"
    assert "BASE_ULR, RETRIES" in warning.msg


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("ADAPTER", "no.such.module.Adapter"),
        ("ADAPTER", "django_biginterview.adapter.NoSuchAdapter"),
        ("ADAPTER", "nodots"),
        ("ADAPTER", "django_biginterview.conf.SETTINGS_NAME"),  # importable, not callable
        ("PARTNER_ID_FUNCTION", "os.path.no_such_function"),
        ("PARTNER_ID_FUNCTION", 42),
    ],
)
def test_unimportable_dotted_paths_are_an_error(configure: Any, key: str, value: Any) -> None:
    configure(**{key: value})
    [error] = check_importables()
    assert error.id == "biginterview.E009"
    assert key in error.msg


def test_importable_dotted_paths_are_fine(configure: Any) -> None:
    configure(
        ADAPTER="django_biginterview.adapter.DefaultAdapter",
        PARTNER_ID_FUNCTION="django.utils.text.slugify",
    )
    assert check_importables() == []


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("READ_TIMEOUT", 0),
        ("READ_TIMEOUT", None),
        ("CONNECT_TIMEOUT", "3"),
        ("CONNECT_TIMEOUT", -1),
        ("REQUEST_DEADLINE", 0),
        ("REQUEST_DEADLINE", "30s"),
        ("SSO_TIME_BUDGET", -1),
        ("SSO_TIME_BUDGET", None),
        ("MAX_RETRIES", -1),
        ("MAX_RETRIES", True),
        ("RETRY_BACKOFF_MAX", "lots"),
        ("WEBHOOK_STUCK_AFTER", "5 minutes"),
        ("SYNC_LOCK_TIMEOUT", timedelta(seconds=-1)),
        ("TOKEN_REFRESH_MARGIN", -60),
        ("WEBHOOK_MAX_BODY_SIZE", "256k"),
        ("WEBHOOK_MAX_ATTEMPTS", 0),
        ("SYNC_CHUNK_SIZE", None),
        ("TASK_TIME_LIMIT", "3 minutes"),
        ("SYNC_MAX_RETRIES", -2),
        ("RATE_LIMIT", "10/s"),
        ("ANONYMOUS_ACCOUNTS_PER_HOUR", 0),
        ("ANONYMOUS_ACCOUNTS_PER_SESSION", -1),
        ("ANONYMOUS_ACCOUNTS_PER_RATE_KEY", "10"),
        ("SSO_MIN_TOKEN_LIFE", 0),
        ("INTERACTIVE_RATE_SHARE", 0),
        ("INTERACTIVE_RATE_SHARE", 1),
        ("INTERACTIVE_RATE_SHARE", 1.5),
        ("INTERACTIVE_RATE_SHARE", "25%"),
        ("INTERACTIVE_RATE_SHARE", None),
    ],
)
def test_unusable_numbers_and_durations_are_an_error(configure: Any, key: str, value: Any) -> None:
    configure(**{key: value})
    messages = check_numbers()
    assert ids(messages) == ["biginterview.E013"]
    assert key in messages[0].msg
    assert check_settings()  # and check_settings() does not crash on it either


@pytest.mark.parametrize("share", [0.01, 0.25, 0.99])
def test_a_share_strictly_between_0_and_1_is_fine(configure: Any, share: float) -> None:
    configure(INTERACTIVE_RATE_SHARE=share)
    assert check_numbers() == []


@pytest.mark.parametrize(
    ("retention", "expected"),
    [
        (timedelta(hours=1), ["biginterview.E010"]),
        (7199, ["biginterview.E010"]),
        (0, ["biginterview.E010"]),
        (7200, []),
        (timedelta(hours=2), []),
        (timedelta(days=30), []),
    ],
)
def test_webhook_retention_must_outlast_the_retries(
    configure: Any, retention: Any, expected: list[str]
) -> None:
    configure(WEBHOOK_RETENTION=retention)
    assert ids(check_durations()) == expected


def test_a_project_without_biginterview_only_gets_warnings(settings: Any) -> None:
    del settings.BIGINTERVIEW
    messages = check_settings()
    assert ids(messages) == [
        "biginterview.W001",
        "biginterview.W003",
        "biginterview.W005",
        "biginterview.W017",  # the test settings' cache is per process
    ]
    assert all(message.level == WARNING for message in messages)
    assert ids(check_settings_deploy()) == [
        "biginterview.E001",
        "biginterview.E003",
        "biginterview.E005",
    ]


def test_every_message_has_a_stable_id_and_a_hint(settings: Any) -> None:
    settings.DEBUG = False
    settings.BIGINTERVIEW = {
        "BASE_URL": "http://127.0.0.1:8765",
        "API_KEY": "Bearer x",
        "WEBHOOK_KEYS": "one",
        "ADAPTER": "no.such.Adapter",
        "READ_TIMEOUT": 0,
        "WEBHOOK_RETENTION": 60,
        "TYPO": 1,
    }
    messages = check_settings()
    assert set(ids(messages)) == {
        "biginterview.W007",
        "biginterview.W012",
        "biginterview.E004",
        "biginterview.E006",
        "biginterview.E009",
        "biginterview.E010",
        "biginterview.E013",
        "biginterview.W011",
        "biginterview.W017",
    }
    for message in messages:
        assert re.fullmatch(r"biginterview\.[EW]\d{3}", message.id or "")
        assert message.hint
        assert message.msg.startswith("BIGINTERVIEW")


def test_every_id_in_the_code_is_documented_and_pairs_share_a_meaning() -> None:
    # The declarations in conf.py name the ids of the values they refuse.
    source = Path(checks.__file__).read_text() + Path(conf.__file__).read_text()
    used = set(re.findall(r'"biginterview\.([EW]\d{3})"', source))
    documented = set(re.findall(r"\b([EW]\d{3})\b", checks.__doc__ or ""))
    assert used == documented
    # A W0nn and an E0nn with the same number are the same problem escalated, so each
    # warning with an error twin must be one of the deploy escalations.
    for warning in {i for i in used if i.startswith("W")}:
        twin = "E" + warning[1:]
        if twin in used:
            assert f"biginterview.{twin}" in checks.DEPLOY_ERROR_IDS


# -- through manage.py check -------------------------------------------------------------
# (django_db: Django's own model checks ask the database about its features.)


def run_check(**options: Any) -> str:
    out, err = StringIO(), StringIO()
    call_command("check", stdout=out, stderr=err, **options)
    return out.getvalue() + err.getvalue()


@pytest.mark.django_db
def test_check_command_is_quiet_about_a_valid_configuration(configure: Any) -> None:
    configure()
    assert "biginterview" not in run_check()
    assert "biginterview." not in run_check(deploy=True)


@pytest.mark.django_db
def test_check_command_passes_with_missing_keys_but_deploy_fails(settings: Any) -> None:
    del settings.BIGINTERVIEW
    output = run_check()
    for warning_id in ("biginterview.W001", "biginterview.W003", "biginterview.W005"):
        assert warning_id in output

    with pytest.raises(SystemCheckError) as excinfo:
        run_check(deploy=True)
    for error_id in ("biginterview.E001", "biginterview.E003", "biginterview.E005"):
        assert error_id in str(excinfo.value)


@pytest.mark.django_db
def test_check_command_fails_on_a_malformed_value(configure: Any) -> None:
    configure(BASE_URL="https://acme.biginterview.com/api/")
    with pytest.raises(SystemCheckError, match=r"biginterview\.E002"):
        run_check()


@pytest.mark.django_db
def test_check_command_deploy_fails_on_plain_http(configure: Any, settings: Any) -> None:
    settings.DEBUG = False
    configure(BASE_URL="http://acme.biginterview.com")
    assert "biginterview.W007" in run_check()
    with pytest.raises(SystemCheckError, match=r"biginterview\.E007"):
        run_check(deploy=True)


# -- PARTNER_ID_FUNCTION beside an adapter that decides itself (W015) ------------------------


class OwnPartnerIdAdapter(DefaultAdapter):
    def partner_id_for_user(self, user: Any) -> str:
        return "own"


class OwnProfileAdapter(DefaultAdapter):
    fallback_last_name = "?"


@pytest.mark.parametrize(
    ("adapter", "function", "expected"),
    [
        ("tests.test_checks.OwnPartnerIdAdapter", "django.utils.text.slugify", ["W015"]),
        ("tests.test_checks.OwnPartnerIdAdapter", None, []),
        ("tests.test_checks.OwnProfileAdapter", "django.utils.text.slugify", []),
        ("django_biginterview.adapter.DefaultAdapter", "django.utils.text.slugify", []),
    ],
)
def test_a_partner_id_function_the_adapter_ignores_is_a_warning(
    configure: Any, adapter: str, function: str | None, expected: list[str]
) -> None:
    configure(ADAPTER=adapter, PARTNER_ID_FUNCTION=function)
    messages = check_partner_id_decision()
    assert [m.id.removeprefix("biginterview.") for m in messages if m.id] == expected
    assert all(m.level == WARNING and "PARTNER_ID_FUNCTION" in m.msg for m in messages)


# -- A store every process shares (W016) -----------------------------------------------------


@pytest.mark.parametrize(
    ("redis_url", "backend", "expected"),
    [
        (None, "django.core.cache.backends.locmem.LocMemCache", ["biginterview.W017"]),
        (None, "django.core.cache.backends.dummy.DummyCache", ["biginterview.W017"]),
        (None, "django.core.cache.backends.filebased.FileBasedCache", []),
        (None, "django.core.cache.backends.redis.RedisCache", []),
        ("redis://127.0.0.1:6379/0", "django.core.cache.backends.locmem.LocMemCache", []),
    ],
)
def test_locks_and_markers_need_a_store_every_process_shares(
    configure: Any, settings: Any, redis_url: str | None, backend: str, expected: list[str]
) -> None:
    configure(REDIS_URL=redis_url)
    settings.CACHES = {"default": {"BACKEND": backend, "LOCATION": "/tmp/bi-check-cache"}}
    assert ids(check_shared_store()) == expected
    assert ids(check_settings()) == expected


# -- API_SCHEMA_ACCESS (E014) ---------------------------------------------------------------


@pytest.mark.parametrize("value", ["authenticated", "staff", "public"])
def test_the_schema_access_levels_are_accepted(configure: Any, value: str) -> None:
    configure(API_SCHEMA_ACCESS=value)
    assert check_schema_access() == []


@pytest.mark.parametrize("value", ["Public", "everyone", "", None, True, ["staff"]])
def test_an_unknown_schema_access_is_an_error(configure: Any, value: Any) -> None:
    configure(API_SCHEMA_ACCESS=value)
    messages = check_settings()
    assert ids(messages) == ["biginterview.E014"]
    assert messages[0].level == ERROR and "API_SCHEMA_ACCESS" in messages[0].msg
