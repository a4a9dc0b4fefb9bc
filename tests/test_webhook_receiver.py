"""The webhook endpoint over HTTP: what it accepts, what it refuses, and that a refusal
stores nothing.

Every request goes through a CSRF-enforcing client (or real HTTP to ``live_server``).
Processing is not run here except where stated; ``test_webhook_processing`` covers it.
"""

from __future__ import annotations

import io
import json
import logging
import os
from collections.abc import Iterator
from typing import Any

import pytest
from django.core.handlers.asgi import ASGIRequest
from django.db import OperationalError, connection
from django.test import Client, RequestFactory
from django.urls import resolve

from django_biginterview import publisher as publisher_module
from django_biginterview import tasks, webhook_processing, webhooks
from django_biginterview.client import MAX_JSON_DEPTH
from django_biginterview.models import Interview, WebhookEvent
from django_biginterview.signals import webhook_received
from django_biginterview.testing.factories import AccountFactory
from django_biginterview.views import WebhookView
from tests.support.signals import capture
from tests.support.webhooks import (
    EXAMPLE_BODY,
    EXAMPLE_HEADERS,
    EXAMPLE_KEY,
    ClientPoster,
    Enqueued,
    LiveServerPoster,
    WebhookAuthContract,
    body_of,
    delivery_headers,
    sandbox_history,
    webhook_url,
)


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> Iterator[Enqueued]:
    calls = Enqueued()
    monkeypatch.setattr(tasks.process_webhook_events, "apply_async", calls.record)
    yield calls
    calls.ids()  # drain the publisher before the real broker is patched back in


@pytest.fixture
def poster(db: None, enqueued: Enqueued) -> ClientPoster:
    return ClientPoster()


@pytest.fixture
def notifications() -> list[dict[str, Any]]:
    return sandbox_history(updates=2, delete=True)


def post(poster: ClientPoster, body: bytes, **headers: str) -> Any:
    return poster.post(body, delivery_headers(**headers))


# --- Key check: the shared contract through both transports ---------------------------


class TestAuthThroughTestClient(WebhookAuthContract):
    """The auth contract through Django's CSRF-enforcing test client."""


class TestAuthOverRealHTTP(WebhookAuthContract):
    """The auth contract over a real socket (``live_server``), headers as sent on the wire."""

    @pytest.fixture
    def poster(self, transactional_db: None, live_server: Any, enqueued: Enqueued) -> Any:
        return LiveServerPoster(live_server.url)


# --- The contract's example delivery ---------------------------------------------------


def test_the_spec_example_delivery_is_accepted_stored_and_processed(
    db: None, settings: Any, enqueued: Enqueued, django_capture_on_commit_callbacks: Any
) -> None:
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "WEBHOOK_KEYS": [EXAMPLE_KEY]}
    account = AccountFactory(partner_id="abc123")
    headers = dict(EXAMPLE_HEADERS)
    content_type = headers.pop("Content-Type")
    client = Client(enforce_csrf_checks=True)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            webhook_url(), EXAMPLE_BODY, content_type=content_type, headers=headers
        )
    assert response.status_code == 200, response.content
    assert response.json() == {"status": "stored"}

    event = WebhookEvent.objects.get()
    assert event.remote_id == "123456789"
    assert event.event_name == "interview.created"
    assert event.partner_id == "abc123"
    assert event.api_id == "95607"  # sent as a string, kept as such
    assert event.api_type == "Interview"
    assert event.payload == json.loads(EXAMPLE_BODY)  # the full payload, nothing else
    assert event.status == WebhookEvent.Status.PENDING
    assert enqueued.ids() == [event.pk]

    tasks.process_webhook_event(event.pk)  # what the worker runs (real worker: integration)
    event.refresh_from_db()
    assert event.status == WebhookEvent.Status.PROCESSED
    interview = Interview.objects.get(account=account)
    assert (interview.remote_id, interview.title, interview.completed) == (
        95607,
        "Top 10 Questions",
        True,
    )
    assert interview.review_path == "/members/mock_interviews/95607"


def test_the_response_is_a_small_json_ack_and_headers_are_not_stored(
    poster: ClientPoster, notifications: list[dict[str, Any]]
) -> None:
    answer = post(poster, body_of(notifications[0]), **{"X-Forwarded-For": "10.0.0.1"})
    assert answer.status == 200
    assert answer.json == {"status": "stored"}
    event = WebhookEvent.objects.get()
    stored = json.dumps(
        {f.name: str(getattr(event, f.name)) for f in WebhookEvent._meta.concrete_fields}
    )
    for header_value in [*delivery_headers().values(), "10.0.0.1"]:
        if header_value not in ("application/json; charset=utf-8",):
            assert header_value not in stored


