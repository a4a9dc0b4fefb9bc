"""Sync throughput (issue #16): "Sync all" through the Procfile's worker, beside a naive
loop and a floor measured in the same run.

    python bench/sync_throughput.py [--accounts 200] [--interviews 20] [--latency 0.05]
                                    [--rounds 5] [--rss-accounts 2000] [--limited-rate 20]
                                    [--keep-db]

Standalone. Starts a private ``redis-server`` (broker and ``REDIS_URL``), a seeded sandbox
in its own process (``bench/sync_sandbox.py``: ``--accounts`` users, each with the default
2 tracks of 3 steps and ``--interviews`` interviews, every API call answered after
``--latency`` seconds), a throwaway PostgreSQL database ``bi_bench_sync`` migrated with the
example project's settings (``bench/sync_bench_settings.py``: those settings, plus
``RATE_LIMIT`` from ``BENCH_RATE_LIMIT``), and the Procfile's ``worker:`` line exactly as
written (``bench/procfile.py``; the Procfile has no ``syncworker:`` line, so ``worker:`` is
all there is to report). ``RATE_LIMIT`` is ``--rate-limit`` (far above what is reached).

In ``--rounds`` interleaved rounds, each from empty mirror tables (a first sync):

(i) **naive**: in this process, per account two sequential ``requests.get`` (tracks,
    then interviews), then per row, in autocommit, a raw ``SELECT`` and an ``INSERT`` or
    ``UPDATE``;
(ii) **floor**: the same HTTP calls from a pool of ``--floor-threads`` threads (the
    worker's 4 processes x ``sync.FETCH_THREADS``) with kept-alive connections, then one
    bulk upsert per table (``INSERT ... SELECT FROM unnest ... ON CONFLICT``), one
    transaction;
(iii) **project**: ``biginterview.sync_all_accounts`` enqueued to the worker, timed until
    its ``SyncRun`` is finished; then the same again with nothing changed (a repeat).

Also: queries per account, counted in this process with ``CaptureQueriesContext`` around
``sync.apply_snapshot`` per account and around a whole ``biginterview.sync_accounts`` task
(a group, with the run's bookkeeping); the request rate of a run with ``RATE_LIMIT`` at
``--limited-rate`` across two ``worker:`` processes, from the sandbox's arrival times; and
the peak RSS (``VmHWM``) of each process of a fresh worker after a first sync of
``--rss-accounts`` accounts. Figures move by 20% or more on a shared machine: compare
within one run, and read the per-round ratios.
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import requests
from psycopg.types.json import Jsonb

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "example_project")]

from bench.procfile import PrivateRedis, ProcfileProcess, portal_environment  # noqa: E402
from bench.sync_sandbox import SandboxProcess  # noqa: E402

PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
API_KEY = "sandbox-api-key-0000000000000000"
SPEEDUP_TARGET = 10.0
FLOOR_TARGET = 0.5
QUERIES_FIRST_TARGET = 8
QUERIES_REPEAT_TARGET = 5
RSS_TARGET_MIB = 150
RATE_TOLERANCE = 0.05


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=200)
    parser.add_argument("--interviews", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per API call")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--rate-limit", type=float, default=100_000.0, help="RATE_LIMIT (/s)")
    parser.add_argument("--floor-threads", type=int, default=64)
    parser.add_argument("--query-sample", type=int, default=20, help="accounts (queries)")
    parser.add_argument(
        "--rss-accounts", type=int, default=2000, help="first sync for peak RSS (0: skip)"
    )
    parser.add_argument(
        "--limited-rate", type=float, default=20.0, help="RATE_LIMIT of the rate run (0: skip)"
    )
    parser.add_argument("--database", default="bi_bench_sync")
    parser.add_argument("--keep-db", action="store_true")
    return parser.parse_args()


# --- Setup ------------------------------------------------------------------------------


def pg_admin(sql: str) -> None:
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:  # type: ignore[arg-type]
        conn.execute(sql)


class Bench:
    """The run's services, and the worker processes it starts from the Procfile."""

    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.redis = PrivateRedis(workdir)
        try:
            self.sandbox = SandboxProcess(
                users=max(args.accounts, args.rss_accounts),
                interviews=args.interviews,
                latency=args.latency,
                api_key=API_KEY,
            )
        except BaseException:
            self.redis.stop()
            raise
        self.variables = {
            "DJANGO_SETTINGS_MODULE": "bench.sync_bench_settings",
            "DATABASE_URL": f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{args.database}",
            "CELERY_BROKER_URL": self.redis.url,
            "REDIS_URL": self.redis.url,
            "BIGINTERVIEW_BASE_URL": self.sandbox.url,
            "BIGINTERVIEW_API_KEY": API_KEY,
        }
        self.workers: list[ProcfileProcess] = []
        self._started = 0

    def setup_django(self) -> None:
        os.environ.update(
            {**self.variables, "DJANGO_DEBUG": "0", "BENCH_RATE_LIMIT": str(self.args.rate_limit)}
        )
        import django

        django.setup()
        from django.core.management import call_command

        import example_project  # noqa: F401  (the Celery app the tasks are sent through)

        call_command("migrate", verbosity=0)

    def start_workers(self, count: int, rate_limit: float) -> list[ProcfileProcess]:
        env = portal_environment(**self.variables, BENCH_RATE_LIMIT=str(rate_limit))
        started = []
        for _ in range(count):
            self._started += 1
            log = self.workdir / f"worker-{self._started}.log"
            started.append(ProcfileProcess("worker", env, log))
        for worker in started:
            worker.wait_ready()
        self.workers += started
        return started

    def stop_workers(self) -> None:
        for worker in self.workers:
            worker.stop()
        self.workers = []

    def close(self) -> None:
        self.stop_workers()
        self.sandbox.stop()
        self.redis.stop()


