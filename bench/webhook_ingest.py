"""How fast the webhook receiver ingests deliveries, next to its floor and ceiling.

    python bench/webhook_ingest.py [--duration 10] [--connections 8] [--rounds 3] [--keep-db]

Standalone. Runs the example project under gunicorn (4 sync workers) on PostgreSQL (a
throwaway database ``bi_bench_webhook``, created and migrated here) with Redis as the
Celery broker (no worker: ingest only), and drives it with ``wrk`` over loopback, every
request carrying a unique notification id (``bench/webhook_wrk.lua``). In ONE run it
measures:

(a) a trivial Django JSON view (the ceiling), (b) a view doing one raw
``INSERT ... ON CONFLICT DO NOTHING`` of the body (the floor of any durable receiver),
(c) the webhook endpoint, in ``--rounds`` interleaved rounds, each view's figure being
the median of its rounds; then (c) again at half of its peak rate, paced by wrk's
``delay()`` hook (wrk2 is not available: this is closed-loop pacing, so the p99 it shows
leaves out coordinated omission, which at half load is small).

Baselines live in the bench-only URLconf ``bench/webhook_urls.py``, selected through
``DJANGO_ROOT_URLCONF``. After each measured run every id answered 200 is looked up in the
database (lost or duplicated deliveries), and the event ids inside the Celery messages
waiting in Redis are compared with the stored rows (each event enqueued exactly once; the
receiver's publisher batches ids, so there are fewer messages than events). Single runs
move 20% or more on a shared machine (steal time): compare within one run, and read the
per-round ratios it prints.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
EXAMPLE = ROOT / "example_project"
LUA = BENCH / "webhook_wrk.lua"

DB_NAME = "bi_bench_webhook"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
REDIS_URL = os.environ.get("BI_BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
WEBHOOK_KEY = "bench-webhook-key-0123456789abcdef"
RAW_TABLE = "bi_bench_raw_insert"
EVENT_TABLE = "biginterview_webhookevent"
QUEUE = "celery"


@dataclass
class Result:
    name: str
    requests: int
    seconds: float
    ok: int
    non_200: int
    socket_errors: int
    p50_ms: float
    p99_ms: float
    rows: int | None = None
    queued: int | None = None
    lost: int | None = None
    messages: int | None = None
    unanswered: int = 0

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def pg_admin(sql: str) -> None:
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(sql)


def pg(sql: str) -> list[tuple]:
    with psycopg.connect(dbname=DB_NAME, autocommit=True, **PG) as conn:
        cursor = conn.execute(sql)
        return cursor.fetchall() if cursor.description else []


def environment() -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "DJANGO_ROOT_URLCONF": "webhook_urls",
        "DJANGO_DEBUG": "0",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{DB_NAME}",
        "CELERY_BROKER_URL": REDIS_URL,
        "BIGINTERVIEW_WEBHOOK_KEYS": WEBHOOK_KEY,
        "PYTHONPATH": os.pathsep.join([str(EXAMPLE), str(BENCH), str(ROOT)]),
    }


def prepare_database() -> None:
    pg_admin(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
    pg_admin(f"CREATE DATABASE {DB_NAME}")
    subprocess.run(
        [sys.executable, str(EXAMPLE / "manage.py"), "migrate", "-v", "0"],
        env=environment(),
        check=True,
    )
    pg(
        f"CREATE TABLE {RAW_TABLE} (id bigserial PRIMARY KEY, "
        "remote_id varchar(255) NOT NULL UNIQUE, payload jsonb NOT NULL)"
    )


def start_gunicorn(port: int) -> subprocess.Popen[bytes]:
    gunicorn = shutil.which("gunicorn", path=str(Path(sys.executable).parent)) or "gunicorn"
    process = subprocess.Popen(
        [gunicorn, "--workers", "4", "--worker-class", "sync", "--bind", f"127.0.0.1:{port}",
         "--log-level", "warning", "--backlog", "2048", "example_project.wsgi:application"],
        cwd=EXAMPLE,
        env=environment(),
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/bench/trivial/", timeout=1):
                return process
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise SystemExit("gunicorn did not start")


def wrk(url: str, duration: float, connections: int, pause_ms: int = 0) -> dict:
    """One wrk run, one connection per thread (see ``check_every_delivery``)."""
    prefix = uuid.uuid4().hex[:10]
    completed = subprocess.run(
        ["wrk", f"-t{connections}", f"-c{connections}", f"-d{max(1, round(duration))}s",
         "--timeout", "10s", "-s", str(LUA), url, "--", prefix, WEBHOOK_KEY, str(pause_ms)],
        capture_output=True,
        text=True,
        check=True,
    )  # fmt: skip
    line = next(
        (row for row in completed.stdout.splitlines() if row.startswith('{"requests"')), None
    )
    if line is None:
        raise SystemExit(f"wrk printed no summary:\n{completed.stdout}\n{completed.stderr}")
    return json.loads(line)


def reset_state(broker: redis.Redis) -> None:
    pg(f"TRUNCATE {RAW_TABLE}, {EVENT_TABLE}")
    broker.flushdb()


def measure(
    name: str,
    url: str,
    args: argparse.Namespace,
    broker: redis.Redis,
    table: str | None,
    pause_ms: int = 0,
    connections: int | None = None,
) -> Result:
    connections = connections or args.connections
    wrk(url, min(3.0, args.duration), connections, pause_ms)
    time.sleep(1.5)  # the warm-up's requests in flight land before the reset
    reset_state(broker)  # count only the measured run's deliveries
    raw = wrk(url, args.duration, connections, pause_ms)
    result = Result(
        name=name,
        requests=raw["requests"],
        seconds=raw["duration_us"] / 1e6,
        ok=raw["ok"],
        non_200=raw["non_200"],
        socket_errors=raw["socket_errors"],
        p50_ms=raw["p50_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
    )
    if table:
        time.sleep(1.5)  # let the server finish requests in flight, publishers flush
        result.rows = pg(f"SELECT count(*) FROM {table}")[0][0]
        result.lost, result.unanswered = check_every_delivery(table, raw["threads"])
        if table == EVENT_TABLE:
            queued = queued_event_ids(broker)
            stored = {pk for (pk,) in pg(f"SELECT id FROM {EVENT_TABLE}")}
            assert len(queued) == len(set(queued)), "an event was enqueued twice"
            result.queued = len(stored & set(queued))
            result.messages = broker.llen(QUEUE)
    return result


def check_every_delivery(table: str, threads: list[dict]) -> tuple[int, int]:
    """Per wrk thread (one connection, so answers come in order) ids ``prefixN`` were
    sent in increasing order from 1 (2 for the thread whose first id wrk spent checking the
    script), and the first ``ok`` sent ids were answered 200 (no other status was seen).
    Each answered id must be stored, and exactly once (the unique index forbids
    duplicates). Returns how many answered ids are missing, and how many stored ids never
    got their answer because wrk stopped while they were in flight."""
    lost = unanswered = 0
    for thread in threads:
        prefix = thread["prefix"]
        stored = {
            int(remote_id[len(prefix) :])
            for (remote_id,) in pg(
                f"SELECT remote_id FROM {table} WHERE remote_id LIKE '{prefix}%'"
            )
        }
        first = min(stored, default=1)
        assert first in (1, 2), f"{table}: {prefix} starts at {first}"
        assert stored <= set(range(first, thread["sent"] + 1)), f"{table}: ids never sent"
        lost += len(set(range(first, first + thread["ok"])) - stored)
        unanswered += len(stored) - thread["ok"]
    return lost, unanswered


def queued_event_ids(broker: redis.Redis) -> list[int]:
    """Event ids in the Celery messages waiting in Redis (protocol 2, JSON, base64 body)."""
    ids: list[int] = []
    for raw in broker.lrange(QUEUE, 0, -1):
        message = json.loads(raw)
        args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
        ids.extend(args[0] if isinstance(args[0], list) else [args[0]])
    return ids


def median_run(runs: list[Result]) -> Result:
    """The run with the median throughput (an odd number of rounds gives a real run)."""
    return sorted(runs, key=lambda r: r.rps)[len(runs) // 2]


def report(rounds: list[list[Result]], half: Result, peak_rps: float) -> None:
    results = [median_run(list(runs)) for runs in zip(*rounds, strict=True)]
    print(f"\n{'view (median of rounds)':<24}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'200s':>9}"
          f"{'non-200':>9}{'sock err':>9}{'rows':>9}{'queued':>9}")  # fmt: skip
    for r in [*results, half]:
        rows = "-" if r.rows is None else str(r.rows)
        queued = "-" if r.queued is None else str(r.queued)
        print(f"{r.name:<24}{r.rps:>9.0f}{r.p50_ms:>9.2f}{r.p99_ms:>9.2f}{r.ok:>9}"
              f"{r.non_200:>9}{r.socket_errors:>9}{rows:>9}{queued:>9}")  # fmt: skip
    trivial, raw, webhook = results
    print("\nper round (req/s): trivial / raw INSERT / webhook -> webhook/raw, webhook/trivial")
    for number, (t, r, w) in enumerate(rounds, 1):
        print(f"  round {number}: {t.rps:.0f} / {r.rps:.0f} / {w.rps:.0f} -> "
              f"{w.rps / r.rps:.2f}, {w.rps / t.rps:.2f}")  # fmt: skip
    print()
    print(f"webhook / trivial    = {webhook.rps / trivial.rps:.2f}  (target >= 0.5)")
    print(f"webhook / raw insert = {webhook.rps / raw.rps:.2f}  (aim >= 0.7)")
    print(
        f"half load: asked ~{peak_rps / 2:.0f} req/s, got {half.rps:.0f} req/s, "
        f"p50 {half.p50_ms:.2f} ms, p99 {half.p99_ms:.2f} ms"
    )
    checked = [r for runs in rounds for r in runs if r.lost is not None] + [half]
    lost = sum(r.lost or 0 for r in checked)
    print(
        f"every run: {sum(r.ok for r in checked)} deliveries answered 200, "
        + ("none lost or duplicated" if lost == 0 else f"{lost} LOST")
    )
    for r in (raw, webhook, half):
        verdict = "no lost or duplicated deliveries" if r.lost == 0 else f"{r.lost} LOST"
        print(
            f"{r.name}: {r.ok} answered 200 + {r.unanswered} in flight at cutoff = "
            f"{r.rows} rows, each id once -> {verdict}"
            + (
                ""
                if r.queued is None
                else f"; {r.queued} of them enqueued once each, in {r.messages} messages"
            )
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per measured run")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument(
        "--rounds", type=int, default=3, help="interleaved rounds of the three views (median)"
    )
    parser.add_argument("--keep-db", action="store_true", help=f"keep {DB_NAME} afterwards")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk)")

    broker = redis.Redis.from_url(REDIS_URL)
    broker.ping()
    prepare_database()
    port = free_port()
    server = start_gunicorn(port)
    base = f"http://127.0.0.1:{port}"
    webhook_url = f"{base}/biginterview/webhook/"
    try:
        # Interleaved (a, b, c, a, b, c, ...) so that a slow spell of a shared machine
        # hits every view alike; each figure is the median of its rounds.
        rounds = [
            [
                measure("(a) trivial view", f"{base}/bench/trivial/", args, broker, None),
                measure("(b) raw INSERT", f"{base}/bench/raw-insert/", args, broker, RAW_TABLE),
                measure("(c) webhook", webhook_url, args, broker, EVENT_TABLE),
            ]
            for _ in range(args.rounds)
        ]
        peak = median_run([runs[2] for runs in rounds]).rps
        # Half load: each connection waits between requests so that one cycle (wait +
        # answer) lasts 2 * connections / peak seconds. The answer time at half load comes
        # from a short calibration run.
        cycle_ms = 2000 * args.connections / peak
        probe = wrk(webhook_url, 3, args.connections, round(cycle_ms))
        pause_ms = max(1, round(cycle_ms - probe["mean_us"] / 1000))
        half = measure(
            "(c) webhook @ half load", webhook_url, args, broker, EVENT_TABLE, pause_ms=pause_ms
        )
        report(rounds, half, peak)
        print(f"(half load: {args.connections} connections, {pause_ms} ms pause per request)")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
        broker.flushdb()
        if not args.keep_db:
            pg_admin(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")


if __name__ == "__main__":
    main()