def test_api_id_as_a_number_is_accepted(
    poster: ClientPoster, notifications: list[dict[str, Any]]
) -> None:
    notification = notifications[-1]  # the delete: api_id is what it acts on
    notification["webhook"]["api_id"] = int(notification["webhook"]["api_id"])
    assert post(poster, body_of(notification)).status == 200
    assert WebhookEvent.objects.get().api_id == str(notification["webhook"]["api_id"])


@pytest.mark.parametrize(
    "content_type",
    ["application/json", "application/json; charset=utf-8", "application/json;charset=UTF-8"],
)
def test_json_with_or_without_charset(
    poster: ClientPoster, notifications: list[dict[str, Any]], content_type: str
) -> None:
    answer = post(poster, body_of(notifications[0]), **{"Content-Type": content_type})
    assert answer.status == 200


def test_unknown_event_is_stored_not_refused(
    poster: ClientPoster, notifications: list[dict[str, Any]]
) -> None:
    notification = notifications[0]
    notification["webhook"].update(event_name="interview.exploded", api_object=None)
    assert post(poster, body_of(notification)).status == 200
    event = WebhookEvent.objects.get()
    assert event.event_name == "interview.exploded"
    outcome = webhook_processing.process_event(event.pk)
    assert outcome.status == "ignored"
    event.refresh_from_db()
    assert (event.status, event.reason) == ("ignored", "unknown event interview.exploded")


# --- Duplicates ------------------------------------------------------------------------


def test_a_retried_notification_is_200_without_a_second_row_or_processing(
    poster: ClientPoster, notifications: list[dict[str, Any]], enqueued: Enqueued
) -> None:
    with capture(webhook_received) as received:
        first = post(poster, body_of(notifications[0]))
        again = post(poster, body_of(notifications[0]))
    assert (first.status, first.json) == (200, {"status": "stored"})
    assert (again.status, again.json) == (200, {"status": "duplicate"})
    event = WebhookEvent.objects.get()
    # The test's transaction never commits, so on-commit work did not run here; the
    # transactional test below checks the enqueue and the signal fire exactly once.
    assert enqueued.ids() == [] and received == []
    assert event.remote_id == notifications[0]["webhook"]["id"]


def test_only_a_new_event_is_enqueued_and_announced_once_committed(
    transactional_db: None, enqueued: Enqueued, notifications: list[dict[str, Any]]
) -> None:
    with capture(webhook_received) as received:
        poster = ClientPoster()
        for _ in range(3):
            assert post(poster, body_of(notifications[0])).status == 200
        assert post(poster, body_of(notifications[1])).status == 200
    events = list(WebhookEvent.objects.order_by("pk"))
    assert len(events) == 2
    assert enqueued.ids() == [events[0].pk, events[1].pk]
    assert [kw["event"].pk for kw in received] == [events[0].pk, events[1].pk]
    assert received[0]["event"].payload == notifications[0]


# --- Exemptions: CSRF, LoginRequiredMiddleware, ATOMIC_REQUESTS ------------------------


def test_the_csrf_enforcing_client_really_enforces_csrf(db: None) -> None:
    """Guards the other tests: this client refuses a CSRF-protected POST (the admin login),
    so the webhook's 200s prove its exemption."""
    response = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "x"})
    assert response.status_code == 403


def test_works_with_login_required_middleware(
    poster: ClientPoster, settings: Any, notifications: list[dict[str, Any]]
) -> None:
    settings.MIDDLEWARE = [
        *settings.MIDDLEWARE,
        "django.contrib.auth.middleware.LoginRequiredMiddleware",
    ]
    # Sanity: the middleware is active (the admin index now redirects to the login).
    assert Client().get("/admin/").status_code == 302
    assert post(poster, body_of(notifications[0])).status == 200
    assert WebhookEvent.objects.count() == 1


def test_not_wrapped_in_atomic_requests(
    transactional_db: None,
    enqueued: Enqueued,
    monkeypatch: pytest.MonkeyPatch,
    notifications: list[dict[str, Any]],
) -> None:
    monkeypatch.setitem(connection.settings_dict, "ATOMIC_REQUESTS", True)
    seen_in_atomic: list[bool] = []
    store = webhooks.store_delivery

    def spy(delivery: webhooks.Delivery) -> webhooks.StoredDelivery:
        seen_in_atomic.append(connection.in_atomic_block)
        return store(delivery)

    monkeypatch.setattr(webhooks, "store_delivery", spy)
    assert resolve(webhook_url()).func._non_atomic_requests == {"default"}
    assert post(ClientPoster(), body_of(notifications[0])).status == 200
    assert seen_in_atomic == [False]
    assert len(enqueued.ids()) == 1


