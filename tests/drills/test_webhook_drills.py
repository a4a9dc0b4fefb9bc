"""Webhook drills: pool processes killed mid-batch, the broker gone during a stream of
deliveries, and an event that kills whoever processes it."""

from __future__ import annotations

import http.client
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from django_biginterview import tasks
from django_biginterview.models import WebhookEvent
from django_biginterview.sandbox import Sandbox
from tests.drills.conftest import StartProcess
from tests.drills.harness import (
    Clock,
    event_statuses,
    interview_notifications,
    kill_pool_child,
    pool_kills,
    remote_accounts,
    store_events,
    sweeping,
    wait_long,
)
from tests.support.procfile import free_port
from tests.support.redis import PrivateRedis
from tests.support.webhooks import delivery_headers

pytestmark = pytest.mark.drill

Status = WebhookEvent.Status
#: What the receiver's publisher sends per task.
BATCH = 10


def all_processed(count: int) -> Callable[[], bool]:
    return lambda: event_statuses()[Status.PROCESSED] == count


def test_events_of_killed_pool_processes_all_end_processed(
    drill_sandbox: Sandbox, start_process: StartProcess, celery_app: Any, report: Any
) -> None:
    """300 stored events, sent in batches, while pool processes are SIGKILLed: every one
    ends processed (the sweeper re-enqueues what died with its process)."""
    accounts = remote_accounts(drill_sandbox, "wh-kill", 20)
    titles = {account.partner_id: [f"Take {n}" for n in range(15)] for account in accounts}
    event_ids = store_events(interview_notifications(drill_sandbox, titles))
    assert len(event_ids) == 300
    # Each interview write takes 50 ms, so batches are still running when the kills come.
    worker = start_process("worker", BI_DRILL_WRITE_DELAY="0.05")

    clock = Clock()
    for start in range(0, len(event_ids), BATCH):
        tasks.process_webhook_events.apply_async(args=(event_ids[start : start + BATCH],))
    killed: list[str] = []
    with sweeping(celery_app):
        # Kill during the first pass only (a third of the events still waiting), so no
        # event is killed often enough to use up its WEBHOOK_MAX_ATTEMPTS.
        while len(killed) < 5 and event_statuses()[Status.PROCESSED] < 200:
            time.sleep(0.5)
            killed.append(kill_pool_child(worker, celery_app, "biginterview.process_webhook")[1])
        last_kill = clock()
        done = wait_long(all_processed(300), timeout=180)
        took = clock()

    attempts = Counter(WebhookEvent.objects.values_list("attempts", flat=True))
    report(
        f"webhook kill: {len(killed)} pool processes killed ({Counter(killed)}); "
        f"{event_statuses()[Status.PROCESSED]}/300 processed {took:.1f} s after the first "
        f"batch was sent, {took - last_kill:.1f} s after the last kill; "
        f"attempts per event {dict(sorted(attempts.items()))}"
    )
    assert killed, "the events were all processed before the first kill"
    assert done, f"not all processed: {event_statuses()}\n{worker.log()[-4000:]}"
    assert worker.alive


class Supervised:
    """A Procfile process started again whenever it exits, as the README's deployment
    does (systemd ``Restart=always``, supervisord ``autorestart=true``): with Celery and
    kombu 5.7 on Redis a broker outage can end the worker's main process."""

    def __init__(self, start: StartProcess, name: str) -> None:
        self.start = start
        self.name = name
        self.processes = [start(name)]
        self._done = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name=f"supervise-{name}")
        self._watcher.start()

    @property
    def current(self) -> Any:
        return self.processes[-1]

    @property
    def restarts(self) -> int:
        return len(self.processes) - 1

    def log(self) -> str:
        return "".join(process.log() for process in self.processes)

    def _watch(self) -> None:
        while not self._done.wait(0.5):
            if not self.current.alive:
                self.processes.append(
                    self.start(self.name, log_name=f"{self.name}-{len(self.processes)}")
                )

    def stop(self) -> None:
        self._done.set()
        self._watcher.join(90)


