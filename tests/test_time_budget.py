"""Time limits over real sockets: a deadline per API call (``REQUEST_DEADLINE``), one budget
per practice click (``SSO_TIME_BUDGET``), and the watchdog that cuts off a response
trickling in a byte at a time, which no read timeout notices (each read gets its byte).

The trickling server is a raw socket server, so the status line and headers can trickle
too. Each response it sends would take about ten seconds in all: a client without the
deadline waits it out (and these tests fail on their time bounds), one with it gives up
at the deadline.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from django_biginterview.client import BigInterviewClient
from django_biginterview.exceptions import TransportError
from django_biginterview.models import Account
from django_biginterview.testing.factories import UserFactory

API_KEY = "935d85189822bf96c28c4fa79d3d8f31"
TRACKS_PATH = "/api/users/abc123/tracks"
#: Seconds between two bytes: well under every read timeout used here.
INTERVAL = 0.2
#: Slack on top of a deadline for thread scheduling on a busy machine.
SLACK = 3.0


def http_response(status: str, body: bytes, content_type: str = "application/json") -> bytes:
    head = (
        f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode("ascii") + body


#: A valid answer to list_tracks, padded to take 54 * INTERVAL (about 11 s) to trickle.
SLOW_TRACKS = http_response("200 OK", b'{"tracks": []}' + b" " * 40)


class TricklingServer:
    """Answers each request (one per connection) with ``response``: after ``silence``
    seconds, ``head_at_once`` bytes in one piece, then a byte every ``INTERVAL`` seconds."""

    def __init__(self, response: bytes, *, head_at_once: int = 0, silence: float = 0.0) -> None:
        self.response = response
        self.head_at_once = head_at_once
        self.silence = silence
        self.requests = 0
        self.completed = 0
        self._stopped = threading.Event()
        self._socket = socket.create_server(("127.0.0.1", 0))
        self._socket.settimeout(0.05)
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        self._threads: list[threading.Thread] = []
        self._accepting = threading.Thread(target=self._accept, daemon=True)
        self._accepting.start()

    def _accept(self) -> None:
        while not self._stopped.is_set():
            try:
                connection, _ = self._socket.accept()
            except TimeoutError:
                continue
            thread = threading.Thread(target=self._answer, args=(connection,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _answer(self, connection: socket.socket) -> None:
        with connection:
            connection.settimeout(5)
            received = b""
            while b"\r\n\r\n" not in received:
                chunk = connection.recv(65536)
                if not chunk:
                    return
                received += chunk
            self.requests += 1
            if self._stopped.wait(self.silence):
                return
            try:
                connection.sendall(self.response[: self.head_at_once])
                for byte in self.response[self.head_at_once :]:
                    if self._stopped.wait(INTERVAL):
                        return
                    connection.sendall(bytes([byte]))
            except OSError:  # the client hung up: what a deadline does
                return
            self.completed += 1

    def stop(self) -> None:
        self._stopped.set()
        self._accepting.join(timeout=5)
        for thread in self._threads:
            thread.join(timeout=5)
        self._socket.close()


@pytest.fixture
def trickling() -> Iterator[Any]:
    servers: list[TricklingServer] = []

    def start(response: bytes = SLOW_TRACKS, **options: Any) -> TricklingServer:
        server = TricklingServer(response, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def make_client(url: str, **options: Any) -> BigInterviewClient:
    options = {"connect_timeout": 1.0, "read_timeout": 1.0, "max_retries": 2, **options}
    return BigInterviewClient(base_url=url, api_key=API_KEY, backoff=0.01, **options)


def timed_failure(call: Any) -> tuple[TransportError, float]:
    started = time.monotonic()
    with pytest.raises(TransportError) as excinfo:
        call()
    return excinfo.value, time.monotonic() - started


# -- the client ----------------------------------------------------------------------------


def test_a_body_trickling_in_is_cut_off_at_the_call_deadline(trickling: Any) -> None:
    server = trickling(head_at_once=SLOW_TRACKS.index(b"\r\n\r\n") + 4)
    client = make_client(server.url, request_deadline=2.0)

    error, elapsed = timed_failure(lambda: client.list_tracks("abc123"))

    assert str(error) == "Could not complete list_tracks: deadline of 2 s passed"
    assert error.transient is True
    assert 1.5 <= elapsed < 2.0 + SLACK
    assert (server.requests, server.completed) == (1, 0)  # no retry once the time is up
    client.close()


def test_headers_trickling_in_are_cut_off_at_the_budget(trickling: Any) -> None:
    server = trickling()
    client = make_client(server.url)

    with client.deadline(1.5):
        error, elapsed = timed_failure(lambda: client.list_tracks("abc123"))

    assert str(error) == "Could not complete list_tracks: deadline of 1.5 s passed"
    assert 1.0 <= elapsed < 1.5 + SLACK
    assert server.completed == 0
    client.close()


def test_a_server_silent_past_the_time_left_is_not_waited_for(trickling: Any) -> None:
    """The read timeout (10 s) is capped at the time left (1 s) on every attempt."""
    server = trickling(silence=5.0, head_at_once=len(SLOW_TRACKS))
    client = make_client(server.url, read_timeout=10.0)

    with client.deadline(1.0):
        error, elapsed = timed_failure(lambda: client.list_tracks("abc123"))

    assert "deadline of 1 s passed" in str(error)
    assert elapsed < 1.0 + SLACK
    assert server.requests == 1
    client.close()


def test_an_exhausted_budget_sends_nothing(trickling: Any) -> None:
    server = trickling()
    client = make_client(server.url)

    with client.deadline(0.05):
        time.sleep(0.1)  # spent elsewhere, e.g. waiting for a row lock
        error, _ = timed_failure(lambda: client.list_tracks("abc123"))

    assert "deadline of 0.05 s passed" in str(error)
    assert server.requests == 0
    client.close()


def test_a_nested_budget_never_extends_the_outer_one(trickling: Any) -> None:
    server = trickling()
    client = make_client(server.url)

    with client.deadline(0.05), client.deadline(60):
        time.sleep(0.1)
        timed_failure(lambda: client.list_tracks("abc123"))

    assert server.requests == 0
    client.close()


# -- one shared client, many threads -------------------------------------------------------


class KeepAliveServer:
    """HTTP/1.1 with keep-alive: ``/api/users/slow/tracks`` trickles a byte at a time, every
    other path answers at once. Records the client port of every request."""

    def __init__(self) -> None:
        self.ports: list[int] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                owner.ports.append(self.client_address[1])
                body = b'{"tracks": []}' + (b" " * 40 if "/slow/" in self.path else b"")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                if "/slow/" not in self.path:
                    self.wfile.write(body)
                    return
                try:
                    for byte in body:
                        time.sleep(INTERVAL)
                        self.wfile.write(bytes([byte]))
                        self.wfile.flush()
                except OSError:
                    self.close_connection = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()


@pytest.fixture
def keep_alive() -> Iterator[KeepAliveServer]:
    server = KeepAliveServer()
    yield server
    server.stop()


def test_a_finished_call_leaves_its_connection_alone_for_the_next(
    keep_alive: KeepAliveServer,
) -> None:
    """The watchdog of a finished call never fires: the pooled connection it used serves
    the next call after that call's deadline has long passed."""
    client = make_client(keep_alive.url, request_deadline=0.3)
    assert client.list_tracks("abc123") == []
    time.sleep(0.6)
    assert client.list_tracks("abc123") == []
    client.close()
    assert len(keep_alive.ports) == 2
    assert len(set(keep_alive.ports)) == 1  # the same kept-alive connection