# --- Refusals: status code, named problem, nothing stored -------------------------------


def _bad_bodies() -> list[tuple[str, bytes, str]]:
    good = sandbox_history(updates=0, delete=True)
    created, deleted = good[0], good[1]
    obj = created["webhook"]["api_object"]

    def variant(base: dict[str, Any], **changes: Any) -> bytes:
        notification = json.loads(json.dumps(base))
        for name, value in changes.items():
            if value is _DROP:
                notification["webhook"].pop(name)
            else:
                notification["webhook"][name] = value
        return body_of(notification)

    return [
        ("empty", b"", "empty body"),
        ("malformed", b'{"webhook": {"id": ', "malformed JSON"),
        ("not-utf8", '{"webhook": "caf\u00e9"}'.encode("latin-1"), "not UTF-8"),
        ("nan", b'{"webhook": {"id": NaN}}', "malformed JSON"),
        ("array", b"[]", "JSON object"),
        ("no-webhook", b'{"id": "1"}', "'webhook'"),
        ("webhook-string", b'{"webhook": "x"}', "'webhook'"),
        ("too-deep", b'{"webhook": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "JSON"),
        ("no-id", variant(created, id=_DROP), "webhook.id is required"),
        ("id-number", variant(created, id=123456789), "webhook.id must be a string"),
        ("id-empty", variant(created, id=""), "webhook.id must not be blank"),
        ("id-blank", variant(created, id="   "), "webhook.id must not be blank"),
        ("partner-blank", variant(created, partner_id=" "), "webhook.partner_id must not be"),
        ("huge-number", b'{"webhook": {"id": "1", "n": 1e400}}', "out of range"),
        ("object-no-id", variant(created, api_object={}), "api_object: Response object has no"),
        (
            "object-id-text",
            variant(created, api_object={"id": "abc"}),
            "api_object: Interview id is not an integer",
        ),
        (
            "object-id-huge",
            variant(created, api_object={"id": 2**64}),
            "api_object: Interview id is out of range",
        ),
        (
            "updated-bad-date",
            variant(created, event_name="interview.updated", api_object={"id": 1, "updated_at": 5}),
            "api_object:",
        ),
        ("id-too-long", variant(created, id="9" * 256), "webhook.id is longer"),
        ("no-event", variant(created, event_name=_DROP), "webhook.event_name is required"),
        ("event-list", variant(created, event_name=["x"]), "webhook.event_name must be"),
        ("no-partner", variant(created, partner_id=None), "webhook.partner_id is required"),
        ("partner-long", variant(created, partner_id="p" * 65), "webhook.partner_id is longer"),
        ("api-id-list", variant(created, api_id=[1]), "webhook.api_id must be"),
        ("api-id-bool", variant(created, api_id=True), "webhook.api_id must be"),
        ("api-type-number", variant(created, api_type=1), "webhook.api_type must be"),
        ("object-string", variant(created, api_object="{}"), "webhook.api_object must be"),
        ("created-no-object", variant(created, api_object=None), "api_object is required"),
        ("deleted-no-api-id", variant(deleted, api_id=_DROP), "api_id must be an integer"),
        ("deleted-bad-api-id", variant(deleted, api_id="x1"), "api_id must be an integer"),
        # Only a NUL: nothing is left once it is removed.
        ("nul-only-id", variant(created, id="\u0000"), "webhook.id must not be blank"),
        ("nested-5000", deep_body(5_000), "nested too deeply"),
        ("nested-501", deep_body(MAX_JSON_DEPTH + 1), "nested too deeply"),
        (
            "updated-before-year-1",
            variant(created, api_object={**obj, "updated_at": "0001-01-01T00:00:00+01:00"}),
            "webhook.api_object: Response field 'updated_at' holds a date out of range",
        ),
        (
            "created-after-9999",
            variant(created, api_object={**obj, "created_at": "9999-12-31T23:59:59-01:00"}),
            "webhook.api_object: Response field 'created_at' holds a date out of range",
        ),
    ]


def deep_body(depth: int) -> bytes:
    """A body nested ``depth`` levels deep in all (the payload and ``webhook`` are two)."""
    arrays = depth - 2
    return b'{"webhook": {"id": "1", "deep": ' + b"[" * arrays + b"]" * arrays + b"}}"


_DROP = object()
BAD_BODIES = _bad_bodies()


@pytest.mark.parametrize(
    ("body", "problem"), [(b, p) for _, b, p in BAD_BODIES], ids=[name for name, _, _ in BAD_BODIES]
)
def test_bad_body_is_400_naming_the_problem_and_stores_nothing(
    poster: ClientPoster, enqueued: Enqueued, body: bytes, problem: str, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, "django_biginterview")
    answer = post(poster, body)
    assert answer.status == 400, answer.body
    error = answer.json["error"]
    assert error["type"] == "invalid_request"
    assert problem in error["message"]
    assert problem in caplog.text  # logged with its reason
    assert not WebhookEvent.objects.exists()
    assert enqueued.ids() == []


@pytest.mark.parametrize(
    "content_type",
    [
        "",
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin-1",
        "application/xml",
    ],
)
def test_not_json_is_415(
    poster: ClientPoster, notifications: list[dict[str, Any]], content_type: str
) -> None:
    answer = post(poster, body_of(notifications[0]), **{"Content-Type": content_type})
    assert answer.status == 415
    assert answer.json["error"]["type"] == "unsupported_media_type"
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"])
def test_only_post_is_allowed(
    poster: ClientPoster, notifications: list[dict[str, Any]], method: str
) -> None:
    answer = poster.post(body_of(notifications[0]), delivery_headers(), method=method)
    assert answer.status == 405
    assert answer.json["error"]["type"] == "method_not_allowed"  # the receiver's own shape
    assert not WebhookEvent.objects.exists()


def test_body_over_the_limit_is_413_from_content_length(
    poster: ClientPoster, settings: Any, caplog: Any
) -> None:
    caplog.set_level(logging.WARNING, "django_biginterview")
    padding = "x" * (256 * 1024)
    body = json.dumps(
        {"webhook": {"id": "big", "event_name": "e", "partner_id": "p", "padding": padding}}
    ).encode()
    assert len(body) > 256 * 1024  # the default limit: 256 KiB
    answer = post(poster, body)
    assert answer.status == 413
    assert answer.json["error"]["type"] == "payload_too_large"
    assert "larger than 262144 bytes" in caplog.text
    assert not WebhookEvent.objects.exists()

    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "WEBHOOK_MAX_BODY_SIZE": len(body)}
    assert post(poster, body).status == 200  # at the limit: accepted