def create_accounts(start: int, stop: int) -> None:
    from django.contrib.auth import get_user_model

    from django_biginterview.models import Account

    user_model = get_user_model()
    users = user_model.objects.bulk_create(
        [
            user_model(username=f"bench{n}", email=f"bench{n}@example.com")
            for n in range(start, stop)
        ]
    )
    Account.objects.bulk_create(
        [
            Account(user=user, partner_id=f"bench-{n}")
            for n, user in zip(range(start, stop), users, strict=True)
        ]
    )


def account_list() -> list[tuple[int, str]]:
    from django_biginterview.models import Account

    return list(Account.objects.order_by("pk").values_list("pk", "partner_id"))


def clear_mirror() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE biginterview_trackstep, biginterview_track, biginterview_interview"
        )
        cursor.execute("UPDATE biginterview_account SET last_synced_at = NULL")


def mirror_counts() -> tuple[int, int, int]:
    from django_biginterview.models import Interview, Track, TrackStep

    return Track.objects.count(), TrackStep.objects.count(), Interview.objects.count()


# --- (i) the naive loop -----------------------------------------------------------------


def upsert_row(
    conn: psycopg.Connection[Any], table: str, key: dict[str, Any], values: dict[str, Any]
) -> int:
    """SELECT by ``key``, then UPDATE or INSERT: two statements, in autocommit."""
    where = " AND ".join(f"{column} = %s" for column in key)
    row = conn.execute(f"SELECT id FROM {table} WHERE {where}", list(key.values())).fetchone()
    if row is not None:
        assignments = ", ".join(f"{column} = %s" for column in values)
        conn.execute(f"UPDATE {table} SET {assignments} WHERE id = %s", [*values.values(), row[0]])
        return int(row[0])
    columns = [*key, *values]
    inserted = conn.execute(
        f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(['%s'] * len(columns))})"
        " RETURNING id",
        [*key.values(), *values.values()],
    ).fetchone()
    assert inserted is not None
    return int(inserted[0])