def test_one_thread_cut_off_leaves_the_others_on_the_shared_client_alone(
    keep_alive: KeepAliveServer,
) -> None:
    client = make_client(keep_alive.url, max_retries=0)
    slow_done = threading.Event()
    outcomes: dict[str, list[Any]] = {"slow": [], "fast": []}

    def slow() -> None:
        try:
            with client.deadline(1.0):
                outcomes["slow"].append(timed_failure(lambda: client.list_tracks("slow")))
        finally:
            slow_done.set()

    def fast() -> None:
        # No budget in this thread: the other thread's does not apply here.
        end = time.monotonic() + 30
        while time.monotonic() < end:
            try:
                outcomes["fast"].append(client.list_tracks("abc123"))
            except TransportError as exc:  # would be a connection cut by the wrong watchdog
                outcomes["fast"].append(exc)
            if slow_done.wait(0.01):
                break

    threads = [threading.Thread(target=slow)] + [threading.Thread(target=fast) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    client.close()

    [(error, elapsed)] = outcomes["slow"]
    assert "deadline of 1 s passed" in str(error)
    assert elapsed < 1.0 + SLACK
    assert outcomes["fast"] and all(result == [] for result in outcomes["fast"])


# -- a practice click ----------------------------------------------------------------------


@pytest.mark.django_db
def test_a_click_ends_in_the_unavailable_page_within_its_budget(
    client: Any, settings: Any, trickling: Any
) -> None:
    """Today's worst case: a 503 page a byte at a time, read timeout 1 s, retries allowed.
    Without one budget the click took every byte of every attempt."""
    page = b"<html><body>" + b" " * 40 + b"Down</body></html>"
    server = trickling(http_response("503 Service Unavailable", page, "text/html"))
    settings.BIGINTERVIEW = {
        **settings.BIGINTERVIEW,
        "BASE_URL": server.url,
        "READ_TIMEOUT": 1.0,
        "MAX_RETRIES": 3,
        "SSO_TIME_BUDGET": 2.0,
    }
    client.force_login(UserFactory(first_name="Ada", last_name="L", email="ada@example.com"))

    started = time.monotonic()
    response = client.get("/biginterview/practice/")
    elapsed = time.monotonic() - started

    assert response.status_code == 503
    assert b"Big Interview is unavailable" in response.content
    assert 1.5 <= elapsed < 2.0 + SLACK
    assert server.completed == 0
    assert not Account.objects.exists()  # the first click's account went with its call