def test_the_read_itself_is_bounded_when_content_length_is_absent(db: None, settings: Any) -> None:
    """Under ASGI a chunked body comes without ``Content-Length``: the view still reads at
    most limit + 1 bytes and answers 413."""
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "WEBHOOK_MAX_BODY_SIZE": 1000}
    stream = io.BytesIO(b"{" + b" " * 10_000_000 + b"}")
    scope = {
        "type": "http",
        "method": "POST",
        "path": webhook_url(),
        "query_string": b"",
        "headers": [
            (b"authorization", delivery_headers()["Authorization"].encode()),
            (b"content-type", b"application/json"),
            (b"transfer-encoding", b"chunked"),
        ],
    }
    request = ASGIRequest(scope, stream)
    assert "CONTENT_LENGTH" not in request.META
    response = WebhookView.as_view()(request)
    assert response.status_code == 413
    assert stream.tell() <= 1001
    assert not WebhookEvent.objects.exists()


def _streamed_request(body: bytes, **meta: Any) -> Any:
    """A WSGI request whose body comes without ``Content-Length`` (chunked)."""
    request = RequestFactory().generic(
        "POST",
        webhook_url(),
        b"",
        headers={"Authorization": delivery_headers()["Authorization"]},
        CONTENT_TYPE="application/json",
        **meta,
    )
    request.META.pop("CONTENT_LENGTH", None)
    request.META["wsgi.input"] = io.BytesIO(body)
    return request


def test_a_chunked_body_is_read_when_the_server_marks_its_end(
    db: None, enqueued: Enqueued, notifications: list[dict[str, Any]], settings: Any
) -> None:
    body = body_of(notifications[0])
    response = WebhookView.as_view()(_streamed_request(body, **{"wsgi.input_terminated": True}))
    assert response.status_code == 200, response.content
    assert WebhookEvent.objects.get().remote_id == notifications[0]["webhook"]["id"]

    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "WEBHOOK_MAX_BODY_SIZE": len(body) - 1}
    stream = _streamed_request(b"{" + b" " * 10_000_000 + b"}", **{"wsgi.input_terminated": True})
    assert WebhookView.as_view()(stream).status_code == 413
    assert stream.META["wsgi.input"].tell() == len(body)  # limit + 1 bytes read, no more


