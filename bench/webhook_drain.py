"""How fast the Procfile's worker processes webhook events (issue #14's targets).

    python bench/webhook_drain.py [--backlog 5000] [--rounds 3] [--stream-seconds 60]
                                  [--stream-rate 20] [--latency 0.25] [--keep-db]

Standalone. Starts a private ``redis-server`` (the Celery broker and ``REDIS_URL``), the
sandbox in its own process (``bench/sync_sandbox.py``: one user ``bench-N`` per event,
each with one interview, every API call answered after ``--latency`` seconds), a
throwaway PostgreSQL database ``bi_bench_webhook_drain`` migrated with the example
project's settings (``DEBUG`` off, default ``RATE_LIMIT`` of 10/s), a local account for
every sandbox user, and the Procfile's ``worker:`` line exactly as written
(``bench/procfile.py``), with no web server and no beat. The events are the sandbox's
own ``interview.created`` notifications, stored as the receiver stores them
(``webhooks.store_delivery(webhooks.parse_delivery(body))``). Every processed event
schedules a follow-up sync of its account, which calls the sandbox, as in production.

(a) **Drain.** ``--backlog`` pending events for distinct accounts, received an hour ago
    (so the sweeper finds them due). Timed from the start of a sweep run in this process
    until the last event's ``processed_at``; in ``--rounds`` interleaved rounds, each on
    a fresh worker, a clean broker and the same events set back to ``pending``:
    **project**: ``tasks.sweep_webhook_events()`` (batches of ids as
    ``biginterview.process_webhook_events`` tasks); **baseline**: the same sweep sending
    each event as its own ``biginterview.process_webhook_event`` task, as the sweeper
    did before. Medians of the rounds.
(b) **Stream.** ``--stream-rate`` events a second for ``--stream-seconds`` from distinct
    accounts, each stored then handed to the receiver's publisher
    (``publisher.enqueue_webhook_event``, which sends ``process_webhook_events`` tasks),
    on a fresh worker. Reports the processing delay (``processed_at - received_at``) of
    every event, and at the end how many of the follow-up syncs ran: they are held to
    ``RATE_LIMIT`` less the interactive share (7.5 calls/s, two calls per account), so
    they may lag; processing may not.

Figures move by 20% or more on a shared machine: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "example_project")]

from bench.procfile import PrivateRedis, ProcfileProcess, portal_environment  # noqa: E402
from bench.sync_sandbox import SandboxProcess  # noqa: E402

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
API_KEY = "sandbox-api-key-0000000000000000"
DRAIN_TARGET = 650.0  # events/s
DRAIN_BEFORE = 330.0  # events/s, issue #14's measurement before the change
DELAY_TARGET = 5.0  # seconds, p90
DELAY_BEFORE = "44 s and growing"  # issue #14, before the change
#: Longest wait for a backlog to drain, or for the stream's last events once sent: past
#: it the figures are bounds (events still pending count as processed at the cutoff).
WAIT_LIMIT = 60.0


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backlog", type=int, default=5000, help="events to drain (a)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of (a); median")
    parser.add_argument("--stream-seconds", type=float, default=60.0, help="(b); 0: skip")
    parser.add_argument("--stream-rate", type=float, default=20.0, help="events/s (b)")
    parser.add_argument("--latency", type=float, default=0.25, help="seconds per API call")
    parser.add_argument("--database", default="bi_bench_webhook_drain")
    parser.add_argument("--keep-db", action="store_true")
    return parser.parse_args()


def pg_admin(sql: str) -> None:
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:  # type: ignore[arg-type]
        conn.execute(sql)


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def cut(result: dict[str, Any]) -> str:
    """``<`` before the rate of a drain that was stopped with events still pending."""
    return "<" if result["cut_off"] else ""


def percentile(values: list[float], share: float) -> float:
    """Nearest-rank percentile (``share`` 0.9 for p90)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