def run_naive(dsn: str, base_url: str, accounts: list[tuple[int, str]]) -> dict[str, float]:
    from django_biginterview import client as api

    headers = {"Authorization": API_KEY}
    queries = 0
    with psycopg.connect(dsn, autocommit=True) as conn:
        started = time.perf_counter()
        for pk, partner_id in accounts:
            url = f"{base_url}/api/users/{partner_id}"
            tracks = requests.get(f"{url}/tracks", headers=headers, timeout=30).json()["tracks"]
            items = requests.get(f"{url}/interviews", headers=headers, timeout=30).json()
            for position, track in enumerate(api.Track.from_api(t) for t in tracks):
                track_id = upsert_row(
                    conn, "biginterview_track", {"account_id": pk, "title": track.title},
                    {"progress": track.progress, "position": position, "updated_at": _now()},
                )  # fmt: skip
                queries += 2
                for step in track.steps:
                    upsert_row(
                        conn, "biginterview_trackstep", {"track_id": track_id, "step": step.step},
                        {"title": step.title, "link": step.link, "completed": step.completed},
                    )  # fmt: skip
                    queries += 2
            for item in (api.Interview.from_api(i) for i in items["interviews"]):
                upsert_row(
                    conn,
                    "biginterview_interview",
                    {"account_id": pk, "remote_id": item.id},
                    interview_values(item),
                )
                queries += 2
            conn.execute(
                "UPDATE biginterview_account SET last_synced_at = now() WHERE id = %s", [pk]
            )
            queries += 1
        elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "rate": len(accounts) / elapsed, "queries": queries / len(accounts)}


def _now() -> Any:
    from django.utils import timezone

    return timezone.now()


def interview_values(item: Any) -> dict[str, Any]:
    return {
        "title": item.title,
        "interviewer_name": item.interviewer_name,
        "category": item.category,
        "completed": item.completed,
        "remote_created_at": item.created_at,
        "remote_updated_at": item.updated_at,
        "review_path": item.review_path,
        "retake_path": item.retake_path,
        "deleted_at": None,
        "deletion_source": "",
        "raw": Jsonb(item.raw),
        "updated_at": _now(),
    }


# --- (ii) the floor ---------------------------------------------------------------------