def test_a_chunked_body_a_server_cannot_delimit_is_411_not_an_empty_body(
    db: None, notifications: list[dict[str, Any]]
) -> None:
    request = _streamed_request(body_of(notifications[0]), HTTP_TRANSFER_ENCODING="chunked")
    response = WebhookView.as_view()(request)
    assert response.status_code == 411
    assert json.loads(response.content)["error"]["type"] == "length_required"
    assert not WebhookEvent.objects.exists()


def test_the_schema_documents_the_receiver(client: Client, django_user_model: Any) -> None:
    client.force_login(django_user_model.objects.create_user("schema-reader"))
    schema = client.get("/biginterview/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/biginterview/webhook/"]["post"]
    assert set(operation["responses"]) >= {"200", "400", "401", "405", "413", "415", "503"}
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    webhook = body["properties"]["webhook"]
    assert webhook["required"] == ["id", "event_name", "partner_id"]
    assert {"integer", "string"} == {
        kind["type"] for kind in webhook["properties"]["api_id"]["oneOf"]
    }
    assert "Celery" not in operation["description"]  # for Big Interview's side, not ours
    assert "/biginterview/webhook" not in schema["paths"]  # the slashless alias is hidden


def test_a_request_without_remote_addr_is_handled(db: None, caplog: Any) -> None:
    caplog.set_level(logging.WARNING, "django_biginterview")
    request = RequestFactory().post(webhook_url(), b"{}", content_type="application/json")
    del request.META["REMOTE_ADDR"]
    response = WebhookView.as_view()(request)
    assert response.status_code == 401
    assert "unknown address" in caplog.text


# --- Infrastructure trouble never loses an accepted delivery or answers 500 -------------


def test_broker_error_on_enqueue_still_answers_200_with_the_row_stored(
    transactional_db: None,
    monkeypatch: pytest.MonkeyPatch,
    notifications: list[dict[str, Any]],
    caplog: Any,
) -> None:
    """Unit-level (the real broker outage is in ``test_webhook_integration``)."""
    from kombu.exceptions import OperationalError as BrokerDown

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise BrokerDown("Error 111 connecting to 127.0.0.1:1. Connection refused.")

    monkeypatch.setattr(tasks.process_webhook_events, "apply_async", refuse)
    assert post(ClientPoster(), body_of(notifications[0])).status == 200
    assert publisher_module.webhook_publisher.flush()
    assert WebhookEvent.objects.get().status == WebhookEvent.Status.PENDING
    assert "sweeper will retry" in caplog.text


def test_database_unavailable_is_503_so_big_interview_retries(
    poster: ClientPoster, monkeypatch: pytest.MonkeyPatch, notifications: list[dict[str, Any]]
) -> None:
    def down(delivery: webhooks.Delivery) -> None:
        raise OperationalError("connection refused")

    monkeypatch.setattr(webhooks, "store_delivery", down)
    answer = post(poster, body_of(notifications[0]))
    assert answer.status == 503
    assert answer.json["error"]["type"] == "unavailable"


def test_a_nul_character_is_removed_logged_and_the_rest_stored_and_processed(
    poster: ClientPoster, notifications: list[dict[str, Any]], caplog: Any
) -> None:
    """PostgreSQL stores no U+0000: refusing it made Big Interview retry until the event
    was lost. It is dropped (the stored jsonb has none), and the place logged."""
    notification = notifications[0]
    notification["webhook"]["api_object"]["title"] = "Top\u0000 10"
    notification["webhook"]["extra\u0000"] = ["\u0000"]
    account = AccountFactory(partner_id=notification["webhook"]["partner_id"])
    caplog.set_level(logging.WARNING, "django_biginterview")

    answer = post(poster, body_of(notification))

    assert answer.status == 200, answer.body
    event = WebhookEvent.objects.get()
    assert event.payload["webhook"]["api_object"]["title"] == "Top 10"
    assert event.payload["webhook"]["extra"] == [""]
    assert "\\u0000" not in json.dumps(event.payload)
    [warning] = [r.getMessage() for r in caplog.records if "NUL" in r.getMessage()]
    assert notification["webhook"]["id"] in warning
    assert "webhook.api_object.title" in warning and "webhook.extra" in warning
    assert "Top" not in warning  # the place, never the value
    assert webhook_processing.process_event(event.pk).status == "processed"
    assert Interview.objects.get(account=account).title == "Top 10"