class Bench:
    """The run's services, and a fresh Procfile worker for each measurement."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.workdir = workdir
        self.redis = PrivateRedis(workdir)
        try:
            self.notifications = workdir / "notifications.jsonl"
            self.users = args.backlog + math.ceil(args.stream_rate * args.stream_seconds)
            self.sandbox = SandboxProcess(
                users=self.users,
                interviews=1,
                latency=args.latency,
                api_key=API_KEY,
                notifications=self.notifications,
            )
        except BaseException:
            self.redis.stop()
            raise
        self.variables = {
            "DJANGO_SETTINGS_MODULE": "example_project.settings",
            "DATABASE_URL": f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{args.database}",
            "CELERY_BROKER_URL": self.redis.url,
            "REDIS_URL": self.redis.url,
            "BIGINTERVIEW_BASE_URL": self.sandbox.url,
            "BIGINTERVIEW_API_KEY": API_KEY,
        }
        self.worker: ProcfileProcess | None = None
        self._started = 0

    def setup_django(self) -> None:
        os.environ.update({**self.variables, "DJANGO_DEBUG": "0"})
        import django

        django.setup()
        from django.core.management import call_command

        import example_project  # noqa: F401  (the Celery app the tasks are sent through)

        call_command("migrate", verbosity=0)
        logging.getLogger("django_biginterview").setLevel(logging.WARNING)

    def fresh_worker(self) -> ProcfileProcess:
        """Stop the worker (if any), empty the broker and the coordination store (queued
        follow-up syncs, the rate limiter, pending markers), start the Procfile's line."""
        self.stop_worker()
        from django_biginterview.coordination import redis_client

        redis_client().flushdb()
        self._started += 1
        env = portal_environment(**self.variables)
        self.worker = ProcfileProcess("worker", env, self.workdir / f"worker-{self._started}.log")
        self.worker.wait_ready()
        return self.worker

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    def close(self) -> None:
        self.stop_worker()
        self.sandbox.stop()
        self.redis.stop()


# --- Data -------------------------------------------------------------------------------


def create_accounts(count: int) -> None:
    from django.contrib.auth import get_user_model

    from django_biginterview.models import Account

    user_model = get_user_model()
    users = user_model.objects.bulk_create(
        [user_model(username=f"bench{n}", email=f"bench{n}@example.com") for n in range(count)]
    )
    Account.objects.bulk_create(
        [Account(user=user, partner_id=f"bench-{n}") for n, user in enumerate(users)]
    )


def read_bodies(path: Path, count: int) -> list[bytes]:
    """The sandbox's notification bodies, one per user, in user order."""
    bodies = [line.encode() for line in path.read_text().splitlines()]
    for n, body in enumerate(bodies):
        webhook = json.loads(body)["webhook"]
        assert webhook["partner_id"] == f"bench-{n}", webhook
        assert webhook["event_name"] == "interview.created", webhook
    assert len(bodies) == count, (len(bodies), count)
    return bodies


def store(body: bytes) -> int:
    from django_biginterview import webhooks

    return webhooks.store_delivery(webhooks.parse_delivery(body)).event_id


def reset_backlog(ids: list[int]) -> None:
    """The backlog's events pending again, received an hour ago; no interviews."""
    from django.db import connection
    from django.utils import timezone

    from django_biginterview.models import WebhookEvent

    WebhookEvent.objects.filter(pk__in=ids).update(
        status=WebhookEvent.Status.PENDING,
        attempts=0,
        reason="",
        last_error="",
        next_attempt_at=None,
        processed_at=None,
        received_at=timezone.now() - timedelta(hours=1),
    )
    with connection.cursor() as cursor:
        cursor.execute("TRUNCATE biginterview_interview")
        cursor.execute("ANALYZE biginterview_webhookevent")


def statuses(ids: list[int]) -> dict[str, int]:
    from django.db.models import Count

    from django_biginterview.models import WebhookEvent

    rows = WebhookEvent.objects.filter(pk__in=ids).values("status").annotate(n=Count("pk"))
    return {row["status"]: row["n"] for row in rows}


