"""Hands newly stored webhook event ids to the broker, off the request path.

The receiver calls :func:`enqueue_webhook_event` once the event is stored; the id reaches
the per-process :class:`WebhookPublisher` when the surrounding transaction commits (at
once, outside one), which sends ids in small batches as
``biginterview.process_webhook_events`` tasks.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading

from django.db import transaction

from . import tasks

logger = logging.getLogger(__name__)


class WebhookPublisher:
    """Hands newly stored event ids to the broker from a background thread.

    Why: a Celery publish costs about a millisecond of CPU (kombu on Redis builds a client
    and does two round trips per message), more than storing the event. The receiver
    only appends the id here (microseconds) once the insert has committed; this
    per-process thread waits up to ``linger`` seconds for more ids, then sends them as one
    ``process_webhook_events`` message (at most ``batch_size``). Under load that makes one
    publish per ``linger`` per process instead of one per delivery, so the web workers'
    CPU goes to receiving; the answer to Big Interview never waits for any of it. The
    defaults (0.2 s, 200 ids) mean at most five publishes a second per process below
    1,000 deliveries a second, for at most 0.2 s more before processing starts.

    Nothing is lost if this fails: the event row is committed as ``pending`` before its id
    gets here, and the sweeper re-enqueues pending events after ``WEBHOOK_STUCK_AFTER``
    (broker down, process killed with ids in memory, a server that never runs threads).
    Safe across ``fork()`` (gunicorn's pre-fork workers): a child starts with a new lock,
    an empty buffer and, on first use, its own thread.
    """

    def __init__(self, batch_size: int = 200, linger: float = 0.2) -> None:
        self.batch_size = batch_size
        self.linger = linger
        self._condition = threading.Condition()
        self._pending: list[int] = []
        self._busy = False
        self._pid: int | None = None
        self._thread: threading.Thread | None = None
        # The parent's lock may be held by its publisher thread at the instant of fork();
        # a child inheriting it would block on its first submit.
        os.register_at_fork(after_in_child=self._forget_parent_state)

    def _forget_parent_state(self) -> None:
        self._condition = threading.Condition()
        self._pending, self._busy, self._thread, self._pid = [], False, None, None

    def submit(self, event_id: int) -> None:
        with self._condition:
            if self._pid != os.getpid():  # first use in this process (or after a fork)
                self._pid, self._pending, self._busy, self._thread = os.getpid(), [], False, None
                # A worker restarting (max_requests, deploy) sends what it holds first.
                atexit.register(self.flush, 2.0)
            self._pending.append(event_id)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(
                    target=self._run, name="biginterview-webhook-publisher", daemon=True
                )
                self._thread.start()
            # Wake the thread only when it has something new to decide (first id, or a
            # full batch), not on every delivery: each wake-up costs the request a switch.
            if len(self._pending) in (1, self.batch_size):
                self._condition.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every submitted id has been handed to the broker (or dropped after a
        logged broker error); returns False on timeout. For tests and shutdown hooks."""
        with self._condition:
            return self._condition.wait_for(
                lambda: not self._pending and not self._busy, timeout=timeout
            )

    def _run(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: bool(self._pending))
                self._condition.wait_for(
                    lambda: len(self._pending) >= self.batch_size, timeout=self.linger
                )
                batch = self._pending[: self.batch_size]
                del self._pending[: self.batch_size]
                self._busy = True
            try:
                tasks.process_webhook_events.apply_async(  # type: ignore[call-arg]
                    args=(batch,),
                    retry=False,
                    # Celery's own repr of 200 ids costs more than the whole publish (the
                    # option exists since Celery 4; celery-types does not list it).
                    argsrepr=f"[{len(batch)} event ids: {batch[0]}..{batch[-1]}]",
                )
            except Exception:  # any broker error: the events stay pending for the sweeper
                logger.warning(
                    "Could not enqueue %d webhook event(s); the sweeper will retry",
                    len(batch),
                    exc_info=True,
                )
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()


#: The receiver's publisher (one per process).
webhook_publisher = WebhookPublisher()


def enqueue_webhook_event(event_id: int) -> None:
    """Queue ``event_id`` for processing once the current transaction commits."""
    transaction.on_commit(lambda: webhook_publisher.submit(event_id))