def test_deliveries_during_broker_outages_are_answered_and_all_processed(
    drill_sandbox: Sandbox,
    drill_redis: PrivateRedis,
    start_process: StartProcess,
    celery_app: Any,
    report: Any,
) -> None:
    """200 deliveries over HTTP to the Procfile's web server while the broker dies (SIGKILL)
    and comes back 4 s later on the same port, three times: all answered 200, and all
    processed once it is back, by the worker as deployed (restarted if it exits)."""
    accounts = remote_accounts(drill_sandbox, "wh-outage", 10)
    titles = {account.partner_id: [f"Take {n}" for n in range(20)] for account in accounts}
    bodies = interview_notifications(drill_sandbox, titles)
    assert len(bodies) == 200
    worker = Supervised(start_process, "worker")
    port = free_port()
    start_process("web", PORT=str(port))

    answers: list[int] = []
    outages_over = threading.Event()

    def send() -> None:  # one connection per delivery, spread over the outages
        for number, body in enumerate(bodies):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            try:
                connection.request("POST", "/biginterview/webhook/", body, delivery_headers())
                answers.append(connection.getresponse().status)
            except OSError:
                answers.append(0)
            finally:
                connection.close()
            if number % 20 == 19:
                outages_over.wait(2)

    def reconnects() -> int:
        return worker.log().count("Connected to redis://")

    sender = threading.Thread(target=send, name="drill-sender")
    outages: list[str] = []
    clock = Clock()
    try:
        with sweeping(celery_app):
            sender.start()
            for _ in range(3):
                time.sleep(1.5)
                before, down = reconnects(), clock()
                drill_redis.kill()
                time.sleep(4)
                drill_redis.start()
                # The next outage comes once the worker is connected again, so each one
                # is a separate connection loss for it.
                assert wait_long(lambda before=before: reconnects() > before, timeout=90)
                outages.append(f"{down:.1f}-{clock():.1f} s")
            outages_over.set()
            sender.join(120)
            back = clock()
            done = wait_long(all_processed(200), timeout=120)
            took = clock() - back
    finally:
        worker.stop()

    log = worker.log()
    report(
        f"broker outage: broker down, then worker reconnected, at {outages}; answers "
        f"{dict(Counter(answers))}; {event_statuses()[Status.PROCESSED]}/200 processed "
        f"{took:.1f} s after the last delivery ({clock():.1f} s in all); "
        f"{log.count('Connection to broker lost')} connection losses; the worker's main "
        f"process exited {worker.restarts} time(s) "
        f"({log.count('Unrecoverable error')} unrecoverable errors) and was restarted"
    )
    assert answers == [200] * 200
    assert done, f"not all processed: {event_statuses()}\n{log[-4000:]}"
    assert worker.current.alive


POISON_TITLE = "Poison pill"


def test_an_event_that_kills_its_worker_ends_failed_and_its_batch_processed(
    drill_sandbox: Sandbox, start_process: StartProcess, celery_app: Any, report: Any
) -> None:
    """An event whose processing SIGKILLs the process, every time, ends ``failed`` with its
    error after WEBHOOK_MAX_ATTEMPTS (3 in the drill settings) processing starts; the other
    events of its batch end processed."""
    accounts = remote_accounts(drill_sandbox, "wh-poison", 3)
    titles = {account.partner_id: ["Before", "After", "Later"] for account in accounts}
    titles[accounts[1].partner_id].insert(1, POISON_TITLE)
    event_ids = store_events(interview_notifications(drill_sandbox, titles))
    poison = WebhookEvent.objects.get(payload__webhook__api_object__title=POISON_TITLE)
    worker = start_process("worker", BI_DRILL_POISON_TITLE=POISON_TITLE)

    clock = Clock()
    tasks.process_webhook_events.apply_async(args=(event_ids,))  # one batch of 10
    with sweeping(celery_app):

        def settled() -> bool:
            poison.refresh_from_db()
            return poison.status == Status.FAILED and all_processed(9)()

        done = wait_long(settled, timeout=90)
        took = clock()
        time.sleep(5)  # a few more sweeps: a given-up event stays given up
        poison.refresh_from_db()

    report(
        f"poison event: {event_statuses()} after {took:.1f} s; poison attempts "
        f"{poison.attempts}, {pool_kills(worker)} pool processes killed, last_error "
        f"{poison.last_error[:80]!r}"
    )
    assert done, f"{event_statuses()}; poison {poison.status} x{poison.attempts}"
    assert (poison.status, poison.attempts) == (Status.FAILED, 3)
    assert poison.last_error
    assert worker.alive