def wait_processed(ids: list[int], timeout: float = WAIT_LIMIT) -> dict[str, int]:
    """Wait until none of ``ids`` is pending, at most ``timeout`` seconds; their statuses
    (``pending`` among them if time ran out)."""
    from django_biginterview.models import WebhookEvent

    deadline = time.monotonic() + timeout
    pending = WebhookEvent.objects.filter(pk__in=ids, status=WebhookEvent.Status.PENDING)
    while pending.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    return statuses(ids)


# --- (a) drain --------------------------------------------------------------------------


def send_batches() -> int:
    """The sweeper as it is: batches of ids as ``process_webhook_events`` tasks."""
    from django_biginterview import tasks

    return int(tasks.sweep_webhook_events())


def send_single_events() -> int:
    """The sweeper as it was: each due event as its own ``process_webhook_event`` task."""
    from django_biginterview import tasks, webhook_processing

    def send(batch: list[int]) -> None:
        for event_id in batch:
            tasks.process_webhook_event.apply_async(
                args=(event_id,),
                retry=True,
                retry_policy={"max_retries": 2, "interval_start": 0.2, "interval_step": 0.5},
            )

    return webhook_processing.sweep(send)


SUCCEEDED = re.compile(r"Task biginterview\.(\w+)\[[^\]]+\] succeeded in ([0-9.]+)s")


def pool_seconds(log: str) -> dict[str, float]:
    """Seconds the worker's pool processes spent in each task, by the worker's own log."""
    spent: dict[str, float] = {}
    for name, seconds in SUCCEEDED.findall(log):
        spent[name] = spent.get(name, 0.0) + float(seconds)
    return spent


def drain(bench: Bench, ids: list[int], sweep: Callable[[], int]) -> dict[str, Any]:
    from django.db.models import Max

    from django_biginterview.models import WebhookEvent

    reset_backlog(ids)
    bench.fresh_worker()
    started = time.time()
    sent = sweep()
    swept = time.time() - started
    assert sent == len(ids), (sent, len(ids))
    outcome = wait_processed(ids)
    assert set(outcome) <= {"processed", "pending"}, outcome
    if "pending" in outcome:  # cut off: the rate is an upper bound
        elapsed = time.time() - started
    else:
        last = WebhookEvent.objects.filter(pk__in=ids).aggregate(last=Max("processed_at"))
        elapsed = last["last"].timestamp() - started
    assert bench.worker is not None
    time.sleep(1.0)  # the last tasks log their "succeeded" line after their commit
    spent = pool_seconds(bench.worker.log())
    processing = spent.get("process_webhook_events", 0.0) + spent.get("process_webhook_event", 0.0)
    return {
        "rate": len(ids) / elapsed,
        "seconds": elapsed,
        "cut_off": outcome.get("pending", 0),
        "sweep": swept,
        "processing": processing,
        "syncing": spent.get("sync_account", 0.0),
    }


# --- (b) stream -------------------------------------------------------------------------