def test_nesting_up_to_the_documented_limit_is_stored(
    poster: ClientPoster, notifications: list[dict[str, Any]]
) -> None:
    notification = notifications[0]
    arrays = MAX_JSON_DEPTH - 2  # the payload and "webhook" are two levels
    notification["webhook"]["extra"] = json.loads("[" * arrays + "]" * arrays)
    assert post(poster, body_of(notification)).status == 200
    assert WebhookEvent.objects.count() == 1


def test_a_value_the_database_refuses_is_400_not_500(
    poster: ClientPoster, notifications: list[dict[str, Any]]
) -> None:
    """A lone UTF-16 surrogate is valid JSON text but PostgreSQL's jsonb refuses it."""
    body = body_of(notifications[0]).replace(b'"title": "', b'"title": "\\ud800', 1)
    answer = post(poster, body)
    if connection.vendor == "postgresql":
        assert answer.status == 400
        assert "cannot be stored" in answer.json["error"]["message"]
        assert not WebhookEvent.objects.exists()
    else:  # other databases store it as text: kept, like any delivery
        assert answer.status == 200
        assert WebhookEvent.objects.count() == 1


# --- The publisher: ids to the broker off the request path ------------------------------


@pytest.fixture
def publisher(
    monkeypatch: pytest.MonkeyPatch,
) -> tuple[publisher_module.WebhookPublisher, Enqueued]:
    sent = Enqueued()
    monkeypatch.setattr(tasks.process_webhook_events, "apply_async", sent.record)
    return publisher_module.WebhookPublisher(batch_size=10, linger=0.05), sent


def test_publisher_sends_every_id_once_in_order_batched(
    publisher: tuple[publisher_module.WebhookPublisher, Enqueued],
) -> None:
    instance, sent = publisher
    for event_id in range(100):
        instance.submit(event_id)
    assert instance.flush()
    assert [pk for message in sent.messages for pk in message] == list(range(100))
    assert all(len(message) <= 10 for message in sent.messages)
    assert len(sent.messages) < 100  # several ids per message


def test_publisher_in_a_forked_child_drops_the_parents_buffer(
    publisher: tuple[publisher_module.WebhookPublisher, Enqueued],
) -> None:
    """After ``fork()`` the parent's ids are the parent's to send (or the sweeper's)."""
    instance, sent = publisher
    instance._pid, instance._pending = -1, [999]  # state inherited from a parent process
    instance.submit(5)
    assert instance.flush()
    assert sent.messages == [[5]]


def test_publisher_survives_a_broker_error(
    publisher: tuple[publisher_module.WebhookPublisher, Enqueued],
    monkeypatch: pytest.MonkeyPatch,
    caplog: Any,
) -> None:
    from kombu.exceptions import OperationalError as BrokerDown

    instance, sent = publisher
    outcomes: list[Any] = [BrokerDown("Connection refused")]

    def flaky(args: Any = (), **kwargs: Any) -> None:
        if outcomes:
            raise outcomes.pop()
        sent.record(args, **kwargs)

    monkeypatch.setattr(tasks.process_webhook_events, "apply_async", flaky)
    instance.submit(1)
    assert instance.flush()
    assert "Could not enqueue 1 webhook event(s); the sweeper will retry" in caplog.text
    instance.submit(2)
    assert instance.flush()
    assert sent.messages == [[2]]


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_publisher_in_a_child_forked_while_the_lock_is_held_still_works() -> None:
    """gunicorn forks workers at any moment; the publisher thread may hold its lock then."""
    import threading

    instance = publisher_module.WebhookPublisher(batch_size=10, linger=0.01)
    held, release = threading.Event(), threading.Event()

    def publisher_thread_holding_the_lock() -> None:
        with instance._condition:
            held.set()
            release.wait(5)

    thread = threading.Thread(target=publisher_thread_holding_the_lock)
    thread.start()
    held.wait(5)
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: it must not block on the lock the other thread held
        try:
            acquired = instance._condition.acquire(timeout=2)
            os.write(write_end, b"1" if acquired and not instance._pending else b"0")
        finally:
            os._exit(0)
    release.set()
    thread.join()
    os.waitpid(pid, 0)
    assert os.read(read_end, 1) == b"1"
