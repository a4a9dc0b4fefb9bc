"""Sync throughput: the project's Celery sync against a naive loop, over real HTTP.

    python bench/sync_throughput.py [--accounts 1000] [--interviews 20] [--latency 0.05]
                                    [--concurrency 32] [--baseline-sample 100]

Setup: a sandbox process serving ``--accounts`` users (each with the default 2 tracks and
``--interviews`` interviews) with ``--latency`` seconds per API call; a fresh PostgreSQL
database; Redis as broker and for the rate limiter.

What is measured:

- **project**: the production path. ``biginterview.sync_all_accounts`` is enqueued to
  ``--workers`` real Celery worker processes (``--pool=threads --concurrency N`` each: the
  sync is I/O bound, and two processes use both cores), which fan out tasks of
  ``tasks.ACCOUNTS_PER_TASK`` accounts each; time runs from the enqueue until the
  ``SyncRun`` is finished. Queries are every SQL
  statement the workers ran (counted by a wrapper in each worker, bookkeeping and fan-out
  included) divided by the number of accounts. Peak RSS
  is each worker process's ``VmHWM``. Run twice: a first sync (empty tables) and a repeat
  sync (nothing changed, the steady state of the periodic job).
- **baseline**: a loop in this process calling the API per user and ``update_or_create``
  per track, step and interview, on ``--baseline-sample`` accounts (first sync); its time
  for every account is extrapolated linearly, and printed as such.

``RATE_LIMIT`` is set to ``--rate-limit`` (default 2000/s, well above what is reached) so
each request still goes through the shared Redis limiter without being slowed by it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
API_KEY = "b" * 32


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1000)
    parser.add_argument("--interviews", type=int, default=20)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--concurrency", type=int, default=16, help="threads per worker")
    parser.add_argument("--baseline-sample", type=int, default=100)
    parser.add_argument("--rate-limit", type=float, default=2000.0)
    parser.add_argument("--database", default="bench_sync")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    return parser.parse_args()


def start_sandbox(args: argparse.Namespace) -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, str(ROOT / "bench" / "sync_sandbox.py"),
         "--users", str(args.accounts), "--interviews", str(args.interviews),
         "--latency", str(args.latency), "--api-key", API_KEY],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    assert process.stdout is not None
    url = process.stdout.readline().strip()
    if not url.startswith("http"):
        raise SystemExit(f"sandbox did not start (got {url!r})")
    return process, url


def recreate_database(name: str) -> None:
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", user="postgres", dbname="postgres", autocommit=True
    ) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


def setup_django(args: argparse.Namespace, url: str, queue: str) -> None:
    os.environ.update(
        {
            "DJANGO_SETTINGS_MODULE": "bench.sync_bench_settings",
            "BENCH_DB": args.database,
            "BENCH_REDIS_URL": args.redis_url,
            "BENCH_QUEUE": queue,
            "BENCH_BASE_URL": url,
            "BENCH_API_KEY": API_KEY,
            "BENCH_RATE_LIMIT": str(args.rate_limit),
            "PYTHONPATH": str(ROOT),
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


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


def start_worker(args: argparse.Namespace, queue: str, index: int) -> subprocess.Popen[bytes]:
    from bench.sync_celery_app import app

    node = f"w{index}-{queue}@{os.uname().nodename}"
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bench.sync_celery_app", "worker",
         "--pool=threads", f"--concurrency={args.concurrency}", "-Q", queue,
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "WARNING",
         "-n", node],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"worker exited: {process.stderr.read().decode()[-2000:]}")
        if app.control.ping(destination=[node], timeout=0.5):
            return process
    process.kill()
    raise SystemExit("worker did not start")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of ``pids`` so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def run_project(label: str, accounts: int, pids: dict[str, list[int]]) -> dict[str, float]:
    from bench.sync_celery_app import QUERY_COUNT_KEY
    from django_biginterview import tasks
    from django_biginterview.coordination import redis_client
    from django_biginterview.models import SyncRun

    redis = redis_client()

    def worker_queries() -> int:
        return sum(int(redis.get(key) or 0) for key in redis.scan_iter(f"{QUERY_COUNT_KEY}:*"))

    before = worker_queries()
    cpu_before = {name: cpu_seconds(p) for name, p in pids.items()}
    started = time.perf_counter()
    tasks.sync_all_accounts.delay()
    run = None
    while run is None:
        time.sleep(0.05)
        run = SyncRun.objects.filter(finished_at__isnull=False).order_by("-pk").first()
        if run is not None and run.pk in _seen_runs:
            run = None
        if time.perf_counter() - started > 900:
            raise SystemExit("the sync run did not finish in 15 minutes")
    elapsed = time.perf_counter() - started
    _seen_runs.add(run.pk)
    time.sleep(0.3)  # let the last task publish its query count
    queries = worker_queries() - before
    cpu = {name: cpu_seconds(p) - cpu_before[name] for name, p in pids.items()}
    assert run.accounts_synced == accounts, (run.accounts_synced, run.failures[:3])
    return {
        "label": label,
        "seconds": elapsed,
        "run_seconds": run.duration.total_seconds(),
        "rate": accounts / elapsed,
        "queries": queries / accounts,
        "cpu": {name: 1000 * seconds / accounts for name, seconds in cpu.items()},
    }


_seen_runs: set[int] = set()


def run_baseline(sample: int) -> dict[str, float]:
    """The naive loop: per user two API calls, then ``update_or_create`` per row."""
    from django.db import connection, transaction
    from django.utils import timezone

    from django_biginterview.client import BigInterviewClient
    from django_biginterview.models import Account, Interview, Track, TrackStep

    client = BigInterviewClient.from_settings()
    accounts = list(Account.objects.order_by("pk")[:sample])
    queries = 0

    def count(execute, sql, params, many, context):  # type: ignore[no-untyped-def]
        nonlocal queries
        queries += 1
        return execute(sql, params, many, context)

    started = time.perf_counter()
    cpu_started = time.process_time()
    with connection.execute_wrapper(count):
        for account in accounts:
            tracks = client.list_tracks(account.partner_id)
            interviews = client.list_interviews(account.partner_id)
            with transaction.atomic():
                for position, data in enumerate(tracks):
                    track, _ = Track.objects.update_or_create(
                        account=account,
                        title=data.title,
                        defaults={"progress": data.progress, "position": position},
                    )
                    for step in data.steps:
                        TrackStep.objects.update_or_create(
                            track=track,
                            step=step.step,
                            defaults={
                                "title": step.title,
                                "link": step.link,
                                "completed": step.completed,
                            },
                        )
                for item in interviews:
                    Interview.objects.update_or_create(
                        account=account,
                        remote_id=item.id,
                        defaults={
                            "title": item.title,
                            "interviewer_name": item.interviewer_name,
                            "category": item.category,
                            "completed": item.completed,
                            "remote_created_at": item.created_at,
                            "remote_updated_at": item.updated_at,
                            "review_path": item.review_path,
                            "retake_path": item.retake_path,
                            "raw": item.raw,
                        },
                    )
                Account.objects.filter(pk=account.pk).update(last_synced_at=timezone.now())
    elapsed = time.perf_counter() - started
    cpu_ms = 1000 * (time.process_time() - cpu_started) / len(accounts)
    return {
        "label": "baseline",
        "cpu": {"this process": cpu_ms},
        "seconds": elapsed,
        "rate": len(accounts) / elapsed,
        "queries": queries / len(accounts),
    }


def clear_mirror() -> None:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE biginterview_trackstep, biginterview_track, biginterview_interview"
        )


def main() -> None:
    args = parse_args()
    queue = f"bench-sync-{uuid.uuid4().hex[:8]}"
    print(
        f"Sync throughput: {args.accounts} accounts x ({args.interviews} interviews, 2 tracks), "
        f"{args.latency * 1000:.0f} ms per API call, PostgreSQL, Redis broker and limiter "
        f"(RATE_LIMIT {args.rate_limit:g}/s)"
    )
    sandbox, url = start_sandbox(args)
    workers: list[subprocess.Popen[bytes]] = []
    try:
        recreate_database(args.database)
        setup_django(args, url, queue)
        from django_biginterview.coordination import redis_client
        from django_biginterview.models import Interview, Track

        redis = redis_client()
        for pattern in ("biginterview:*", "bench:*"):
            for key in redis.scan_iter(match=pattern):
                redis.delete(key)
        create_accounts(args.accounts)
        workers = [start_worker(args, queue, n) for n in range(args.workers)]

        pids = {"workers": [w.pid for w in workers], "sandbox": [sandbox.pid]}
        results = [run_project("project, first sync", args.accounts, pids)]
        assert Interview.objects.count() == args.accounts * args.interviews
        assert Track.objects.count() == args.accounts * 2
        results.append(run_project("project, repeat sync (no change)", args.accounts, pids))
        rss = [peak_rss_mib(worker.pid) for worker in workers]

        clear_mirror()
        sample = min(args.baseline_sample, args.accounts)
        baseline = run_baseline(sample)
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(30)
        assert sandbox.stdin is not None
        sandbox.stdin.close()
        sandbox.wait(30)

    print()
    print(f"{'':36} {'accounts/s':>10} {'queries/account':>16} {'wall time':>12}")
    for r in results:
        print(f"{r['label']:36} {r['rate']:10.1f} {r['queries']:16.2f} {r['seconds']:10.1f} s")
    for r in results:
        cpu = ", ".join(f"{name} {ms:.1f} ms" for name, ms in r["cpu"].items())
        print(f"  {r['label']}: CPU per account: {cpu}")
    projected = args.accounts / baseline["rate"]
    print(
        f"{'baseline (naive loop)':36} {baseline['rate']:10.1f} {baseline['queries']:16.2f} "
        f"{projected:10.1f} s  (measured on {sample} accounts in {baseline['seconds']:.1f} s, "
        f"extrapolated to {args.accounts})"
    )
    print(f"  baseline: CPU per account: this process {baseline['cpu']['this process']:.1f} ms")
    print()
    print(
        f"Speed-up, first sync: {results[0]['rate'] / baseline['rate']:.1f}x the baseline "
        f"(target >= 10x). {args.workers} worker process(es), --pool=threads "
        f"--concurrency={args.concurrency}; peak RSS per worker: "
        + ", ".join(f"{r:.0f} MiB" for r in rss)
    )


if __name__ == "__main__":
    main()
