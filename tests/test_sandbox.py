"""The sandbox's documented API, driven over real HTTP with ``requests`` (not our client).

Each test reads like a line of the contract in ``/work/shared/spec``: status codes, error
bodies, JSON and form bodies, the raw-key check, token expiry, date format; plus the
Python API and the pytest fixtures that other tests build on.
"""

from __future__ import annotations

import json
import re
import socket
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from django.conf import settings as django_settings

from django_biginterview.sandbox import DEFAULT_API_KEY, DEFAULT_WEBHOOK_KEY, Sandbox, UnknownObject
from django_biginterview.sandbox.server import SandboxRequestHandler

DATE_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
PROFILE = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}


def parse(value: str) -> datetime:
    assert DATE_RE.fullmatch(value), value
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@pytest.fixture
def sb() -> Any:
    sandbox = Sandbox(api_keys=["k" * 32, "second-key"]).start()
    yield sandbox
    sandbox.stop()


def api(
    sb: Sandbox, method: str, path: str, key: str | None = "k" * 32, **kwargs: Any
) -> requests.Response:
    headers = {"Accept": "application/json", **kwargs.pop("headers", {})}
    if key is not None:
        headers["Authorization"] = key
    return requests.request(method, sb.url + path, headers=headers, timeout=5, **kwargs)


# -- POST /api/users/{partner_id} -------------------------------------------------------


def test_create_user_with_json_body_answers_201_with_the_documented_user(sb: Sandbox) -> None:
    response = api(sb, "POST", "/api/users/abc123", json=PROFILE)

    assert response.status_code == 201
    assert response.headers["Content-Type"] == "application/json; charset=utf-8"
    user = response.json()["user"]
    assert set(user) == {"partner_id", "anonymous", "created_at", "token"}
    assert user["partner_id"] == "abc123"
    assert user["anonymous"] is False
    assert re.fullmatch(r"[0-9a-f]{64}", user["token"]["token"])
    created = parse(user["created_at"])
    expires = parse(user["token"]["expires_at"])
    assert abs((created - datetime.now(UTC)).total_seconds()) < 60
    assert timedelta(hours=47, minutes=59) < expires - created <= timedelta(hours=48, seconds=1)


def test_create_user_with_form_body(sb: Sandbox) -> None:
    response = api(sb, "POST", "/api/users/form-user", data=PROFILE)

    assert response.status_code == 201
    assert response.json()["user"]["partner_id"] == "form-user"
    assert sb.get_user("form-user")["email"] == "ada@example.com"


def test_existing_user_answers_200_with_a_fresh_token_and_ignores_parameters(sb: Sandbox) -> None:
    first = api(sb, "POST", "/api/users/abc123", json=PROFILE).json()["user"]

    again = api(sb, "POST", "/api/users/abc123", json={"email": "not-an-email"})

    assert again.status_code == 200
    user = again.json()["user"]
    assert user["created_at"] == first["created_at"]
    assert user["token"]["token"] != first["token"]["token"]
    assert parse(user["token"]["expires_at"]) >= parse(first["token"]["expires_at"])
    assert sb.get_user("abc123")["email"] == "ada@example.com"
    assert sb.get_user("abc123")["token"] == user["token"]["token"]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        ({}, {"first_name": "is required", "last_name": "is required", "email": "is required"}),
        (
            {"first_name": "Ada", "last_name": "  ", "email": "ada@example.com"},
            {"last_name": "is required"},
        ),
        ({**PROFILE, "email": "nope"}, {"email": "is invalid"}),
        ({**PROFILE, "first_name": 12}, {"first_name": "must be a string"}),
    ],
)
def test_creation_without_valid_attributes_answers_422_per_field(
    sb: Sandbox, body: dict[str, Any], errors: dict[str, str]
) -> None:
    response = api(sb, "POST", "/api/users/newbie", json=body)

    assert response.status_code == 422
    assert response.json() == {"error": {"type": "validation_error", "message": errors}}
    assert sb.get_user("newbie") is None


