"""The sandbox's webhook deliveries, received by a tiny real HTTP server in the test.

Proves the exact documented request (headers and body), in-order delivery, retries with
the same notification id after a non-200 or a timeout, and that a 200 stops retrying.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from django_biginterview.sandbox import DeliveryRecord, Sandbox

WEBHOOK_KEY = "receiver-key-0123456789abcdef0123"


@dataclass
class Received:
    method: str
    path: str
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """Answers each POST with the next of ``statuses`` (200 once they run out)."""

    url: str = ""
    statuses: list[int] = field(default_factory=list)
    delay: float = 0.0
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def next_status(self) -> int:
        with self.lock:
            return self.statuses.pop(0) if self.statuses else 200


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with state.lock:
                state.requests.append(Received("POST", self.path, list(self.headers.items()), body))
            if state.delay:
                time.sleep(state.delay)
            status = state.next_status()
            self.send_response(status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02})
    thread.start()
    state.url = f"http://127.0.0.1:{server.server_address[1]}/webhooks/biginterview?src=bi"
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


def make_sandbox(receiver: Receiver, **kwargs: Any) -> Sandbox:
    kwargs.setdefault("webhook_retry_delays", (0.2, 0.2, 0.2, 0.2, 0.2))
    sandbox = Sandbox(webhook_url=receiver.url, webhook_key=WEBHOOK_KEY, **kwargs).start()
    sandbox.create_user("abc123")
    return sandbox


@pytest.fixture
def sb(receiver: Receiver) -> Iterator[Sandbox]:
    sandbox = make_sandbox(receiver)
    yield sandbox
    sandbox.stop()


def test_delivery_has_exactly_the_documented_headers_and_body(
    sb: Sandbox, receiver: Receiver
) -> None:
    interview = sb.start_interview("abc123", "Top 10 Questions")

    assert sb.wait_for_deliveries(1)

    [request] = receiver.requests
    assert request.method == "POST"
    assert request.path == "/webhooks/biginterview?src=bi"
    headers = dict(request.headers)
    assert len(headers) == len(request.headers), "no header may be sent twice"
    assert headers == {
        "Host": receiver.url.split("/")[2],
        "Authorization": WEBHOOK_KEY,
        "Accept": "*/*; q=0.5, application/xml",
        "Accept-Encoding": "gzip, deflate",
        "Cache-Control": "no-cache",
        "Connection": "close",
        "Content-Length": str(len(request.body)),
        "Content-Type": "application/json; charset=utf-8",
        "User-Agent": "BigInterview/1.0",
    }
    webhook = request.json["webhook"]
    assert list(request.json) == ["webhook"]
    assert webhook == {
        "id": webhook["id"],
        "event_name": "interview.created",
        "partner_id": "abc123",
        "api_id": str(interview["id"]),
        "api_type": "Interview",
        "api_object": interview,
    }
    assert isinstance(webhook["id"], str) and webhook["id"]
    assert sb.deliveries == [DeliveryRecord(webhook["id"], "interview.created", 1, 200)]


def test_events_arrive_in_order_with_unique_ids_and_null_object_for_deletes(
    sb: Sandbox, receiver: Receiver
) -> None:
    interview = sb.start_interview("abc123")
    completed = sb.complete_interview("abc123", interview["id"])
    sb.delete_interview("abc123", interview["id"])

    assert sb.wait_for_deliveries(3)

    bodies = [request.json["webhook"] for request in receiver.requests]
    assert [body["event_name"] for body in bodies] == [
        "interview.created",
        "interview.updated",
        "interview.deleted",
    ]
    assert len({body["id"] for body in bodies}) == 3
    assert bodies[1]["api_object"] == completed
    assert bodies[1]["api_object"]["completed"] is True
    assert bodies[1]["api_object"]["updated_at"] > bodies[0]["api_object"]["updated_at"]
    assert bodies[2]["api_object"] is None
    assert bodies[2]["api_id"] == str(interview["id"])
    assert bodies[2]["api_type"] == "Interview"


def test_non_200_is_retried_with_the_same_id_until_a_200(sb: Sandbox, receiver: Receiver) -> None:
    receiver.statuses = [500, 204]
    sb.start_interview("abc123")

    assert sb.wait_for_deliveries(1, succeeded=True)
    time.sleep(0.5)  # two retry delays: a 4th attempt would have been made by now

    ids = [request.json["webhook"]["id"] for request in receiver.requests]
    assert len(ids) == 3 and len(set(ids)) == 1
    assert [(record.attempt, record.status) for record in sb.deliveries] == [
        (1, 500),
        (2, 204),
        (3, 200),
    ]
    assert sb.deliveries[0].error is None and not sb.deliveries[0].succeeded


def test_attempts_stop_after_the_configured_count(receiver: Receiver) -> None:
    receiver.statuses = [503] * 10
    sandbox = make_sandbox(receiver, webhook_retry_delays=(0.05, 0.05))
    try:
        sandbox.start_interview("abc123")
        assert sandbox.wait_for_deliveries(3)
        time.sleep(0.3)
        assert [record.attempt for record in sandbox.deliveries] == [1, 2, 3]
        assert len(receiver.requests) == 3
    finally:
        sandbox.stop()


def test_slow_receiver_counts_as_a_failure_and_is_retried(receiver: Receiver) -> None:
    receiver.delay = 0.5
    sandbox = make_sandbox(receiver, webhook_retry_delays=(0.05,), webhook_timeout=0.2)
    try:
        sandbox.start_interview("abc123")
        assert sandbox.wait_for_deliveries(2, timeout=10)
        first, second = sandbox.deliveries
        assert first.attempt == 1 and second.attempt == 2
        assert first.error is not None and first.error.startswith("timeout")
    finally:
        sandbox.stop()


def test_unreachable_receiver_is_recorded_as_an_error(receiver: Receiver) -> None:
    sandbox = Sandbox(webhook_url="http://127.0.0.1:9/hook", webhook_retry_delays=()).start()
    try:
        sandbox.create_user("abc123")
        sandbox.start_interview("abc123")
        assert sandbox.wait_for_deliveries(1)
        [record] = sandbox.deliveries
        assert record.error is not None and record.error.startswith("connection error")
    finally:
        sandbox.stop()


def test_a_failing_notification_does_not_hold_back_later_ones(
    sb: Sandbox, receiver: Receiver
) -> None:
    receiver.statuses = [500]
    with sb.state.lock:  # both queued at once, long before the 0.2 s retry is due
        interview = sb.start_interview("abc123")
        sb.complete_interview("abc123", interview["id"])

    assert sb.wait_for_deliveries(2, succeeded=True)

    events = [request.json["webhook"]["event_name"] for request in receiver.requests]
    # The created event failed first and was re-sent after the update: out of order,
    # exactly as the contract warns receivers.
    assert events == ["interview.created", "interview.updated", "interview.created"]


def test_redeliver_sends_the_same_notification_again(sb: Sandbox, receiver: Receiver) -> None:
    sb.start_interview("abc123")
    assert sb.wait_for_deliveries(1)
    notification_id = sb.notifications[0]["webhook"]["id"]

    sb.redeliver(notification_id)

    assert sb.wait_for_deliveries(2)
    assert receiver.requests[0].body == receiver.requests[1].body


def test_no_webhook_url_means_no_delivery_but_notifications_are_kept() -> None:
    with Sandbox() as sandbox:
        sandbox.create_user("abc123")
        sandbox.start_interview("abc123")
        assert not sandbox.wait_for_deliveries(1, timeout=0.2)
        assert [p["webhook"]["event_name"] for p in sandbox.notifications] == ["interview.created"]


def test_webhook_url_can_be_set_on_a_running_sandbox(receiver: Receiver) -> None:
    with Sandbox() as sandbox:
        sandbox.webhook_url = receiver.url
        sandbox.webhook_key = WEBHOOK_KEY
        sandbox.create_user("abc123")
        sandbox.start_interview("abc123")
        assert sandbox.wait_for_deliveries(1)
    assert dict(receiver.requests[0].headers)["Authorization"] == WEBHOOK_KEY