class Floor:
    """The HTTP calls from a thread pool with kept-alive connections, then one bulk upsert
    per table in one transaction. The pool and its connections outlive a round (the
    workers' do too)."""

    def __init__(self, dsn: str, base_url: str, threads: int) -> None:
        self.dsn = dsn
        self.base_url = base_url
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="floor")
        self.conn: psycopg.Connection[Any] | None = None
        self._local = threading.local()

    def _get(self, path: str) -> Any:
        session = getattr(self._local, "session", None)
        if session is None:
            session = self._local.session = requests.Session()
            session.headers["Authorization"] = API_KEY
        return session.get(self.base_url + path, timeout=30).json()

    def run(self, accounts: list[tuple[int, str]]) -> dict[str, float]:
        from django_biginterview import client as api

        started = time.perf_counter()
        calls = [
            (
                pk,
                self.pool.submit(self._get, f"/api/users/{pid}/tracks"),
                self.pool.submit(self._get, f"/api/users/{pid}/interviews"),
            )
            for pk, pid in accounts
        ]
        tracks: list[tuple[int, int, Any]] = []
        interviews: list[tuple[int, Any]] = []
        for pk, track_call, interview_call in calls:
            for position, data in enumerate(track_call.result()["tracks"]):
                tracks.append((pk, position, api.Track.from_api(data)))
            interviews += [
                (pk, api.Interview.from_api(i)) for i in interview_call.result()["interviews"]
            ]
        fetched = time.perf_counter()
        self.upsert(tracks, interviews, [pk for pk, _ in accounts])
        elapsed = time.perf_counter() - started
        return {"seconds": elapsed, "rate": len(accounts) / elapsed, "http": fetched - started}

    def upsert(
        self, tracks: list[tuple[int, int, Any]], interviews: list[tuple[int, Any]], pks: list[int]
    ) -> None:
        if self.conn is None:
            self.conn = psycopg.connect(self.dsn)
        conn = self.conn
        with conn.transaction():
            track_columns = [
                [t[0] for t in tracks],
                [t[2].title for t in tracks],
                [t[2].progress for t in tracks],
                [t[1] for t in tracks],
            ]
            inserted = conn.execute(
                "INSERT INTO biginterview_track (account_id, title, progress, position, "
                "updated_at) SELECT a, t, p, n, now() FROM unnest(%s::bigint[], %s::varchar[], "
                "%s::numeric[], %s::smallint[]) AS u(a, t, p, n) ON CONFLICT (account_id, title) "
                "DO UPDATE SET progress = EXCLUDED.progress, position = EXCLUDED.position, "
                "updated_at = EXCLUDED.updated_at RETURNING id, account_id, title",
                track_columns,
            )
            ids = {(account_id, title): pk for pk, account_id, title in inserted}
            steps = [
                (ids[pk, track.title], step) for pk, _, track in tracks for step in track.steps
            ]
            conn.execute(
                "INSERT INTO biginterview_trackstep (track_id, step, title, link, completed) "
                "SELECT * FROM unnest(%s::bigint[], %s::int[], %s::varchar[], %s::varchar[], "
                "%s::bool[]) ON CONFLICT (track_id, step) DO UPDATE SET title = EXCLUDED.title, "
                "link = EXCLUDED.link, completed = EXCLUDED.completed",
                [[s[0] for s in steps], [s[1].step for s in steps], [s[1].title for s in steps],
                 [s[1].link for s in steps], [s[1].completed for s in steps]],
            )  # fmt: skip
            columns = ["account_id", "remote_id", *interview_values(interviews[0][1])]
            rows = [[pk, item.id, *interview_values(item).values()] for pk, item in interviews]
            types = ["bigint", "bigint", "varchar", "varchar", "varchar", "bool", "timestamptz",
                     "timestamptz", "varchar", "varchar", "timestamptz", "varchar", "jsonb",
                     "timestamptz"]  # fmt: skip
            updates = ", ".join(f"{c} = EXCLUDED.{c}" for c in columns[2:])
            conn.execute(
                f"INSERT INTO biginterview_interview ({', '.join(columns)}) SELECT * FROM unnest("
                + ", ".join(f"%s::{t}[]" for t in types)
                + f") ON CONFLICT (account_id, remote_id) DO UPDATE SET {updates}",
                [[row[n] for row in rows] for n in range(len(columns))],
            )
            conn.execute(
                "UPDATE biginterview_account SET last_synced_at = now() WHERE id = ANY(%s)", [pks]
            )


# --- (iii) the project ------------------------------------------------------------------


def run_project(accounts: int, timeout: float = 600) -> dict[str, float]:
    """``sync_all_accounts`` from enqueue until its ``SyncRun`` is finished."""
    from django_biginterview import tasks
    from django_biginterview.models import SyncRun

    last = SyncRun.objects.order_by("-pk").values_list("pk", flat=True).first() or 0
    started = time.time()
    tasks.sync_all_accounts.delay()
    while True:
        run = SyncRun.objects.filter(pk__gt=last, finished_at__isnull=False).first()
        if run is not None:
            break
        if time.time() - started > timeout:
            raise SystemExit(f"the sync run did not finish in {timeout:.0f} s")
        time.sleep(0.02)
    assert run.finished_at is not None
    elapsed = run.finished_at.timestamp() - started
    if run.accounts_synced != accounts:
        raise SystemExit(
            f"run #{run.pk}: {run.accounts_synced} of {accounts} synced: {run.failures[:3]}"
        )
    return {"seconds": elapsed, "rate": accounts / elapsed}


# --- Queries per account, in this process -----------------------------------------------


#: Transaction control, which the project's own query counts leave out (tests/test_sync.py).
TRANSACTION_CONTROL = ("BEGIN", "COMMIT", "SAVEPOINT", "RELEASE SAVEPOINT", "ROLLBACK")


