"""The Partner API client over real HTTP, against a local server that fails closed.

Every endpoint, status and error shape of the contract (``shared/spec``), timeouts,
retries (counted on the server), ``Retry-After``, the anonymous no-retry rule, refused and
broken connections, and the rule that no exception or log line carries a secret.
"""

from __future__ import annotations

import json
import logging
import pickle
import socket
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from django_biginterview import __version__
from django_biginterview.client import (
    MAX_JSON_DEPTH,
    REDACTED,
    BigInterviewClient,
    Interview,
    Track,
    UserResult,
    clean_json,
    get_client,
    parse_datetime,
    parse_retry_after,
)
from django_biginterview.exceptions import (
    APIError,
    AttributesRefused,
    AuthenticationError,
    Forbidden,
    InvalidPartnerId,
    JSONTooDeep,
    MissingSetting,
    NotFound,
    RateLimited,
    ServerError,
    TransportError,
    UnexpectedResponse,
)

API_KEY = "935d85189822bf96c28c4fa79d3d8f31"
TOKEN = "19633c68a809dda515d78bbee308012634b73f4142b4ae58d8790c7094c66417"

# The contract's examples, verbatim (shared/spec/big-interview-partner-api.md).
USER_BODY = {
    "user": {
        "partner_id": "abc123",
        "created_at": "2015-01-01T00:00:00.000Z",
        "anonymous": False,
        "token": {"token": TOKEN, "expires_at": "2016-05-28T17:16:18.817Z"},
    }
}
ANONYMOUS_BODY = {
    "user": {
        "partner_id": "anon_abc123",
        "anonymous": True,
        "created_at": "2015-01-01T00:00:00.000Z",
        "token": {"token": TOKEN, "expires_at": "2016-05-28T17:16:18.817Z"},
    }
}
TRACKS_BODY = {
    "tracks": [
        {
            "title": "Fast Track",
            "progress": 1.00,
            "tracks": [
                {
                    "step": 1,
                    "title": "Tell me about yourself",
                    "link": "/members/curriculum?chapter=5",
                    "completed": True,
                }
            ],
        },
        {
            "title": "Mastery Track",
            "progress": 0.50,
            "tracks": [
                {
                    "step": 1,
                    "title": "Job Interview Fundamentals",
                    "link": "/members/curriculum?chapter=1",
                    "completed": True,
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
INTERVIEW = {
    "id": 95607,
    "title": "Top 10 Questions",
    "interviewer_name": "Jordan",
    "category": "Top 10 Questions: 1",
    "completed": True,
    "created_at": "2015-05-18T16:37:13.000Z",
    "updated_at": "2015-05-25T05:00:00.000Z",
    "links": {
        "review": "/members/mock_interviews/95607/review",
        "retake": "/members/mock_interviews/interview_info/52",
    },
}
VALIDATION_BODY = {
    "error": {
        "type": "validation_error",
        "message": {"email": "is invalid", "first_name": ["is required", "is too short"]},
    }
}

USER_PATH = "/api/users/abc123"
ANON_PATH = "/api/users/anonymous"
TRACKS_PATH = "/api/users/abc123/tracks"
INTERVIEWS_PATH = "/api/users/abc123/interviews"
AUTH = {"Authorization": API_KEY}

HTML_PAGE = "<html><body><h1>502 Bad Gateway</h1></body></html>"

#: (body, content type) pairs for error responses that are not the documented shape.
ODD_ERROR_BODIES = {
    "empty": ("", "text/plain"),
    "html": (HTML_PAGE, "text/html"),
    "plain-text": ("Service Unavailable", "text/plain"),
    "json-list": ("[1, 2, 3]", "application/json"),
    "json-error-string": ('{"error": "Something broke"}', "application/json"),
    "json-other-keys": ('{"errors": {"email": "bad"}}', "application/json"),
    "json-null-error": ('{"error": null}', "application/json"),
    "truncated-json": ('{"error": {"type": "valid', "application/json"),
}


# -- the fail-closed server ----------------------------------------------------------------


@pytest.fixture(scope="module")
def _server() -> Iterator[HTTPServer]:
    # Threaded, so a handler that sleeps past the client's read timeout does not hold up
    # the client's retries.
    server = HTTPServer(host="127.0.0.1", port=0, threaded=True)
    server.start()
    yield server
    server.clear()
    server.stop()


@pytest.fixture
def api(_server: HTTPServer) -> Iterator[HTTPServer]:
    """The fake Big Interview of one test. It fails closed: a request no handler expects
    gets a 500 *and* fails the test here, as does an expected one-shot request never made.
    """
    _server.clear()
    yield _server
    _server.check_assertions()
    _server.check_handler_errors()
    assert not _server.ordered_handlers, "expected requests never arrived"
    assert not _server.oneshot_handlers, "expected requests never arrived"


class SleepRecorder:
    """Stands in for ``time.sleep`` between attempts: records the delays, sleeps nothing."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@pytest.fixture
def sleeps() -> SleepRecorder:
    return SleepRecorder()


@pytest.fixture
def make_client(api: HTTPServer, sleeps: SleepRecorder) -> Iterator[Callable[..., Any]]:
    clients: list[BigInterviewClient] = []

    def make(**options: Any) -> BigInterviewClient:
        options = {
            "base_url": f"http://127.0.0.1:{api.port}",
            "api_key": API_KEY,
            "connect_timeout": 2.0,
            "read_timeout": 3.0,
            "max_retries": 2,
            "backoff": 0.001,
            "backoff_max": 5.0,
            "sleep": sleeps,
            **options,
        }
        client = BigInterviewClient(**options)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(make_client: Callable[..., BigInterviewClient]) -> BigInterviewClient:
    return make_client()


def paths(server: HTTPServer) -> list[str]:
    return [request.path for request, _ in server.log]


def wait_for_log(server: HTTPServer, count: int, timeout: float = 5.0) -> None:
    """Slow handlers log their request only once they return; wait for them to finish so
    nothing spills into the next test's log."""
    deadline = time.monotonic() + timeout
    while len(server.log) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(server.log) == count


def sleeping_handler(seconds: float, body: Any) -> Callable[[Request], Response]:
    def handler(request: Request) -> Response:
        time.sleep(seconds)
        return Response(json.dumps(body), status=201, content_type="application/json")

    return handler


def assert_no_secrets(exc: BaseException, *secrets: str) -> None:
    """No secret in the exception, its attributes, its traceback text, or its chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        texts = [
            str(current),
            repr(current),
            repr(current.args),
            repr(vars(current)),
            "".join(traceback.format_exception(current)),
        ]
        for secret in secrets:
            for text in texts:
                assert secret not in text
        current = current.__cause__ or current.__context__


# -- request shape -------------------------------------------------------------------------


def test_every_request_sends_raw_key_json_accept_and_user_agent(
    api: HTTPServer, client: BigInterviewClient
) -> None:
    api.expect_request(TRACKS_PATH, method="GET").respond_with_json({"tracks": []})
    api.expect_request(USER_PATH, method="POST").respond_with_json(USER_BODY)
    api.expect_request(ANON_PATH, method="POST").respond_with_json(ANONYMOUS_BODY, status=201)
    api.expect_request(INTERVIEWS_PATH, method="GET").respond_with_json({"interviews": []})

    client.list_tracks("abc123")
    client.create_or_refresh_user("abc123", first_name="A", last_name="B", email="a@b.c")
    client.create_anonymous_user()
    client.list_interviews("abc123")

    assert len(api.log) == 4
    for request, _ in api.log:
        assert request.headers["Authorization"] == API_KEY  # raw: no "Bearer"
        assert request.headers["Accept"] == "application/json"
        assert request.headers["User-Agent"].startswith(f"django-biginterview/{__version__} ")


def test_cookies_set_by_one_call_never_ride_on_the_next(
    api: HTTPServer, client: BigInterviewClient
) -> None:
    api.expect_ordered_request(TRACKS_PATH).respond_with_json(
        {"tracks": []}, headers={"Set-Cookie": "session=user-one; Path=/"}
    )
    api.expect_ordered_request(TRACKS_PATH).respond_with_json({"tracks": []})

    client.list_tracks("abc123")
    client.list_tracks("abc123")

    assert [request.headers.get("Cookie") for request, _ in api.log] == [None, None]
    assert len(client.session.cookies) == 0


def test_connections_are_pooled() -> None:
    # werkzeug closes every connection, so keep-alive is shown on a stdlib HTTP/1.1 server.
    client_ports: list[int] = []

    class KeepAliveHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            client_ports.append(self.client_address[1])
            body = b'{"tracks": []}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), KeepAliveHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        with BigInterviewClient(
            base_url=f"http://127.0.0.1:{server.server_address[1]}", api_key=API_KEY
        ) as client:
            for _ in range(3):
                assert client.list_tracks("abc123") == []
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
    assert len(client_ports) == 3
    assert len(set(client_ports)) == 1  # one kept-alive connection served all three


# -- create_or_refresh_user --------------------------------------------------------------


@pytest.mark.parametrize(("status", "created"), [(201, True), (200, False)])
def test_create_or_refresh_user(
    api: HTTPServer, client: BigInterviewClient, status: int, created: bool
) -> None:
    profile = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}
    api.expect_oneshot_request(
        USER_PATH, method="POST", headers=AUTH, json=profile
    ).respond_with_json(USER_BODY, status=status)

    result = client.create_or_refresh_user("abc123", **profile)

    assert result == UserResult(
        partner_id="abc123",
        anonymous=False,
        created_at=datetime(2015, 1, 1, tzinfo=UTC),
        token=result.token,
        created=created,
    )
    assert result.token.token == TOKEN
    assert result.token.expires_at == datetime(2016, 5, 28, 17, 16, 18, 817000, tzinfo=UTC)
    assert result.token.expires_at.utcoffset() == timedelta(0)
    assert api.log[0][0].headers["Content-Type"] == "application/json"
    assert TOKEN not in repr(result)


def test_create_or_refresh_user_422_gives_field_errors_and_is_not_retried(
    api: HTTPServer, client: BigInterviewClient
) -> None:
    api.expect_oneshot_request(USER_PATH, method="POST").respond_with_json(
        VALIDATION_BODY, status=422
    )

    with pytest.raises(AttributesRefused) as excinfo:
        client.create_or_refresh_user("abc123", first_name="", last_name="B", email="nope")

    error = excinfo.value
    assert error.status == 422
    assert error.error_type == "validation_error"
    assert error.field_errors == {
        "email": ["is invalid"],
        "first_name": ["is required", "is too short"],
    }
    assert "email, first_name" in str(error)
    assert len(api.log) == 1


def test_create_or_refresh_user_refuses_a_token_for_another_user(
    api: HTTPServer, client: BigInterviewClient
) -> None:
    other = {"user": {**USER_BODY["user"], "partner_id": "someone-else"}}
    api.expect_oneshot_request(USER_PATH, method="POST").respond_with_json(other)

    with pytest.raises(UnexpectedResponse) as excinfo:
        client.create_or_refresh_user("abc123", first_name="A", last_name="B", email="a@b.c")
    assert_no_secrets(excinfo.value, TOKEN, API_KEY)


def test_create_or_refresh_user_is_idempotent_so_it_is_retried(
    api: HTTPServer, client: BigInterviewClient
) -> None:
    api.expect_ordered_request(USER_PATH, method="POST").respond_with_data("", status=503)
    api.expect_ordered_request(USER_PATH, method="POST").respond_with_json(USER_BODY, status=201)

    assert client.create_or_refresh_user("abc123", first_name="A", last_name="B", email="a@b.c")
    assert len(api.log) == 2


# -- create_anonymous_user ---------------------------------------------------------------


def test_create_anonymous_user(api: HTTPServer, client: BigInterviewClient) -> None:
    api.expect_oneshot_request(ANON_PATH, method="POST", headers=AUTH).respond_with_json(
        ANONYMOUS_BODY, status=201
    )

    result = client.create_anonymous_user()

    assert result.partner_id == "anon_abc123"
    assert result.anonymous is True
    assert result.created is True
    assert result.token.token == TOKEN


def test_anonymous_flag_is_the_one_the_service_returns(
    api: HTTPServer, client: BigInterviewClient
) -> None:
    # One example in the documentation says false here: trust it, never assume.
    body = {"user": {**ANONYMOUS_BODY["user"], "anonymous": False}}
    api.expect_oneshot_request(ANON_PATH, method="POST").respond_with_json(body, status=201)

    assert client.create_anonymous_user().anonymous is False


@pytest.mark.parametrize("status", [502, 503, 504])
def test_anonymous_creation_is_never_resent_after_a_gateway_error(
    api: HTTPServer, client: BigInterviewClient, sleeps: SleepRecorder, status: int
) -> None:
    api.expect_request(ANON_PATH, method="POST").respond_with_data(HTML_PAGE, status=status)

    with pytest.raises(ServerError):
        client.create_anonymous_user()
    assert len(api.log) == 1
    assert sleeps.delays == []


def test_anonymous_creation_is_never_resent_after_a_read_timeout(
    api: HTTPServer, make_client: Callable[..., BigInterviewClient]
) -> None:
    api.expect_request(ANON_PATH, method="POST").respond_with_handler(
        sleeping_handler(0.5, ANONYMOUS_BODY)
    )
    client = make_client(read_timeout=0.1, max_retries=3)

    with pytest.raises(TransportError, match="read timed out"):
        client.create_anonymous_user()
    wait_for_log(api, 1)
    time.sleep(0.2)  # a re-sent request would have arrived by now
    assert len(api.log) == 1


def test_anonymous_creation_is_retried_after_429(
    api: HTTPServer, client: BigInterviewClient, sleeps: SleepRecorder
) -> None:
    api.expect_ordered_request(ANON_PATH, method="POST").respond_with_data(
        "", status=429, headers={"Retry-After": "1"}
    )
    api.expect_ordered_request(ANON_PATH, method="POST").respond_with_json(
        ANONYMOUS_BODY, status=201
    )

    assert client.create_anonymous_user().partner_id == "anon_abc123"
    assert len(api.log) == 2
    assert sleeps.delays == [1.0]


# -- list_tracks / list_interviews ---------------------------------------------------------


def test_list_tracks(api: HTTPServer, client: BigInterviewClient) -> None:
    api.expect_oneshot_request(TRACKS_PATH, method="GET", headers=AUTH).respond_with_json(
        TRACKS_BODY
    )

    fast, mastery = client.list_tracks("abc123")

    assert isinstance(fast, Track)
    assert (fast.title, fast.progress) == ("Fast Track", Decimal("1.0000"))
    assert (mastery.title, mastery.progress) == ("Mastery Track", Decimal("0.5000"))
    assert isinstance(mastery.progress, Decimal)
    assert [(s.step, s.title, s.link, s.completed) for s in mastery.steps] == [
        (1, "Job Interview Fundamentals", "/members/curriculum?chapter=1", True),
        (2, "Why do you want to work here?", "/members/curriculum?chapter=6", False),
    ]


def test_list_interviews(api: HTTPServer, client: BigInterviewClient) -> None:
    second = {**INTERVIEW, "id": 95608, "completed": False}
    api.expect_oneshot_request(INTERVIEWS_PATH, method="GET", headers=AUTH).respond_with_json(
        {"interviews": [INTERVIEW, second]}
    )

    first, other = client.list_interviews("abc123")

    assert isinstance(first, Interview)
    assert first.id == 95607
    assert first.title == "Top 10 Questions"
    assert first.interviewer_name == "Jordan"
    assert first.category == "Top 10 Questions: 1"
    assert first.completed is True
    assert first.created_at == datetime(2015, 5, 18, 16, 37, 13, tzinfo=UTC)
    assert first.updated_at == datetime(2015, 5, 25, 5, 0, tzinfo=UTC)
    assert first.review_path == "/members/mock_interviews/95607/review"
    assert first.retake_path == "/members/mock_interviews/interview_info/52"
    assert first.raw == INTERVIEW
    assert (other.id, other.completed) == (95608, False)


@pytest.mark.parametrize("path", [TRACKS_PATH, INTERVIEWS_PATH])
def test_lists_raise_not_found_for_an_unknown_user(
    api: HTTPServer, client: BigInterviewClient, path: str
) -> None:
    api.expect_oneshot_request(path, method="GET").respond_with_json(
        {"error": {"type": "not_found", "message": "User not found"}}, status=404
    )
    call = client.list_tracks if path == TRACKS_PATH else client.list_interviews

    with pytest.raises(NotFound) as excinfo:
        call("abc123")
    assert excinfo.value.status == 404
    assert excinfo.value.error_type == "not_found"
    assert "User not found" in str(excinfo.value)
    assert len(api.log) == 1


@pytest.mark.parametrize(
    "partner_id", ["", "has space", "x" * 65, "ünïcode", "../etc", "abc\n", "a/b", None, 123]
)
def test_a_bad_partner_id_is_refused_before_any_request(
    api: HTTPServer, client: BigInterviewClient, partner_id: Any
) -> None:
    for call in (
        client.list_tracks,
        client.list_interviews,
        lambda pid: client.create_or_refresh_user(pid, first_name="A", last_name="B", email="e"),
    ):
        with pytest.raises(InvalidPartnerId):
            call(partner_id)
    assert api.log == []


def test_the_longest_valid_partner_id_is_accepted(
    api: HTTPServer, client: BigInterviewClient
) -> None:
    partner_id = "aZ0-_" * 12 + "abcd"
    assert len(partner_id) == 64
    api.expect_oneshot_request(f"/api/users/{partner_id}/tracks").respond_with_json({"tracks": []})
    assert client.list_tracks(partner_id) == []


# -- error statuses and bodies -----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "exception"),
    [
        (400, APIError),
        (401, AuthenticationError),
        (403, Forbidden),
        (404, NotFound),
        (409, APIError),
        (422, AttributesRefused),
        (429, RateLimited),
        (500, ServerError),
        (502, ServerError),
        (503, ServerError),
        (504, ServerError),
    ],
)
@pytest.mark.parametrize("body_kind", ["documented", *ODD_ERROR_BODIES])
def test_error_statuses_map_to_the_exception_tree_whatever_the_body(
    api: HTTPServer,
    make_client: Callable[..., BigInterviewClient],
    status: int,
    exception: type[APIError],
    body_kind: str,
) -> None:
    if body_kind == "documented":
        body = json.dumps({"error": {"type": "some_error", "message": "Explained"}})
        content_type = "application/json"
    else:
        body, content_type = ODD_ERROR_BODIES[body_kind]
    api.expect_request(TRACKS_PATH).respond_with_data(
        body, status=status, content_type=content_type
    )

    with pytest.raises(exception) as excinfo:
        make_client(max_retries=0).list_tracks("abc123")

    error = excinfo.value
    assert type(error) is exception
    assert error.status == status
    assert f"HTTP {status}" in str(error)
    assert repr(error).startswith(f"{exception.__name__}(status={status}")
    if body_kind == "documented":
        assert (error.error_type, error.error_message) == ("some_error", "Explained")
        assert "Explained" in str(error)
    else:
        assert error.error_type is None
        assert "<html>" not in str(error)
    assert error.__context__ is None
    assert error.__cause__ is None
    assert len(api.log) == 1


def test_errors_survive_pickling_as_celery_results_do(
    api: HTTPServer, make_client: Callable[..., BigInterviewClient]
) -> None:
    api.expect_request(TRACKS_PATH).respond_with_data(
        "", status=429, headers={"Retry-After": "120"}
    )
    with pytest.raises(RateLimited) as excinfo:
        make_client(max_retries=0).list_tracks("abc123")

    copy = pickle.loads(pickle.dumps(excinfo.value))
    assert (copy.status, copy.retry_after, str(copy)) == (429, 120.0, str(excinfo.value))


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (HTML_PAGE, "text/html"),
        ("", "application/json"),
        ('{"user": {"partner_id": "abc123", "token": {"tok', "application/json"),
        ("[]", "application/json"),
        ('{"user": {"partner_id": "abc123"}}', "application/json"),
        ('{"user": "abc123"}', "application/json"),
    ],
)
def test_a_success_body_that_is_not_the_documented_shape_is_unexpected(
    api: HTTPServer, client: BigInterviewClient, body: str, content_type: str
) -> None:
    api.expect_oneshot_request(USER_PATH).respond_with_data(
        body, status=200, content_type=content_type
    )
    with pytest.raises(UnexpectedResponse) as excinfo:
        client.create_or_refresh_user("abc123", first_name="A", last_name="B", email="a@b.c")
    assert excinfo.value.status == 200
    assert excinfo.value.__context__ is None


@pytest.mark.parametrize(
    "tracks",
    [
        {},
        {"tracks": {"title": "not a list"}},
        {"tracks": [{"title": "T", "progress": 1.5, "tracks": []}]},
        {"tracks": [{"title": "T", "progress": -0.1, "tracks": []}]},
        {"tracks": [{"title": "T", "progress": "lots", "tracks": []}]},
        {"tracks": [{"title": "T", "progress": True, "tracks": []}]},
        {"tracks": [{"title": "T", "progress": None, "tracks": []}]},
        {"tracks": [{"progress": 0.5, "tracks": []}]},
        {"tracks": [{"title": "T", "progress": 0.5, "tracks": "x"}]},
        {"tracks": [{"title": "T", "progress": 0.5, "tracks": [{"step": "1", "title": "S"}]}]},
        {"tracks": [{"title": "T", "progress": 0.5, "tracks": [{"step": True, "title": "S"}]}]},
        {
            "tracks": [
                {
                    "title": "T",
                    "progress": 0.5,
                    "tracks": [{"step": 1, "title": "S", "completed": "false"}],
                }
            ]
        },
    ],
)
def test_malformed_tracks_are_unexpected(
    api: HTTPServer, client: BigInterviewClient, tracks: Any
) -> None:
    api.expect_oneshot_request(TRACKS_PATH).respond_with_json(tracks)
    with pytest.raises(UnexpectedResponse):
        client.list_tracks("abc123")


@pytest.mark.parametrize(
    "interview",
    [
        {**INTERVIEW, "id": "not-a-number"},
        {**INTERVIEW, "id": True},
        {**INTERVIEW, "updated_at": "yesterday"},
        {**INTERVIEW, "links": ["/review"]},
        {**INTERVIEW, "completed": "yes"},
        {k: v for k, v in INTERVIEW.items() if k != "id"},
        "95607",
    ],
)
def test_malformed_interviews_are_unexpected(
    api: HTTPServer, client: BigInterviewClient, interview: Any
) -> None:
    api.expect_oneshot_request(INTERVIEWS_PATH).respond_with_json({"interviews": [interview]})
    with pytest.raises(UnexpectedResponse):
        client.list_interviews("abc123")


def test_a_string_interview_id_and_missing_optional_fields_are_accepted() -> None:
    interview = Interview.from_api({"id": "95607"})
    assert (interview.id, interview.title, interview.completed) == (95607, "", False)
    assert interview.updated_at is None
    assert interview.review_path == ""


def test_redirects_are_not_followed(api: HTTPServer, client: BigInterviewClient) -> None:
    api.expect_oneshot_request(USER_PATH, method="POST").respond_with_data(
        "", status=302, headers={"Location": f"http://127.0.0.1:{api.port}/elsewhere"}
    )
    with pytest.raises(UnexpectedResponse) as excinfo:
        client.create_or_refresh_user("abc123", first_name="A", last_name="B", email="a@b.c")
    assert excinfo.value.status == 302
    assert paths(api) == [USER_PATH]


# -- odd data: NUL characters, dates Python cannot hold, deep nesting ---------------------


def nested(depth: int, inner: str = "[]") -> str:
    """JSON text of arrays nested ``depth`` levels deep (``inner`` at the bottom)."""
    return "[" * (depth - 1) + inner + "]" * (depth - 1)


def test_nul_characters_are_removed_from_keys_and_values_and_logged_by_place(
    api: HTTPServer, client: BigInterviewClient, caplog: pytest.LogCaptureFixture
) -> None:
    interview = {**INTERVIEW, "title": "Top\u0000 10", "notes\u0000": ["a\u0000b"]}
    api.expect_oneshot_request(INTERVIEWS_PATH).respond_with_json({"interviews": [interview]})

    with caplog.at_level(logging.WARNING, logger="django_biginterview"):
        [parsed] = client.list_interviews("abc123")

    assert parsed.title == "Top 10"
    assert parsed.raw == {**INTERVIEW, "title": "Top 10", "notes": ["ab"]}
    [record] = caplog.records
    assert record.levelno == logging.WARNING
    message = record.getMessage()
    assert "list_interviews" in message
    for place in ("interviews[0].title", "interviews[0].notes", "interviews[0].notes[0]"):
        assert place in message
    assert "Top" not in message and API_KEY not in message  # the place, never the value


def test_a_nul_in_an_error_body_is_removed_too(
    api: HTTPServer, make_client: Callable[..., BigInterviewClient]
) -> None:
    body = {"error": {"type": "validation\u0000error", "message": {"email": ["is\u0000 bad"]}}}
    api.expect_request(USER_PATH).respond_with_json(body, status=422)
    with pytest.raises(AttributesRefused) as excinfo:
        make_client().create_or_refresh_user("abc123", first_name="A", last_name="B", email="e")
    assert excinfo.value.error_type == "validationerror"
    assert excinfo.value.field_errors == {"email": ["is bad"]}


def test_clean_json_keeps_the_later_value_when_two_keys_become_equal() -> None:
    value, places = clean_json(json.loads('{"ab": 1, "a\\u0000b": 2, "c": "\\u0000"}'))
    assert value == {"ab": 2, "c": ""}
    assert sorted(places) == ["ab", "c"]
    assert clean_json("a\x00b") == ("ab", ["(the whole body)"])
    assert clean_json(7) == (7, [])


def test_clean_json_refuses_nesting_past_the_limit_without_recursing() -> None:
    deepest = json.loads(nested(MAX_JSON_DEPTH, '{"k": "\\u0000"}'))
    assert clean_json(deepest)[1] == ["[0]" * (MAX_JSON_DEPTH - 1) + ".k"]
    with pytest.raises(JSONTooDeep):
        clean_json(json.loads(nested(MAX_JSON_DEPTH + 1)))
    deep: list[Any] = []
    for _ in range(5_000 - 1):  # built without the parser, which may itself refuse it
        deep = [deep]
    with pytest.raises(JSONTooDeep):
        clean_json(deep)  # past Python's recursion limit


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ("0001-01-01T00:00:00+01:00", "updated_at"),  # year 0 in UTC: OverflowError before
        ("9999-12-31T23:59:59-01:00", "updated_at"),  # year 10000 in UTC
        ("0001-01-01T00:00:00Z", "created_at"),  # valid, but a day's arithmetic overflows
        ("9999-12-31T12:00:00Z", "created_at"),
    ],
)
def test_an_interview_date_out_of_range_is_unexpected_and_named(
    api: HTTPServer, client: BigInterviewClient, value: str, field: str
) -> None:
    api.expect_oneshot_request(INTERVIEWS_PATH).respond_with_json(
        {"interviews": [{**INTERVIEW, field: value}]}
    )
    with pytest.raises(UnexpectedResponse, match=f"'{field}' holds a date out of range") as excinfo:
        client.list_interviews("abc123")
    assert excinfo.value.status == 200
    assert excinfo.value.__context__ is None


@pytest.mark.parametrize("value", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_a_token_expiry_out_of_range_is_unexpected_and_named(
    api: HTTPServer, client: BigInterviewClient, value: str
) -> None:
    body = json.loads(json.dumps(USER_BODY))
    body["user"]["token"]["expires_at"] = value
    api.expect_oneshot_request(USER_PATH).respond_with_json(body)
    with pytest.raises(UnexpectedResponse, match="'expires_at' holds a date out of range"):
        client.create_or_refresh_user("abc123", first_name="A", last_name="B", email="e")


def test_parse_datetime_accepts_the_years_it_can_compute_with() -> None:
    assert parse_datetime("0002-01-01T00:00:00Z") == datetime(2, 1, 1, tzinfo=UTC)
    assert parse_datetime("9998-12-31T23:59:59+00:00") == datetime(
        9998, 12, 31, 23, 59, 59, tzinfo=UTC
    )
    with pytest.raises(UnexpectedResponse, match="Response date holds a date out of range"):
        parse_datetime("0001-01-01T00:00:00+01:00")


@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 5_000, 100_000])
def test_a_success_body_nested_too_deeply_is_unexpected(
    api: HTTPServer, client: BigInterviewClient, depth: int
) -> None:
    # 100,000 levels make Python's JSON parser raise RecursionError; 5,000 do not.
    body = '{"interviews": [' + nested(depth - 2) + "]}"
    api.expect_oneshot_request(INTERVIEWS_PATH).respond_with_data(
        body, content_type="application/json"
    )
    with pytest.raises(UnexpectedResponse, match="nested more than 500 levels") as excinfo:
        client.list_interviews("abc123")
    assert excinfo.value.status == 200
    assert excinfo.value.__context__ is None


@pytest.mark.parametrize("depth", [5_000, 100_000])
@pytest.mark.parametrize(("status", "exception"), [(404, NotFound), (500, ServerError)])
def test_an_error_body_nested_too_deeply_still_maps_by_status(
    api: HTTPServer,
    make_client: Callable[..., BigInterviewClient],
    depth: int,
    status: int,
    exception: type[APIError],
) -> None:
    body = '{"error": {"type": "x", "message": ' + nested(depth) + "}}"
    api.expect_request(TRACKS_PATH).respond_with_data(
        body, status=status, content_type="application/json"
    )
    with pytest.raises(exception) as excinfo:
        make_client(max_retries=0).list_tracks("abc123")
    assert excinfo.value.status == status
    assert (excinfo.value.error_type, excinfo.value.error_message) == (None, None)
    assert excinfo.value.__context__ is None


# -- retries -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_are_retried_on_reads(
    api: HTTPServer, client: BigInterviewClient, sleeps: SleepRecorder, status: int
) -> None:
    api.expect_ordered_request(TRACKS_PATH).respond_with_data(HTML_PAGE, status=status)
    api.expect_ordered_request(TRACKS_PATH).respond_with_data("", status=status)
    api.expect_ordered_request(TRACKS_PATH).respond_with_json(TRACKS_BODY)

    assert len(client.list_tracks("abc123")) == 2
    assert len(api.log) == 3
    assert len(sleeps.delays) == 2


def test_retries_stop_after_max_retries(
    api: HTTPServer, make_client: Callable[..., BigInterviewClient], sleeps: SleepRecorder
) -> None:
    api.expect_request(INTERVIEWS_PATH).respond_with_data("", status=503)

    with pytest.raises(ServerError):
        make_client(max_retries=3).list_interviews("abc123")
    assert len(api.log) == 4
    assert len(sleeps.delays) == 3


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422, 500])
def test_other_errors_are_not_retried(
    api: HTTPServer, client: BigInterviewClient, sleeps: SleepRecorder, status: int
) -> None:
    api.expect_request(TRACKS_PATH).respond_with_data("", status=status)
    with pytest.raises(APIError):
        client.list_tracks("abc123")
    assert len(api.log) == 1
    assert sleeps.delays == []


def test_backoff_is_exponential_with_jitter_and_capped(
    api: HTTPServer, make_client: Callable[..., BigInterviewClient], sleeps: SleepRecorder
) -> None:
    api.expect_request(TRACKS_PATH).respond_with_data("", status=503)
    client = make_client(max_retries=6, backoff=0.1, backoff_max=0.5)

    with pytest.raises(ServerError):
        client.list_tracks("abc123")

    assert len(sleeps.delays) == 6
    for attempt, delay in enumerate(sleeps.delays):
        assert 0 <= delay <= min(0.5, 0.1 * 2**attempt)


def test_default_sleep_really_waits_between_attempts(
    api: HTTPServer, make_client: Callable[..., BigInterviewClient]
) -> None:
    api.expect_ordered_request(TRACKS_PATH).respond_with_data("", status=503)
    api.expect_ordered_request(TRACKS_PATH).respond_with_json({"tracks": []})
    client = make_client(sleep=time.sleep, backoff=0.01, backoff_max=0.01)

    assert client.list_tracks("abc123") == []
    assert len(api.log) == 2


def test_read_timeouts_are_retried_on_reads(
    api: HTTPServer, make_client: Callable[..., BigInterviewClient]
) -> None:
    api.expect_request(TRACKS_PATH).respond_with_handler(sleeping_handler(0.4, TRACKS_BODY))
    client = make_client(read_timeout=0.1, max_retries=2)

    with pytest.raises(TransportError, match="read timed out") as excinfo:
        client.list_tracks("abc123")
    assert excinfo.value.status is None
    assert excinfo.value.transient is True
    # requests' ReadTimeout holds the request, Authorization header included: not chained.
    assert excinfo.value.__context__ is None
    assert_no_secrets(excinfo.value, API_KEY)
    wait_for_log(api, 3)


def test_throttle_is_called_before_every_attempt(
    api: HTTPServer, make_client: Callable[..., BigInterviewClient]
) -> None:
    calls: list[int] = []
    api.expect_request(TRACKS_PATH).respond_with_data("", status=502)
    client = make_client(throttle=lambda: calls.append(len(api.log)))

    with pytest.raises(ServerError):
        client.list_tracks("abc123")
    assert calls == [0, 1, 2]  # before each of the three requests


# -- 429 and Retry-After -----------------------------------------------------------------


def test_retry_after_in_seconds_is_honoured(
    api: HTTPServer, client: BigInterviewClient, sleeps: SleepRecorder
) -> None:
    api.expect_ordered_request(TRACKS_PATH).respond_with_data(
        "", status=429, headers={"Retry-After": "2"}
    )
    api.expect_ordered_request(TRACKS_PATH).respond_with_json({"tracks": []})

    assert client.list_tracks("abc123") == []
    assert sleeps.delays == [2.0]
    assert len(api.log) == 2


def test_retry_after_as_http_date_is_honoured(
    api: HTTPServer, client: BigInterviewClient, sleeps: SleepRecorder
) -> None:
    when = datetime.now(UTC) + timedelta(seconds=4)
    api.expect_ordered_request(TRACKS_PATH).respond_with_data(
        "", status=429, headers={"Retry-After": format_datetime(when, usegmt=True)}
    )
    api.expect_ordered_request(TRACKS_PATH).respond_with_json({"tracks": []})

    assert client.list_tracks("abc123") == []
    [delay] = sleeps.delays
    assert 2 < delay <= 4  # the date has whole seconds
    assert len(api.log) == 2


def test_429_without_retry_after_backs_off(
    api: HTTPServer, client: BigInterviewClient, sleeps: SleepRecorder
) -> None:
    api.expect_ordered_request(TRACKS_PATH).respond_with_json(
        {"error": {"type": "rate_limited", "message": "Slow down"}}, status=429
    )
    api.expect_ordered_request(TRACKS_PATH).respond_with_json({"tracks": []})

    assert client.list_tracks("abc123") == []
    assert len(sleeps.delays) == 1
    assert 0 <= sleeps.delays[0] <= 0.001


def test_a_retry_after_longer_than_backoff_max_raises_at_once(
    api: HTTPServer, make_client: Callable[..., BigInterviewClient], sleeps: SleepRecorder
) -> None:
    api.expect_request(TRACKS_PATH).respond_with_data(
        "", status=429, headers={"Retry-After": "3600"}
    )

    with pytest.raises(RateLimited) as excinfo:
        make_client(backoff_max=30).list_tracks("abc123")
    assert excinfo.value.retry_after == 3600.0
    assert excinfo.value.transient is True
    assert len(api.log) == 1
    assert sleeps.delays == []


def test_a_wait_that_would_pass_the_deadline_raises_the_error_instead(
    api: HTTPServer, make_client: Callable[..., BigInterviewClient], sleeps: SleepRecorder
) -> None:
    api.expect_request(TRACKS_PATH).respond_with_data("", status=503, headers={"Retry-After": "5"})

    with pytest.raises(ServerError) as excinfo:
        make_client(backoff_max=30, request_deadline=3).list_tracks("abc123")
    assert excinfo.value.retry_after == 5.0
    assert len(api.log) == 1
    assert sleeps.delays == []


def test_rate_limited_after_the_last_retry_carries_retry_after(
    api: HTTPServer, client: BigInterviewClient, sleeps: SleepRecorder
) -> None:
    api.expect_request(TRACKS_PATH).respond_with_data("", status=429, headers={"Retry-After": "1"})

    with pytest.raises(RateLimited) as excinfo:
        client.list_tracks("abc123")
    assert excinfo.value.retry_after == 1.0
    assert len(api.log) == 3
    assert sleeps.delays == [1.0, 1.0]


def test_retry_after_on_503_is_honoured(
    api: HTTPServer, client: BigInterviewClient, sleeps: SleepRecorder
) -> None:
    api.expect_ordered_request(TRACKS_PATH).respond_with_data(
        "", status=503, headers={"Retry-After": "3"}
    )
    api.expect_ordered_request(TRACKS_PATH).respond_with_json({"tracks": []})

    assert client.list_tracks("abc123") == []
    assert sleeps.delays == [3.0]


def test_a_long_maintenance_window_raises_at_once_with_its_retry_after(
    api: HTTPServer, make_client: Callable[..., BigInterviewClient], sleeps: SleepRecorder
) -> None:
    api.expect_request(TRACKS_PATH).respond_with_data(
        "", status=503, headers={"Retry-After": "900"}
    )

    with pytest.raises(ServerError) as excinfo:
        make_client(backoff_max=30).list_tracks("abc123")
    assert excinfo.value.retry_after == 900.0
    assert (len(api.log), sleeps.delays) == (1, [])


def test_retry_after_is_read_only_on_429_and_503(
    api: HTTPServer, client: BigInterviewClient, sleeps: SleepRecorder
) -> None:
    api.expect_ordered_request(TRACKS_PATH).respond_with_data(
        "", status=502, headers={"Retry-After": "3600"}
    )
    api.expect_ordered_request(TRACKS_PATH).respond_with_json({"tracks": []})

    assert client.list_tracks("abc123") == []
    [delay] = sleeps.delays
    assert delay <= 0.001  # the usual backoff, not an hour


def test_anonymous_creation_is_not_resent_after_a_503_even_with_retry_after(
    api: HTTPServer, client: BigInterviewClient, sleeps: SleepRecorder
) -> None:
    api.expect_request(ANON_PATH, method="POST").respond_with_data(
        "", status=503, headers={"Retry-After": "1"}
    )

    with pytest.raises(ServerError) as excinfo:
        client.create_anonymous_user()
    assert excinfo.value.retry_after == 1.0
    assert (len(api.log), sleeps.delays) == (1, [])


def test_parse_retry_after() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after(" 0 ", now) == 0.0
    assert parse_retry_after("-5", now) == 0.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now) == 0.0  # in the past
    for junk in (None, "", "soon", "nan", "inf", "Thu, 99 Foo"):
        assert parse_retry_after(junk, now) is None


# -- connection failures -------------------------------------------------------------------


@pytest.fixture
def refused_url() -> Iterator[str]:
    """A port that refuses connections: bound, never listening (so nobody else takes it)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    sock.close()


@pytest.mark.parametrize("anonymous", [False, True])
def test_refused_connections_are_retried_even_for_anonymous_creation(
    refused_url: str, sleeps: SleepRecorder, anonymous: bool
) -> None:
    attempts: list[None] = []
    client = BigInterviewClient(
        base_url=refused_url,
        api_key=API_KEY,
        max_retries=2,
        backoff=0.001,
        sleep=sleeps,
        throttle=lambda: attempts.append(None),
    )

    with pytest.raises(TransportError, match="connection failed") as excinfo:
        client.create_anonymous_user() if anonymous else client.list_tracks("abc123")

    assert len(attempts) == 3
    assert len(sleeps.delays) == 2
    assert excinfo.value.__context__ is None
    assert excinfo.value.__cause__ is None
    assert_no_secrets(excinfo.value, API_KEY)


class DroppingServer:
    """Reads each request, then closes the connection without answering: the request
    reached the server, but the client never learns what happened."""

    def __init__(self) -> None:
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self.requests_seen = 0
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            with connection:
                connection.settimeout(2)
                if connection.recv(65536):
                    self.requests_seen += 1

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join(timeout=5)
        self._socket.close()


@pytest.fixture
def dropping_server() -> Iterator[DroppingServer]:
    server = DroppingServer()
    yield server
    server.stop()


def test_a_dropped_connection_is_retried_on_reads(
    dropping_server: DroppingServer, sleeps: SleepRecorder
) -> None:
    client = BigInterviewClient(
        base_url=dropping_server.url, api_key=API_KEY, max_retries=2, sleep=sleeps
    )
    with pytest.raises(TransportError, match="connection broken"):
        client.list_interviews("abc123")
    assert dropping_server.requests_seen == 3


def test_a_dropped_connection_never_resends_anonymous_creation(
    dropping_server: DroppingServer, sleeps: SleepRecorder
) -> None:
    client = BigInterviewClient(
        base_url=dropping_server.url, api_key=API_KEY, max_retries=2, sleep=sleeps
    )
    with pytest.raises(TransportError, match="connection broken"):
        client.create_anonymous_user()
    assert dropping_server.requests_seen == 1
    assert sleeps.delays == []


# -- secrets -------------------------------------------------------------------------------


def test_a_key_echoed_by_the_service_is_redacted(
    api: HTTPServer, make_client: Callable[..., BigInterviewClient]
) -> None:
    body = {
        "error": {
            "type": f"bad_key_{API_KEY}",
            "message": {"authorization": [f"Key {API_KEY} is revoked"]},
        }
    }
    api.expect_request(TRACKS_PATH).respond_with_json(body, status=401)

    with pytest.raises(AuthenticationError) as excinfo:
        make_client(max_retries=0).list_tracks("abc123")

    error = excinfo.value
    assert error.error_message == {"authorization": [f"Key {REDACTED} is revoked"]}
    assert_no_secrets(error, API_KEY)


def test_no_secret_in_exceptions_or_logs(
    api: HTTPServer,
    make_client: Callable[..., BigInterviewClient],
    refused_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)  # the client's, urllib3's and requests' loggers alike
    api.expect_request(TRACKS_PATH).respond_with_data(f"bad key {API_KEY}", status=503)
    api.expect_request(INTERVIEWS_PATH).respond_with_json(
        {"error": {"type": "unauthorized", "message": f"{API_KEY} unknown"}}, status=403
    )
    # A token in a body that then fails to parse, and a token for the wrong user.
    api.expect_request(USER_PATH).respond_with_data(
        json.dumps(USER_BODY)[:-5], content_type="application/json"
    )
    api.expect_request("/api/users/other").respond_with_json(USER_BODY)
    client = make_client()
    offline = BigInterviewClient(base_url=refused_url, api_key=API_KEY, max_retries=1, backoff=0)

    errors: list[BaseException] = []
    for call in (
        lambda: client.list_tracks("abc123"),
        lambda: client.list_interviews("abc123"),
        lambda: client.create_or_refresh_user("abc123", first_name="A", last_name="B", email="e"),
        lambda: client.create_or_refresh_user("other", first_name="A", last_name="B", email="e"),
        lambda: offline.list_tracks("abc123"),
    ):
        with pytest.raises(APIError) as excinfo:
            call()
        errors.append(excinfo.value)

    for error in errors:
        assert_no_secrets(error, API_KEY, TOKEN)
    assert "retry" in caplog.text  # the retries were logged...
    assert API_KEY not in caplog.text  # ...without the key
    assert TOKEN not in caplog.text
    assert API_KEY not in repr(client)


def test_the_token_is_hidden_in_result_reprs(api: HTTPServer, client: BigInterviewClient) -> None:
    api.expect_oneshot_request(ANON_PATH).respond_with_json(ANONYMOUS_BODY, status=201)
    result = client.create_anonymous_user()
    assert TOKEN not in repr(result)
    assert TOKEN not in str(result)
    assert TOKEN not in repr(result.token)


# -- construction, settings and parsing ---------------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"base_url": "", "api_key": API_KEY},
        {"base_url": "acme.biginterview.com", "api_key": API_KEY},
        {"base_url": "https://acme.biginterview.com", "api_key": ""},
        {"base_url": "https://acme.biginterview.com", "api_key": API_KEY, "read_timeout": 0},
        {"base_url": "https://acme.biginterview.com", "api_key": API_KEY, "connect_timeout": -1},
        {"base_url": "https://acme.biginterview.com", "api_key": API_KEY, "request_deadline": 0},
    ],
)
def test_constructor_refuses_unusable_options(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        BigInterviewClient(**options)


def test_get_client_reads_settings_when_called(settings: Any) -> None:
    settings.BIGINTERVIEW = {
        **settings.BIGINTERVIEW,
        "BASE_URL": "https://one.biginterview.com/",
        "CONNECT_TIMEOUT": 1.5,
        "READ_TIMEOUT": 4,
        "MAX_RETRIES": 5,
        "REQUEST_DEADLINE": 12,
    }
    first = get_client()
    assert get_client() is first  # pooled connections are reused
    assert first.base_url == "https://one.biginterview.com"
    assert first.timeout == (1.5, 4.0)
    assert first.max_retries == 5
    assert first.request_deadline == 12.0

    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "API_KEY": "another-key"}
    second = get_client()
    assert second is not first
    assert second._api_key == "another-key"


def test_get_client_names_a_missing_setting(settings: Any) -> None:
    settings.BIGINTERVIEW = {"BASE_URL": "https://acme.biginterview.com"}
    with pytest.raises(MissingSetting, match=r"BIGINTERVIEW\['API_KEY'\]"):
        get_client()


def test_get_client_talks_to_the_configured_server(api: HTTPServer, settings: Any) -> None:
    settings.BIGINTERVIEW = {
        **settings.BIGINTERVIEW,
        "BASE_URL": f"http://127.0.0.1:{api.port}",
    }
    api.expect_oneshot_request(TRACKS_PATH, headers=AUTH).respond_with_json(TRACKS_BODY)
    assert [track.title for track in get_client().list_tracks("abc123")] == [
        "Fast Track",
        "Mastery Track",
    ]


def test_parse_datetime_gives_aware_utc() -> None:
    assert parse_datetime("2015-05-18T16:37:13.000Z") == datetime(
        2015, 5, 18, 16, 37, 13, tzinfo=UTC
    )
    shifted = parse_datetime("2015-05-18T18:37:13+02:00")
    assert shifted == datetime(2015, 5, 18, 16, 37, 13, tzinfo=UTC)
    assert shifted is not None and shifted.tzinfo is UTC
    assert parse_datetime("2015-05-18T16:37:13") == datetime(2015, 5, 18, 16, 37, 13, tzinfo=UTC)
    assert parse_datetime(None) is None
    assert parse_datetime("") is None
    for junk in ("yesterday", 1431967033, "2015-13-45T00:00:00Z"):
        with pytest.raises(UnexpectedResponse):
            parse_datetime(junk)


# -- against the sandbox -------------------------------------------------------------------


def test_the_client_reads_the_sandbox_as_the_contract_says(biginterview_sandbox: Any) -> None:
    """The sandbox shares no code with the client, so a misread contract shows up here."""
    client = get_client()
    profile = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.com"}

    created = client.create_or_refresh_user("abc123", **profile)
    refreshed = client.create_or_refresh_user("abc123", **profile)
    assert (created.created, refreshed.created) == (True, False)
    assert created.anonymous is False
    assert refreshed.token.expires_at > datetime.now(UTC)

    tracks = client.list_tracks("abc123")
    assert [track.title for track in tracks] == ["Fast Track", "Mastery Track"]
    assert all(track.progress == Decimal(0) and track.steps for track in tracks)

    started = biginterview_sandbox.start_interview("abc123", title="Top 10 Questions")
    [interview] = client.list_interviews("abc123")
    assert (interview.id, interview.title) == (started["id"], "Top 10 Questions")
    assert interview.updated_at is not None and interview.updated_at.tzinfo is UTC

    anonymous = client.create_anonymous_user()
    assert anonymous.anonymous is True
    assert anonymous.partner_id != "abc123"

    with pytest.raises(NotFound):
        client.list_interviews("nobody-here")
    with pytest.raises(AuthenticationError):
        BigInterviewClient(base_url=biginterview_sandbox.url, api_key="wrong-key").list_tracks(
            "abc123"
        )


@pytest.mark.parametrize(
    ("old", "new"), [("PermissionDenied", Forbidden), ("ValidationError", AttributesRefused)]
)
def test_the_old_exception_names_still_import_with_a_deprecation_warning(old, new):
    from django_biginterview import exceptions

    with pytest.warns(DeprecationWarning, match=new.__name__):
        assert getattr(exceptions, old) is new
    with pytest.raises(AttributeError):
        exceptions.NoSuchError  # noqa: B018
