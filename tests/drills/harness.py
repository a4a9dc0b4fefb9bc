"""What the drills do: run, kill and stop the Procfile's processes, sweep like beat, time
the recovery, and make their data through the sandbox."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from django_biginterview import webhooks
from django_biginterview.models import Account, WebhookEvent
from django_biginterview.sandbox import Sandbox
from django_biginterview.testing.factories import AccountFactory
from tests.support.polling import wait_for
from tests.support.procfile import ProcfileProcess

#: Big Interview's answer time during the drills.
API_LATENCY = 0.25
#: The queue the Procfile's worker consumes; the drills' producers publish there.
QUEUE = "celery"


def accepts_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


def busy_children(app: Any) -> dict[int, str]:
    """``{pool process PID: task name}`` of the tasks the workers are running now."""
    active = app.control.inspect(timeout=1.0).active() or {}
    return {task["worker_pid"]: task["name"] for tasks in active.values() for task in tasks}


def kill_pool_child(worker: ProcfileProcess, app: Any, prefer: str = "") -> tuple[int, str]:
    """SIGKILL one pool process of ``worker``, one running a task whose name starts with
    ``prefer`` if there is one; returns its PID and the task it ran (``""``: none known)."""
    pool = worker.children()
    assert pool, f"the worker has no pool processes:\n{worker.log()}"
    busy = {pid: name for pid, name in busy_children(app).items() if pid in pool}
    preferred = [pid for pid, name in busy.items() if name.startswith(prefer)]
    pid = (preferred or list(busy) or pool)[0]
    os.kill(pid, signal.SIGKILL)
    return pid, busy.get(pid, "")


def pool_kills(worker: ProcfileProcess) -> int:
    """How many pool processes died of SIGKILL, by the worker's own log."""
    return worker.log().count("exited with 'signal 9 (SIGKILL)'")


@contextlib.contextmanager
def sweeping(app: Any, every: float = 1.0) -> Iterator[None]:
    """Send ``biginterview.sweep_webhook_events`` every ``every`` seconds, as beat does
    every minute in production. A send that fails (broker down) waits for the next tick,
    as beat's would."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.wait(every):
            with contextlib.suppress(Exception):
                app.send_task("biginterview.sweep_webhook_events", queue=QUEUE, retry=False)

    thread = threading.Thread(target=loop, name="drill-sweeper", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)


def wait_long(predicate: Callable[[], Any], timeout: float) -> Any:
    """``wait_for`` with a drill's generous timeout and a calmer poll."""
    return wait_for(predicate, timeout=timeout, interval=0.5)


class Clock:
    """Seconds since it was made, for the report."""

    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self.start


# --- Data: accounts and notifications made by the sandbox -------------------------------


def remote_accounts(sandbox: Sandbox, prefix: str, count: int) -> list[Account]:
    """``count`` local accounts whose users exist in the sandbox with one interview each."""
    accounts = []
    for number in range(count):
        partner_id = f"{prefix}-{number:03d}"
        sandbox.create_user(partner_id)
        sandbox.start_interview(partner_id)
        accounts.append(AccountFactory(partner_id=partner_id))
    return accounts


def interview_notifications(sandbox: Sandbox, titles: dict[str, list[str]]) -> list[bytes]:
    """Start the interviews ``{partner_id: [title, ...]}`` in the sandbox; returns the
    bodies of the notifications it generated, in order."""
    first = len(sandbox.notifications)
    for partner_id, names in titles.items():
        for title in names:
            sandbox.start_interview(partner_id, title=title)
    return [json.dumps(payload).encode() for payload in sandbox.notifications[first:]]


def store_events(bodies: list[bytes]) -> list[int]:
    """Store deliveries as the receiver does; returns the events' primary keys in order."""
    return [webhooks.store_delivery(webhooks.parse_delivery(body)).event_id for body in bodies]


def event_statuses() -> Counter[str]:
    return Counter(WebhookEvent.objects.values_list("status", flat=True))