def stream(bench: Bench, bodies: list[bytes], rate: float) -> dict[str, Any]:
    from django.utils import timezone

    from django_biginterview.models import Account, WebhookEvent
    from django_biginterview.publisher import enqueue_webhook_event, webhook_publisher

    worker = bench.fresh_worker()
    bench.sandbox.reset()
    ids: list[int] = []
    started = time.monotonic()
    late = 0.0
    for number, body in enumerate(bodies):
        due = started + number / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        else:
            late = max(late, now - due)
        event_id = store(body)
        enqueue_webhook_event(event_id)  # in autocommit: handed to the publisher at once
        ids.append(event_id)
    sent_for = time.monotonic() - started
    webhook_publisher.flush()
    outcome = wait_processed(ids)
    finished = time.monotonic() - started
    partner_ids = [json.loads(body)["webhook"]["partner_id"] for body in bodies]
    synced = Account.objects.filter(partner_id__in=partner_ids, last_synced_at__isnull=False)
    synced_at_end = synced.count()
    calls = bench.sandbox.calls()
    rows = list(
        WebhookEvent.objects.filter(pk__in=ids)
        .order_by("received_at")
        .values_list("received_at", "processed_at")
    )
    cutoff = timezone.now()  # an event still pending has waited at least this long
    delays = [((done or cutoff) - received).total_seconds() for received, done in rows]
    slices: list[float] = []
    step = max(1, len(delays) // 6)
    for start in range(0, len(delays), step):
        slices.append(percentile(delays[start : start + step], 0.9))
    log = worker.log()
    spent = pool_seconds(log)
    return {
        "processing": spent.get("process_webhook_events", 0.0),
        "syncing": spent.get("sync_account", 0.0),
        "events": len(ids),
        "statuses": outcome,
        "sent_for": sent_for,
        "late": late,
        "finished": finished,
        "delays": delays,
        "slices": slices,
        "scheduled": len(set(partner_ids)),
        "synced": synced_at_end,
        "calls": len(calls),
        "call_rate": (len(calls) - 1) / (max(calls) - min(calls)) if len(calls) > 1 else 0.0,
        "sync_runs": sum(
            "Task biginterview.sync_account[" in line and " succeeded in " in line
            for line in log.splitlines()
        ),
        "deferred": log.count("'outcome': 'deferred'"),
    }


# --- Main -------------------------------------------------------------------------------


def main() -> None:
    args = parse_args()
    print(
        f"Webhook processing: drain {args.backlog} stored events ({args.rounds} rounds), then "
        f"a stream of {args.stream_rate:g} events/s for {args.stream_seconds:g} s; sandbox "
        f"latency {args.latency * 1000:.0f} ms; load average {loadavg()}",
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="bi-bench-webhook-"))
    pg_admin(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{args.database}"')
    bench: Bench | None = None
    worker_argv: list[str] = []
    try:
        bench = Bench(args, workdir)
        bench.setup_django()
        create_accounts(bench.users)
        bodies = read_bodies(bench.notifications, bench.users)
        backlog = [store(body) for body in bodies[: args.backlog]]
        drains: dict[str, list[dict[str, Any]]] = {"baseline": [], "project": []}
        for number in range(args.rounds):
            drains["baseline"].append(drain(bench, backlog, send_single_events))
            drains["project"].append(drain(bench, backlog, send_batches))
            print(
                f"  round {number + 1}: baseline {drains['baseline'][-1]['rate']:.0f}, project "
                f"{drains['project'][-1]['rate']:.0f} events/s; load {loadavg()}",
                flush=True,
            )
        assert bench.worker is not None
        worker_argv = bench.worker.argv
        streamed: dict[str, Any] = {}
        if args.stream_seconds:
            streamed = stream(bench, bodies[args.backlog :], args.stream_rate)
        bench.stop_worker()
    finally:
        if bench is not None:
            bench.close()
        if not args.keep_db:
            pg_admin(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    report(args, worker_argv, drains, streamed)
    print(f"Load average at the end: {loadavg()}; worker logs in {workdir}")


def report(
    args: argparse.Namespace,
    worker_argv: list[str],
    drains: dict[str, list[dict[str, Any]]],
    streamed: dict[str, Any],
) -> None:
    print(f"\nworker: {' '.join(worker_argv)}")
    base = [r["rate"] for r in drains["baseline"]]
    proj = [r["rate"] for r in drains["project"]]
    print("\n(a) per round, events/s: baseline -> project (ratio)")
    for number, (b, p) in enumerate(zip(drains["baseline"], drains["project"], strict=True), 1):
        print(f"  round {number}: {cut(b)}{b['rate']:.0f} -> {cut(p)}{p['rate']:.0f} "
              f"({p['rate'] / b['rate']:.2f}x)")  # fmt: skip
    cut_off = sum(bool(r["cut_off"]) for runs in drains.values() for r in runs)
    if cut_off:
        print(f"  (<: {cut_off} drain(s) stopped at {WAIT_LIMIT:.0f} s with events pending; "
              "their rate is an upper bound)")  # fmt: skip
    sweep = statistics.median(r["sweep"] for r in drains["project"])
    single = statistics.median(r["sweep"] for r in drains["baseline"])
    print(f"  sending took {single:.2f} s as single events, {sweep:.2f} s as batches (medians)")
    for name, runs in drains.items():
        capacity = [args.backlog / (r["processing"] / 4) for r in runs if r["processing"]]
        print(
            f"  {name}: processing alone would drain "
            + ", ".join(f"{c:.0f}" for c in capacity)
            + " events/s (4 pool processes / the pool-seconds its tasks took)"
        )
        print(
            f"  {name}: pool-seconds in processing tasks "
            + ", ".join(f"{r['processing']:.1f}" for r in runs)
            + "; in follow-up sync_account tasks "
            + ", ".join(f"{r['syncing']:.1f}" for r in runs)
            + " (4 pool processes x "
            + ", ".join(f"{r['seconds']:.1f}" for r in runs)
            + " s of drain)"
        )
    rows = [
        (
            f"(a) drain {args.backlog} events, events/s",
            f">= {DRAIN_TARGET:g}",
            f"{statistics.median(base):.0f} ({min(base):.0f}-{max(base):.0f}); "
            f"issue: {DRAIN_BEFORE:g}",
            f"{statistics.median(proj):.0f} ({min(proj):.0f}-{max(proj):.0f})",
            "met" if statistics.median(proj) >= DRAIN_TARGET else "MISSED",
        )
    ]
    if streamed:
        delays = streamed["delays"]
        p90 = percentile(delays, 0.9)
        rows.append(
            (
                f"(b) processing delay p90, {args.stream_rate:g}/s",
                f"<= {DELAY_TARGET:g} s",
                f"issue: {DELAY_BEFORE}",
                f"{p90:.2f} s",
                "met" if p90 <= DELAY_TARGET else "MISSED",
            )
        )
        rows.append(
            (
                "(b) processing delay p50 / max",
                "",
                "",
                f"{percentile(delays, 0.5):.2f} / {max(delays):.2f} s",
                "",
            )
        )
        rows.append(
            (
                "(b) follow-up syncs done / scheduled",
                "may lag",
                "",
                f"{streamed['synced']} / {streamed['scheduled']}",
                "",
            )
        )
    print(f"\n{'measure':<40}{'target':<10}{'baseline':<28}{'measured':<20}verdict")
    for label, target, baseline, measured, verdict in rows:
        print(f"{label:<40}{target:<10}{baseline:<28}{measured:<20}{verdict}")
    print("(a: median (min-max) of rounds; baseline = the same sweep, one task per event)")
    if streamed:
        print(
            f"(b) {streamed['events']} events sent in {streamed['sent_for']:.1f} s (latest "
            f"send {streamed['late'] * 1000:.0f} ms behind schedule); statuses "
            f"{streamed['finished']:.1f} s after the first: {streamed['statuses']} (pending "
            f"ones count with their wait so far, a lower bound); p90 delay "
            "by sixth of the stream: " + ", ".join(f"{s:.2f}" for s in streamed["slices"]) + " s"
        )
        print(
            f"    follow-up syncs: {streamed['calls']} API calls at {streamed['call_rate']:.2f}/s "
            f"(RATE_LIMIT 10/s, 7.5/s for syncs); sync_account task runs "
            f"{streamed['sync_runs']}, of which {streamed['deferred']} handed back by the "
            f"rate limiter; pool-seconds: processing {streamed['processing']:.1f}, syncs "
            f"{streamed['syncing']:.1f} of 4 x {streamed['finished']:.1f}"
        )


if __name__ == "__main__":
    main()