def test_form_body_missing_a_field_answers_422(sb: Sandbox) -> None:
    response = api(sb, "POST", "/api/users/newbie", data={"first_name": "Ada", "last_name": "L"})

    assert response.status_code == 422
    assert response.json()["error"]["message"] == {"email": "is required"}


@pytest.mark.parametrize("partner_id", ["has%20space", "x" * 65, "dot.ted", "%C3%A9t%C3%A9"])
def test_invalid_partner_id_answers_422(sb: Sandbox, partner_id: str) -> None:
    response = api(sb, "POST", f"/api/users/{partner_id}", json=PROFILE)

    assert response.status_code == 422
    assert response.json() == {
        "error": {"type": "validation_error", "message": {"partner_id": "is invalid"}}
    }


def test_longest_allowed_partner_id_is_accepted(sb: Sandbox) -> None:
    partner_id = "A-z_9" + "x" * 59
    assert api(sb, "POST", f"/api/users/{partner_id}", json=PROFILE).status_code == 201


def test_malformed_json_answers_400_with_error_body(sb: Sandbox) -> None:
    response = api(
        sb, "POST", "/api/users/abc", data=b"{nope", headers={"Content-Type": "application/json"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request"


# -- POST /api/users/anonymous -----------------------------------------------------------


def test_anonymous_user_gets_generated_partner_id_and_a_48h_token(sb: Sandbox) -> None:
    first = api(sb, "POST", "/api/users/anonymous")
    second = api(sb, "POST", "/api/users/anonymous")

    assert first.status_code == second.status_code == 201
    one, two = first.json()["user"], second.json()["user"]
    assert one["anonymous"] is True
    assert one["partner_id"] != two["partner_id"]
    assert re.fullmatch(r"[0-9A-Za-z_-]{1,64}", one["partner_id"])
    # Tokens expire 48 hours after creation, anonymous ones too (the account itself may be
    # deleted after 24 hours: see below).
    assert parse(one["token"]["expires_at"]) - parse(one["created_at"]) == timedelta(hours=48)
    assert api(sb, "GET", f"/api/users/{one['partner_id']}/tracks").status_code == 200


def test_anonymous_users_can_be_disabled() -> None:
    with Sandbox(anonymous_users=False) as sandbox:
        response = api(sandbox, "POST", "/api/users/anonymous", key=DEFAULT_API_KEY)
    assert response.status_code == 403
    assert response.json()["error"]["type"] == "forbidden"


def test_anonymous_account_disappears_after_its_lifetime() -> None:
    with Sandbox(anonymous_lifetime=timedelta(seconds=0.2)) as sandbox:
        partner_id = api(sandbox, "POST", "/api/users/anonymous", key=DEFAULT_API_KEY).json()[
            "user"
        ]["partner_id"]
        time.sleep(0.3)
        response = api(sandbox, "GET", f"/api/users/{partner_id}/tracks", key=DEFAULT_API_KEY)
    assert response.status_code == 404


# -- GET tracks / interviews -------------------------------------------------------------


def test_new_user_has_the_default_tracks(sb: Sandbox) -> None:
    api(sb, "POST", "/api/users/abc123", json=PROFILE)

    response = api(sb, "GET", "/api/users/abc123/tracks")

    assert response.status_code == 200
    assert response.json() == {
        "tracks": [
            {
                "title": "Fast Track",
                "progress": 0.0,
                "tracks": [
                    {
                        "step": 1,
                        "title": "Tell me about yourself",
                        "link": "/members/curriculum?chapter=5",
                        "completed": False,
                    }
                ],
            },
            {
                "title": "Mastery Track",
                "progress": 0.0,
                "tracks": [
                    {
                        "step": 1,
                        "title": "Job Interview Fundamentals",
                        "link": "/members/curriculum?chapter=1",
                        "completed": False,
                    },
                    {
                        "step": 2,
                        "title": "Why do you want to work here?",
                        "link": "/members/curriculum?chapter=6",
                        "completed": False,
                    },
                ],
            },
        ]
    }


def test_completed_step_moves_progress(sb: Sandbox) -> None:
    sb.create_user("abc123")

    track = sb.complete_step("abc123", "Mastery Track", 2)

    assert track["progress"] == 0.5
    tracks = api(sb, "GET", "/api/users/abc123/tracks").json()["tracks"]
    assert tracks[1]["progress"] == 0.5
    assert [step["completed"] for step in tracks[1]["tracks"]] == [False, True]
    assert tracks[0]["progress"] == 0.0
    assert sb.complete_step("abc123", "Mastery Track", 1)["progress"] == 1.0


def test_interviews_are_listed_most_recently_updated_first(sb: Sandbox) -> None:
    sb.create_user("abc123")
    older = sb.start_interview("abc123", "Top 10 Questions")
    newer = sb.start_interview("abc123", "Behavioral Questions")
    completed = sb.complete_interview("abc123", older["id"])

    response = api(sb, "GET", "/api/users/abc123/interviews")

    assert response.status_code == 200
    interviews = response.json()["interviews"]
    assert [item["id"] for item in interviews] == [older["id"], newer["id"]]
    first = interviews[0]
    assert first == completed
    assert set(first) == {
        "id",
        "title",
        "interviewer_name",
        "category",
        "completed",
        "created_at",
        "updated_at",
        "links",
    }
    assert isinstance(first["id"], int)
    assert first["completed"] is True
    assert first["category"] == "Top 10 Questions: 1"
    assert parse(first["updated_at"]) > parse(first["created_at"])
    assert first["links"] == {
        "review": f"/members/mock_interviews/{older['id']}/review",
        "retake": "/members/mock_interviews/interview_info/52",
    }


def test_deleted_interview_leaves_the_list(sb: Sandbox) -> None:
    sb.create_user("abc123")
    interview = sb.start_interview("abc123")

    sb.delete_interview("abc123", interview["id"])

    assert api(sb, "GET", "/api/users/abc123/interviews").json() == {"interviews": []}
    with pytest.raises(UnknownObject):
        sb.complete_interview("abc123", interview["id"])


@pytest.mark.parametrize("collection", ["tracks", "interviews"])
def test_unknown_user_answers_404_with_error_body(sb: Sandbox, collection: str) -> None:
    response = api(sb, "GET", f"/api/users/ghost/{collection}")

    assert response.status_code == 404
    assert response.json()["error"]["type"] == "not_found"
    assert "ghost" in response.json()["error"]["message"]


def test_undocumented_paths_and_methods_are_refused(sb: Sandbox) -> None:
    sb.create_user("abc123")

    assert api(sb, "GET", "/api/users/abc123/track").status_code == 404  # the doc's typo
    assert api(sb, "GET", "/api/users/abc123").status_code == 405
    assert api(sb, "POST", "/api/users/abc123/tracks").status_code == 405
    assert (
        api(sb, "POST", "/api/users/abc123/tracks").json()["error"]["type"] == "method_not_allowed"
    )


@pytest.mark.parametrize("method", ["HEAD", "OPTIONS", "FOO"])
def test_other_methods_get_a_405_in_the_error_shape(sb: Sandbox, method: str) -> None:
    sb.create_user("abc123")
    response = api(sb, method, "/api/users/abc123/tracks")
    assert response.status_code == 405
    if method != "HEAD":  # a HEAD answer has no body
        assert response.json()["error"]["type"] == "method_not_allowed"


def test_a_body_nested_too_deeply_is_a_400_not_a_crash(sb: Sandbox) -> None:
    body = "[" * 200_000 + "]" * 200_000
    response = api(
        sb, "POST", "/api/users/deep", data=body, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 400
    assert response.json()["error"]["type"] == "invalid_request"


def test_a_json_body_without_content_type_is_read_as_json(sb: Sandbox) -> None:
    response = api(sb, "POST", "/api/users/abc123", data=json.dumps(PROFILE))
    assert response.status_code == 201, response.text
    assert sb.get_user("abc123")["email"] == PROFILE["email"]


def test_a_chunked_body_is_read(sb: Sandbox) -> None:
    body = json.dumps(PROFILE).encode()
    chunks = iter([body[:10], body[10:]])  # a generator: requests sends it chunked
    response = api(
        sb, "POST", "/api/users/abc123", data=chunks, headers={"Content-Type": "application/json"}
    )
    assert response.request.headers["Transfer-Encoding"] == "chunked"
    assert response.status_code == 201, response.text
    # The connection stays in step: the next request on it is answered normally.
    assert api(sb, "GET", "/api/users/abc123/tracks").status_code == 200


def raw_exchange(sb: Sandbox, request: bytes, timeout: float = 5) -> bytes:
    with socket.create_connection(("127.0.0.1", sb.port), timeout=timeout) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
            if b"\r\n\r\n" in answer:
                head, _, rest = answer.partition(b"\r\n\r\n")
                length = re.search(rb"Content-Length: (\d+)", head)
                if length and len(rest) >= int(length[1]):
                    break
        return answer


def test_whitespace_around_the_key_is_not_part_of_it(sb: Sandbox) -> None:
    answer = raw_exchange(
        sb,
        b"POST /api/users/anonymous HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n"
        b"Authorization: " + b"k" * 32 + b" \t\r\nConnection: close\r\n\r\n",
    )
    assert answer.startswith(b"HTTP/1.1 201 "), answer[:200]


def test_a_body_that_never_arrives_times_out_with_408(
    sb: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SandboxRequestHandler, "timeout", 0.5)
    answer = raw_exchange(
        sb,
        b"POST /api/users/abc123 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: " + b"k" * 32 + b"\r\nContent-Length: 100\r\n\r\n{}",
    )
    assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
    assert b'"invalid_request"' in answer
    assert sb.get_user("abc123") is None


# -- authentication ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "hint"),
    [
        (None, "Missing"),
        ("wrong", "Invalid"),
        ("Bearer " + "k" * 32, "without 'Bearer'"),
        ("k" * 31, "Invalid"),
    ],
)
def test_every_api_call_needs_the_raw_key(sb: Sandbox, key: str | None, hint: str) -> None:
    sb.create_user("abc123")
    for method, path in [
        ("POST", "/api/users/abc123"),
        ("POST", "/api/users/anonymous"),
        ("GET", "/api/users/abc123/tracks"),
        ("GET", "/api/users/abc123/interviews"),
    ]:
        response = api(sb, method, path, key=key, json=PROFILE)
        assert response.status_code == 401, path
        assert response.json()["error"]["type"] == "authentication_error"
        assert hint in response.json()["error"]["message"]
    assert sb.get_user("anonymous") is None


def test_any_configured_key_is_accepted(sb: Sandbox) -> None:
    assert api(sb, "POST", "/api/users/abc123", key="second-key", json=PROFILE).status_code == 201


# -- tokens ------------------------------------------------------------------------------


def test_token_lifetime_is_configurable_and_tokens_really_expire() -> None:
    with Sandbox(token_lifetime=timedelta(seconds=0.3)) as sandbox:
        user = api(sandbox, "POST", "/api/users/abc123", key=DEFAULT_API_KEY, json=PROFILE).json()[
            "user"
        ]
        lifetime = parse(user["token"]["expires_at"]) - parse(user["created_at"])
        assert timedelta(seconds=0.3) <= lifetime < timedelta(seconds=5)
        token = user["token"]["token"]
        assert sandbox.state.user_for_token(token) == ("abc123", "")
        time.sleep(0.4)
        assert sandbox.state.user_for_token(token) == (None, "expired")


def test_expire_token_and_refresh(sb: Sandbox) -> None:
    old = sb.create_user("abc123")["token"]

    sb.expire_token("abc123")

    assert parse(sb.get_user("abc123")["expires_at"]) <= datetime.now(UTC)
    assert sb.state.user_for_token(old) == (None, "expired")
    fresh = api(sb, "POST", "/api/users/abc123").json()["user"]["token"]["token"]
    assert sb.state.user_for_token(fresh) == ("abc123", "")
    assert sb.state.user_for_token(old)[0] is None
    assert sb.state.user_for_token("0" * 64) == (None, "invalid")


# -- observation -------------------------------------------------------------------------


def test_api_calls_are_recorded_and_filterable(sb: Sandbox) -> None:
    api(sb, "POST", "/api/users/abc123?x=1", json=PROFILE)
    api(sb, "GET", "/api/users/abc123/tracks", key="bad")

    assert [tuple(call)[:3] for call in sb.api_calls()] == [
        ("POST", "/api/users/abc123", 201),
        ("GET", "/api/users/abc123/tracks", 401),
    ]
    assert [call.status for call in sb.api_calls(method="get")] == [401]
    assert len(sb.api_calls(path_prefix="/api/users/abc123/")) == 1
    sb.reset_calls()
    assert sb.api_calls() == []


def test_python_api_validates_like_the_http_api(sb: Sandbox) -> None:
    with pytest.raises(ValueError, match="partner_id"):
        sb.create_user("not valid")
    with pytest.raises(UnknownObject):
        sb.start_interview("ghost")
    with pytest.raises(TypeError):
        sb.create_user("abc123")
        sb.update_interview("abc123", sb.start_interview("abc123")["id"], colour="red")


# -- pytest fixtures ---------------------------------------------------------------------


def test_fixture_points_base_url_at_a_sandbox_accepting_the_settings_key(
    biginterview_sandbox: Sandbox,
) -> None:
    config = django_settings.BIGINTERVIEW
    assert config["BASE_URL"] == biginterview_sandbox.url
    response = requests.post(
        f"{config['BASE_URL']}/api/users/abc123",
        json=PROFILE,
        headers={"Authorization": config["API_KEY"]},
        timeout=5,
    )
    assert response.status_code == 201


def test_factory_passes_kwargs_and_defaults_the_webhook_key(
    biginterview_sandbox_factory: Any,
) -> None:
    sandbox = biginterview_sandbox_factory(
        webhook_url="http://127.0.0.1:9/hook", token_lifetime=timedelta(hours=1)
    )
    assert sandbox.webhook_key == django_settings.BIGINTERVIEW["WEBHOOK_KEYS"][0]
    assert sandbox.api_key == django_settings.BIGINTERVIEW["API_KEY"]
    user = sandbox.create_user("abc123")
    assert parse(user["expires_at"]) - parse(user["created_at"]) <= timedelta(hours=1, seconds=1)


def test_default_keys_are_exported() -> None:
    assert DEFAULT_API_KEY == "sandbox-api-key-0000000000000000"
    assert DEFAULT_WEBHOOK_KEY == "sandbox-webhook-key-000000000000"
    assert Sandbox().api_key == DEFAULT_API_KEY


# -- faults ------------------------------------------------------------------------------


def test_rate_limit_answers_429_with_retry_after(sb: Sandbox) -> None:
    sb.set_faults(rate_limit=True, retry_after=7)

    response = api(sb, "POST", "/api/users/abc123", json=PROFILE)

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json()["error"]["type"] == "rate_limit_error"
    assert sb.get_user("abc123") is None
    sb.clear_faults()
    assert api(sb, "POST", "/api/users/abc123", json=PROFILE).status_code == 201


def test_counted_rate_limit_and_failures_then_recovery(sb: Sandbox) -> None:
    sb.create_user("abc123")
    sb.set_faults(rate_limit=1, fail_next=2, error_status=502)

    statuses = [api(sb, "GET", "/api/users/abc123/tracks").status_code for _ in range(4)]

    assert statuses == [429, 502, 502, 200]
    assert [call.status for call in sb.api_calls()] == statuses


def test_error_rate_one_fails_every_call_with_a_non_json_body(sb: Sandbox) -> None:
    sb.set_faults(error_rate=1.0, error_status=503)

    response = api(sb, "GET", "/api/users/abc123/tracks")

    assert response.status_code == 503
    assert response.headers["Content-Type"].startswith("text/html")
    with pytest.raises(ValueError):
        response.json()


def test_injected_errors_carry_retry_after_only_when_asked(sb: Sandbox) -> None:
    sb.set_faults(fail_next=1, error_status=503)
    assert "Retry-After" not in api(sb, "GET", "/api/users/abc123/tracks").headers

    sb.set_faults(fail_next=1, error_status=503, error_retry_after=4)
    response = api(sb, "GET", "/api/users/abc123/tracks")
    assert (response.status_code, response.headers["Retry-After"]) == (503, "4")
    assert sb.faults()["error_retry_after"] == 4
    with pytest.raises(ValueError):
        sb.set_faults(error_retry_after=-1)


def test_error_rate_is_a_share_of_calls(sb: Sandbox) -> None:
    sb.create_user("abc123")
    sb.set_faults(error_rate=0.5)

    statuses = {api(sb, "GET", "/api/users/abc123/tracks").status_code for _ in range(40)}

    assert statuses == {200, 503}  # with 40 calls at 1/2, missing either has odds 2**-39


def test_latency_delays_api_calls(sb: Sandbox) -> None:
    sb.set_faults(latency=0.3)
    started = time.monotonic()
    assert api(sb, "POST", "/api/users/anonymous").status_code == 201
    assert time.monotonic() - started >= 0.3


def test_key_check_comes_before_faults(sb: Sandbox) -> None:
    sb.set_faults(rate_limit=True)
    assert api(sb, "GET", "/api/users/abc123/tracks", key="wrong").status_code == 401


def test_invalid_faults_are_refused(sb: Sandbox) -> None:
    for bad in ({"error_rate": 2}, {"latency": -1}, {"error_status": 200}):
        with pytest.raises(ValueError):
            sb.set_faults(**bad)


def test_faults_endpoint_reads_and_sets_faults(sb: Sandbox) -> None:
    response = api(sb, "POST", "/_sandbox/faults", json={"fail_next": 1, "error_status": 500})

    assert response.status_code == 200
    assert response.json()["faults"]["fail_next"] == 1
    assert api(sb, "GET", "/api/users/abc123/tracks").status_code == 500
    assert api(sb, "GET", "/_sandbox/faults").json()["faults"]["fail_next"] == 0
    assert api(sb, "POST", "/_sandbox/faults", json={"colour": 1}).status_code == 422
    assert api(sb, "POST", "/_sandbox/faults", key="wrong", json={}).status_code == 401
    assert all(call.path.startswith("/api/") for call in sb.api_calls())


def test_faults_endpoint_is_exempt_from_faults(sb: Sandbox) -> None:
    sb.set_faults(rate_limit=True, latency=0.0)
    assert api(sb, "GET", "/api/users/anonymous").status_code == 429

    response = api(sb, "POST", "/_sandbox/faults", json={})

    assert response.status_code == 200
    assert response.json()["faults"]["rate_limit"] is False
    assert api(sb, "POST", "/api/users/anonymous").status_code == 201


# -- state file --------------------------------------------------------------------------


def test_state_file_round_trip(tmp_path: Any) -> None:
    path = tmp_path / "sandbox.json"
    with Sandbox(state_file=path) as first:
        user = first.create_user("abc123", first_name="Grace", last_name="Hopper", email="g@h.io")
        interview = first.start_interview("abc123")
        done = first.complete_interview("abc123", interview["id"])
        first.complete_step("abc123", "Fast Track", 1)
        last_id = first.notifications[-1]["webhook"]["id"]

    with Sandbox(state_file=path) as second:
        assert second.get_user("abc123") == user
        assert second.interviews("abc123") == [done]
        assert second.tracks("abc123")[0]["progress"] == 1.0
        assert second.state.user_for_token(user["token"]) == ("abc123", "")
        response = api(second, "GET", "/api/users/abc123/interviews", key=DEFAULT_API_KEY)
        assert response.json() == {"interviews": [done]}
        newer = second.start_interview("abc123")
        assert newer["id"] > interview["id"]
        assert int(second.notifications[-1]["webhook"]["id"]) > int(last_id)


def test_a_restarted_sandbox_does_not_reissue_ids() -> None:
    """Without a state file a restart forgets everything, but the app under test still
    holds the old notification and interview ids: new ones must not collide with them."""
    issued: list[tuple[int, str]] = []
    for _ in range(2):
        with Sandbox() as sandbox:
            sandbox.create_user("abc123")
            interview = sandbox.start_interview("abc123")
            issued.append((interview["id"], sandbox.notifications[-1]["webhook"]["id"]))
    (first_interview, first_notification), (second_interview, second_notification) = issued
    assert first_interview != second_interview
    assert first_notification != second_notification
    assert "123456789" not in (first_notification, second_notification)  # the spec example


def test_unreadable_state_file_is_a_clear_error(tmp_path: Any) -> None:
    path = tmp_path / "sandbox.json"
    path.write_text("{not json")

    with pytest.raises(ValueError, match="sandbox state file"):
        Sandbox(state_file=path)
    assert path.read_text() == "{not json"


# -- independence and secrecy ------------------------------------------------------------


def test_sandbox_runs_without_django_or_the_app_code() -> None:
    import subprocess
    import sys

    script = (
        "import sys, requests\n"
        "from django_biginterview.sandbox import Sandbox\n"
        "with Sandbox() as sb:\n"
        "    r = requests.post(sb.url + '/api/users/anonymous',"
        " headers={'Authorization': sb.api_key}, timeout=5)\n"
        "    assert r.status_code == 201, r.status_code\n"
        "loaded = sorted(m for m in sys.modules if m == 'django' or m.startswith('django.')\n"
        "    or m.split('.')[1:2] in (['client'], ['mirror'], ['sync'], ['webhooks'], ['sso'],"
        " ['models']) and m.startswith('django_biginterview'))\n"
        "print(loaded)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=30, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_tokens_and_keys_never_reach_the_logs(sb: Sandbox, caplog: Any) -> None:
    caplog.set_level("DEBUG", logger="django_biginterview")
    user = sb.create_user("abc123")
    requests.get(sb.sso_url("abc123"), allow_redirects=False, timeout=5)
    api(sb, "GET", "/api/users/abc123/tracks")
    requests.get(f"{sb.url}/sso/login?token=bad{user['token']}", timeout=5)

    assert caplog.records, "the sandbox logs its requests at DEBUG"
    assert user["token"] not in caplog.text
    assert "k" * 32 not in caplog.text
    assert repr(sb) == f"<Sandbox {sb.url}>"


def test_concurrent_calls_keep_state_consistent(sb: Sandbox) -> None:
    from concurrent.futures import ThreadPoolExecutor

    def create(index: int) -> int:
        return api(sb, "POST", f"/api/users/user-{index % 5}", json=PROFILE).status_code

    def start(index: int) -> int:
        return sb.start_interview(f"user-{index % 5}")["id"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(create, range(40)))
        ids = list(pool.map(start, range(40)))

    assert sorted(statuses) == [200] * 35 + [201] * 5
    assert len(set(ids)) == 40
    notification_ids = [int(p["webhook"]["id"]) for p in sb.notifications]
    assert notification_ids == sorted(notification_ids) and len(set(notification_ids)) == 40
    assert sum(len(sb.interviews(f"user-{n}")) for n in range(5)) == 40


@pytest.mark.parametrize(
    ("length", "status"), [("2000000", 413), ("twelve", 400)], ids=["too-large", "garbage"]
)
def test_bad_content_length_is_refused_without_reading(
    sb: Sandbox, length: str, status: int
) -> None:
    import http.client

    connection = http.client.HTTPConnection("127.0.0.1", sb.port, timeout=5)
    connection.putrequest("POST", "/api/users/abc123")
    connection.putheader("Authorization", "k" * 32)
    connection.putheader("Content-Length", length)
    connection.endheaders()
    response = connection.getresponse()

    assert response.status == status
    assert json.loads(response.read())["error"]["type"] == "invalid_request"
    connection.close()
    assert sb.get_user("abc123") is None
