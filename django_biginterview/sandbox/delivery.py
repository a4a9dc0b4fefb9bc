"""Webhook deliveries, sent the way Big Interview sends them.

One background thread works through a schedule ordered by (due time, sequence): new
notifications go out in the order the changes happened; a delivery that does not get a
``200`` within the timeout is re-sent after the next configured delay with the same body
(hence the same ``id``), and meanwhile later notifications go ahead — which is how a
receiver can see events out of order, as the contract warns.

Requests are written with ``http.client`` so the headers are exactly the documented ones
and nothing else a library would add.
"""

from __future__ import annotations

import heapq
import http.client
import itertools
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlsplit

logger = logging.getLogger("django_biginterview.sandbox")

USER_AGENT = "BigInterview/1.0"


class DeliveryRecord(NamedTuple):
    """One delivery attempt. ``status`` is the HTTP status, or a string naming the error
    (``"timeout: ..."``, ``"connection error: ..."``) when no status came back."""

    notification_id: str
    event_name: str
    attempt: int
    status: int | str

    @property
    def succeeded(self) -> bool:
        return self.status == 200

    @property
    def error(self) -> str | None:
        return self.status if isinstance(self.status, str) else None


def delivery_headers(webhook_key: str | None, body: bytes) -> list[tuple[str, str]]:
    """The documented headers of a delivery, in the documented order."""
    headers = []
    if webhook_key:
        headers.append(("Authorization", webhook_key))
    headers += [
        ("Accept", "*/*; q=0.5, application/xml"),
        ("Accept-Encoding", "gzip, deflate"),
        ("Cache-Control", "no-cache"),
        ("Connection", "close"),
        ("Content-Length", str(len(body))),
        ("Content-Type", "application/json; charset=utf-8"),
        ("User-Agent", USER_AGENT),
    ]
    return headers


def post_webhook(url: str, webhook_key: str | None, body: bytes, timeout: float) -> int:
    """POST one delivery; returns the status. Raises ``OSError`` (timeouts included)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise OSError(f"not an http(s) URL: {url!r}")
    connection_class = (
        http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    )
    connection = connection_class(parts.hostname, parts.port, timeout=timeout)
    try:
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        connection.putrequest("POST", target, skip_accept_encoding=True)
        for name, value in delivery_headers(webhook_key, body):
            connection.putheader(name, value)
        connection.endheaders(body)
        response = connection.getresponse()
        response.read(64 * 1024)
        return response.status
    finally:
        connection.close()


class WebhookSender:
    """Delivers notifications in the background with the contract's retry rules.

    ``target`` is called at each attempt and returns ``(url, key)``, so a test can point
    a running sandbox at a receiver that started later. ``retry_delays`` are the waits
    between attempts: ``len(retry_delays) + 1`` attempts in all.
    """

    def __init__(
        self,
        target: Callable[[], tuple[str | None, str | None]],
        retry_delays: Sequence[float],
        timeout: float = 30.0,
    ) -> None:
        self.target = target
        self.retry_delays = tuple(float(delay) for delay in retry_delays)
        self.timeout = timeout
        self.records: list[DeliveryRecord] = []
        self._schedule: list[tuple[float, int, int, dict[str, Any]]] = []
        self._sequence = itertools.count()
        self._condition = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._in_flight = 0

    def start(self) -> None:
        with self._condition:
            self._stopping = False
        self._thread = threading.Thread(
            target=self._run, name="biginterview-sandbox-webhooks", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop after the attempt in progress; pending deliveries are dropped."""
        with self._condition:
            self._stopping = True
            self._schedule.clear()
            self._condition.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def enqueue(self, payload: dict[str, Any]) -> None:
        self._push(time.monotonic(), 1, payload)

    @property
    def pending(self) -> int:
        """Deliveries scheduled or in progress."""
        with self._condition:
            return len(self._schedule) + self._in_flight

    def wait_for(self, predicate: Callable[[list[DeliveryRecord]], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._condition:
            while not predicate(self.records):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._condition.wait(remaining)
            return True

    def snapshot(self) -> list[DeliveryRecord]:
        with self._condition:
            return list(self.records)

    def _push(self, due: float, attempt: int, payload: dict[str, Any]) -> None:
        with self._condition:
            if self._stopping:
                return
            heapq.heappush(self._schedule, (due, next(self._sequence), attempt, payload))
            self._condition.notify_all()

    def _next_due(self) -> tuple[int, dict[str, Any]] | None:
        with self._condition:
            while not self._stopping:
                if self._schedule:
                    wait = self._schedule[0][0] - time.monotonic()
                    if wait <= 0:
                        _, _, attempt, payload = heapq.heappop(self._schedule)
                        self._in_flight += 1
                        return attempt, payload
                    self._condition.wait(wait)
                else:
                    self._condition.wait()
            return None

    def _run(self) -> None:
        while (job := self._next_due()) is not None:
            attempt, payload = job
            try:
                self._attempt(attempt, payload)
            except Exception:  # the sender must outlive any single bad delivery
                logger.exception("sandbox webhook delivery crashed")
            finally:
                with self._condition:
                    self._in_flight -= 1
                    self._condition.notify_all()

    def _attempt(self, attempt: int, payload: dict[str, Any]) -> None:
        url, key = self.target()
        if not url:
            return
        webhook = payload["webhook"]
        body = json.dumps(payload).encode("utf-8")
        status: int | str
        try:
            status = post_webhook(url, key, body, self.timeout)
        except TimeoutError as exc:
            status = f"timeout: {exc}"
        except (OSError, http.client.HTTPException) as exc:
            status = f"connection error: {exc.__class__.__name__}: {exc}"
        record = DeliveryRecord(webhook["id"], webhook["event_name"], attempt, status)
        with self._condition:
            self.records.append(record)
            self._condition.notify_all()
        logger.info(
            "sandbox webhook %s %s attempt %s -> %s",
            record.notification_id,
            record.event_name,
            attempt,
            status,
        )
        if status != 200 and attempt <= len(self.retry_delays):
            self._push(time.monotonic() + self.retry_delays[attempt - 1], attempt + 1, payload)