def count_queries(action: Callable[[], object]) -> tuple[int, int]:
    """Statements ``action`` ran without transaction control, and with it (round trips)."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as captured:
        action()
    sql = [query["sql"].upper() for query in captured.captured_queries]
    return sum(not text.startswith(TRANSACTION_CONTROL) for text in sql), len(sql)


def measure_queries(sample: list[tuple[int, str]]) -> dict[str, list[tuple[float, float]]]:
    """Per account: ``apply_snapshot`` on empty tables, then again with nothing changed;
    and a whole ``sync_accounts`` task per group (fetch, write, the run's books), same."""
    from django_biginterview import sync, sync_runs, tasks
    from django_biginterview.client import BigInterviewClient

    handles = [sync.account_handle(pk, pid) for pk, pid in sample]
    snapshots = sync.fetch_many(handles, BigInterviewClient.from_settings())
    figures: dict[str, list[tuple[float, float]]] = {}
    for label in ("apply_snapshot, first", "apply_snapshot, repeat"):
        figures[label] = [
            count_queries(lambda h=h, s=s: sync.apply_snapshot(h, s))  # type: ignore[misc]
            for h, s in zip(handles, snapshots, strict=True)
        ]
    clear_mirror()
    size = tasks.ACCOUNTS_PER_TASK
    groups = [sample[n : n + size] for n in range(0, len(sample), size)]
    for label in ("sync_accounts task, first", "sync_accounts task, repeat"):
        figures[label] = []
        for group in groups:
            run = sync_runs.begin()
            assert run is not None, "another sync run holds the lease"
            members = [list(member) for member in group]
            statements, total = count_queries(
                lambda: tasks.sync_accounts.apply(args=(run.pk, members))  # noqa: B023
            )
            sync_runs.close_fan_out(run.pk, dispatched=len(group), skipped=0)
            assert sync_runs.finish_if_complete(run.pk) is not None
            figures[label].append((statements / len(group), total / len(group)))
    return figures


# --- Rate and memory --------------------------------------------------------------------


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def busiest_second(times: list[float]) -> int:
    """The most calls that arrived within any one second."""
    times = sorted(times)
    best = start = 0
    for end, moment in enumerate(times):
        while moment - times[start] >= 1.0:
            start += 1
        best = max(best, end - start + 1)
    return best


def tasks_run(worker: ProcfileProcess, name: str) -> int:
    return sum(
        f"Task {name}[" in line and " succeeded " in line for line in worker.log().splitlines()
    )


def cpu_jiffies() -> tuple[int, int]:
    """(busy, all) CPU time of the whole machine so far, in clock ticks (``/proc/stat``)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def timed(action: Callable[[], dict[str, float]]) -> dict[str, float]:
    """``action()``'s figures plus ``cpus``: how many of the machine's CPUs were busy on
    average meanwhile (every process: this one, the workers, the sandbox, PostgreSQL)."""
    busy, total = cpu_jiffies()
    figures = action()
    busy_after, total_after = cpu_jiffies()
    share = (busy_after - busy) / max(1, total_after - total)
    return {**figures, "cpus": share * (os.cpu_count() or 1)}


# --- Report -----------------------------------------------------------------------------


@dataclass
class Figures:
    rates: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.rates)

    def spread(self) -> str:
        return f"{min(self.rates):.1f}-{max(self.rates):.1f}"


def loadavg() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main() -> None:
    args = parse_args()
    print(
        f"Sync throughput: {args.accounts} accounts x ({args.interviews} interviews, 2 tracks of "
        f"3 steps), {args.latency * 1000:.0f} ms per API call; PostgreSQL, private Redis; "
        f"RATE_LIMIT {args.rate_limit:g}/s; {args.rounds} rounds. Load average {loadavg()}",
        flush=True,
    )
    workdir = Path(tempfile.mkdtemp(prefix="bi-bench-sync-"))
    pg_admin(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{args.database}"')
    dsn = f"host={PG['host']} port={PG['port']} user={PG['user']} dbname={args.database}"
    bench: Bench | None = None
    try:
        bench = Bench(args, workdir)
        bench.setup_django()
        logging.getLogger("django_biginterview").setLevel(logging.WARNING)
        create_accounts(0, args.accounts)
        accounts = account_list()
        queries = measure_queries(accounts[: args.query_sample])
        clear_mirror()

        [worker] = bench.start_workers(1, args.rate_limit)
        floor = Floor(dsn, bench.sandbox.url, args.floor_threads)
        # Warm-up, not measured: worker processes connect, the floor's threads too.
        run_project(len(accounts))
        floor.run(accounts)
        run_naive(dsn, bench.sandbox.url, accounts[:5])
        results: dict[str, list[dict[str, float]]] = {"naive": [], "floor": [], "project": [],
                                                      "project, repeat": []}  # fmt: skip
        expected = (2 * len(accounts), 3 * len(accounts), args.interviews * len(accounts))
        for number in range(args.rounds):
            clear_mirror()
            results["naive"].append(timed(lambda: run_naive(dsn, bench.sandbox.url, accounts)))
            assert mirror_counts() == expected, mirror_counts()
            clear_mirror()
            results["floor"].append(timed(lambda: floor.run(accounts)))
            assert mirror_counts() == expected, mirror_counts()
            clear_mirror()
            results["project"].append(timed(lambda: run_project(len(accounts))))
            assert mirror_counts() == expected, mirror_counts()
            results["project, repeat"].append(timed(lambda: run_project(len(accounts))))
            print(
                f"  round {number + 1}: naive {results['naive'][-1]['rate']:.1f}, floor "
                f"{results['floor'][-1]['rate']:.1f}, project {results['project'][-1]['rate']:.1f}"
                f" (repeat {results['project, repeat'][-1]['rate']:.1f}) accounts/s; load "
                f"{loadavg()}",
                flush=True,
            )
        bench.stop_workers()

        limited: dict[str, Any] = {}
        if args.limited_rate:
            pair = bench.start_workers(2, args.limited_rate)
            bench.sandbox.reset()
            limited["run"] = run_project(len(accounts))
            times = bench.sandbox.calls()
            limited["calls"] = len(times)
            limited["rate"] = (len(times) - 1) / (max(times) - min(times))
            limited["busiest"] = busiest_second(times)
            limited["groups"] = [tasks_run(w, "biginterview.sync_accounts") for w in pair]
            bench.stop_workers()

        rss: dict[str, Any] = {}
        if args.rss_accounts:
            create_accounts(args.accounts, args.rss_accounts)
            clear_mirror()
            [fresh] = bench.start_workers(1, args.rate_limit)
            rss["run"] = run_project(args.rss_accounts)
            rss["main"] = peak_rss_mib(fresh.pid)
            rss["children"] = [peak_rss_mib(pid) for pid in fresh.children()]
            bench.stop_workers()
    finally:
        if bench is not None:
            bench.close()
        if not args.keep_db:
            pg_admin(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')

    report(args, worker, results, queries, limited, rss)
    print(f"Load average at the end: {loadavg()}; worker logs in {workdir}")


def report(
    args: argparse.Namespace,
    worker: ProcfileProcess,
    results: dict[str, list[dict[str, float]]],
    queries: dict[str, list[tuple[float, float]]],
    limited: dict[str, Any],
    rss: dict[str, Any],
) -> None:
    from django_biginterview import sync

    figures = {name: Figures([r["rate"] for r in runs]) for name, runs in results.items()}
    print(f"\nworker: {' '.join(worker.argv)}")
    print("(the Procfile has no syncworker: line: worker: alone is measured)")
    print(f"\n{str(args.accounts) + ' accounts, median of rounds':<32}{'accounts/s':>11}"
          f"{'spread':>15}{'seconds':>9}{'CPUs busy':>11}")  # fmt: skip
    for name, figure in figures.items():
        seconds = statistics.median(r["seconds"] for r in results[name])
        cpus = statistics.median(r["cpus"] for r in results[name])
        print(f"{name:<32}{figure.median:>11.1f}{figure.spread():>15}{seconds:>9.2f}{cpus:>11.2f}")
    http = statistics.median(r["http"] for r in results["floor"])
    print(f"(floor: HTTP {http:.2f} s of it; naive: {results['naive'][0]['queries']:.0f} "
          f"queries/account; floor: {args.floor_threads} threads, the worker has 4 processes x "
          f"{sync.FETCH_THREADS} fetch threads; CPUs busy: the whole machine, of "
          f"{os.cpu_count()})")  # fmt: skip
    print("\nper round: project/naive, project/floor")
    for number, (n, f, p) in enumerate(
        zip(results["naive"], results["floor"], results["project"], strict=True), 1
    ):
        print(f"  round {number}: {p['rate'] / n['rate']:.1f}x, {p['rate'] / f['rate']:.3f}")
    speedup = figures["project"].median / figures["naive"].median
    share = figures["project"].median / figures["floor"].median
    rows = [
        ("project / naive, first sync", f">= {SPEEDUP_TARGET:g}x", f"{speedup:.1f}x",
         "met" if speedup >= SPEEDUP_TARGET else "MISSED"),
        ("project / floor, first sync", f">= {FLOOR_TARGET}", f"{share:.3f}",
         "met" if share >= FLOOR_TARGET else "MISSED"),
    ]  # fmt: skip
    for label, values in queries.items():
        target = QUERIES_FIRST_TARGET if label.endswith("first") else QUERIES_REPEAT_TARGET
        worst = max(statements for statements, _ in values)
        trips = max(total for _, total in values)
        judged = label.startswith("apply_snapshot")
        verdict = ("met" if worst <= target else "MISSED") if judged else "(context)"
        rows.append((f"queries/account, {label}", f"<= {target}",
                     f"{worst:g} (+BEGIN/COMMIT {trips:g})", verdict))  # fmt: skip
    if limited:
        budget = args.limited_rate * (1 - 0.25)
        rate = limited["rate"]
        verdict = "met" if abs(rate / budget - 1) <= RATE_TOLERANCE else "MISSED"
        rows.append((f"requests/s, RATE_LIMIT {args.limited_rate:g}/s, 2 workers",
                     f"{budget:g} +-5% (75% share)",
                     f"{rate:.2f} = {rate / args.limited_rate:.1%} of limit", verdict))  # fmt: skip
    if rss:
        worst = max(rss["children"])
        verdict = "met" if worst <= RSS_TARGET_MIB else "MISSED"
        rows.append((f"peak RSS per pool process, {args.rss_accounts} accounts",
                     f"<= {RSS_TARGET_MIB} MiB", f"{worst:.0f} MiB", verdict))  # fmt: skip
    print(f"\n{'measure':<50}{'target':<24}{'measured':<28}verdict")
    for label, target, value, verdict in rows:
        print(f"{label:<50}{target:<24}{value:<28}{verdict}")
    print("(queries: statements as tests/test_sync.py counts them; a task's include the "
          "run's books, 10 accounts a task)")  # fmt: skip
    if limited:
        print(
            f"rate run: {limited['calls']} calls in {limited['run']['seconds']:.1f} s, busiest "
            f"second {limited['busiest']} calls; sync_accounts tasks per worker "
            f"{limited['groups']}; INTERACTIVE_RATE_SHARE (25%) of the limit is kept for clicks"
        )
    if rss:
        print(
            f"peak RSS after {args.rss_accounts} accounts ({rss['run']['rate']:.1f}/s) in a fresh "
            f"worker: main {rss['main']:.0f} MiB, pool "
            + ", ".join(f"{mib:.0f}" for mib in rss["children"])
            + " MiB"
        )


if __name__ == "__main__":
    main()
