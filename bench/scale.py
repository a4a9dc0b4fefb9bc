"""Staff pages at scale: the admin changelists and the staff REST API over a large mirror.

    python bench/scale.py [--rounds 5] [--scale 1.0] [--only TEXT] [--explain]
                          [--keep-db] [--reuse-db] [--database NAME]

Standalone. Creates the PostgreSQL database ``bi_bench_scale`` (dropped afterwards unless
``--keep-db``; ``--reuse-db`` measures a kept one again, applying pending migrations
first and printing how long they took), migrates it through the example project's
settings with DEBUG off, and loads, with server-side ``INSERT ... SELECT`` over
``generate_series``: 100,000 users with their accounts (20,000 of them with 3 tracks of 8
steps), 1,000,000 interviews skewed over the accounts (the busiest has about 3,000),
1,000,000 webhook events over 30 days (95% processed, 4% ignored, 1% failed) and 2,000
sync runs. Each table's column list comes from its model's ``_meta``: a concrete column
the loader has no value for stops it (``tests/test_bench_scale.py`` checks that without
loading anything). ``--scale 0.1`` loads a tenth, for a quick look.

Then every job runs through Django's test client logged in as a superuser: one warm-up
and ``--rounds`` measured rounds, printing the median wall time, the number of queries
and the slowest query's time beside the job's target (admin pages 300 ms, staff API
150 ms). The admin jobs are page 1, page 50, the exact-id searches and every choice of
every filter and date-hierarchy level each changelist offers (read from the page
itself, at most ``FILTER_CHOICES`` per filter). ``--explain`` prints the plan of the
slowest query of each job over its target.

A job is one function taking the ``Bench``, registered with ``@job(name, target_ms)``;
``changelist_jobs`` adds the admin's filter jobs the same way. Figures move by 20% or
more on a shared machine: compare within one run.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from html import unescape
from pathlib import Path
from typing import Any

import psycopg

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
PG = {"host": "127.0.0.1", "port": 5432, "user": "postgres"}
DB_NAME = "bi_bench_scale"

ADMIN_MS = 300.0
API_MS = 150.0
SWEEPER_MS = 50.0
#: Filter jobs per declared filter (its first choices after "All").
FILTER_CHOICES = 6

# --- Volume and loader ------------------------------------------------------------------


@dataclass(frozen=True)
class Volume:
    accounts: int = 100_000
    accounts_with_tracks: int = 20_000
    tracks_per_account: int = 3  # at most len(TRACK_TITLES): a title per track
    steps_per_track: int = 8
    interviews: int = 1_000_000
    events: int = 1_000_000
    sync_runs: int = 2_000

    def scaled(self, factor: float) -> Volume:
        return Volume(
            **{
                name: value
                if name.endswith(("per_account", "per_track"))
                else max(1, round(value * factor))
                for name, value in vars(self).items()
            }
        )


#: The partner_id of account ``n`` (``u-`` and 40 hex digits, like the default adapter's).
PARTNER_ID = "'u-' || md5('account' || ({n})) || left(md5('salt' || ({n})), 8)"
TITLES = (
    "Top 10 Questions",
    "Tell Me About Yourself",
    "Behavioral Basics",
    "Competency/Skillset: Analytical Skills",
    "Competency/Skillset: Teamwork",
    "Leadership",
    "Customer Service",
    "Sales",
    "Nursing",
    "Software Engineering",
    "Finance",
    "Internship",
    "Career Change",
    "Salary Negotiation",
    "Situational Questions",
)
INTERVIEWERS = ("Jordan", "Mark", "Priya", "Sam", "Elena")
TRACK_TITLES = ("Fast Track", "Mastery Track", "Job Search Track")


def sql_array(values: tuple[str, ...]) -> str:
    return "ARRAY[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


@dataclass(frozen=True)
class Table:
    """How to fill one model's table: ``source`` is a ``FROM`` clause over
    ``generate_series`` whose row alias is ``g``; ``columns`` maps every concrete column
    of the model to an SQL expression over ``g``."""

    model: str
    source: str
    columns: dict[str, str]


USERS = Table(
    "auth.User",
    "generate_series(1, {accounts}) AS g(i)",
    {
        "id": "g.i",
        "password": "'!bench'",
        "last_login": "NULL",
        "is_superuser": "false",
        "username": "'user' || g.i",
        "first_name": "'Ada'",
        "last_name": "'User ' || g.i",
        "email": "'user' || g.i || '@example.test'",
        "is_staff": "false",
        "is_active": "true",
        "date_joined": "now() - interval '800 days'",
    },
)

ACCOUNTS = Table(
    "biginterview.Account",
    "(SELECT i, random() AS r, now() - random() * interval '730 days' AS created"
    " FROM generate_series(1, {accounts}) AS i) AS g",
    {
        "id": "g.i",
        "user_id": "g.i",
        "partner_id": PARTNER_ID.format(n="g.i"),
        "anonymous": "false",
        "sso_token": "md5('token' || g.i) || md5('more' || g.i)",
        "sso_token_expires_at": "g.created + interval '48 hours'",
        "remote_created_at": "g.created",
        "remote_missing_at": "CASE WHEN g.r < 0.01 THEN now() - interval '3 days' END",
        "last_synced_at": "CASE WHEN g.r < 0.9 THEN now() - g.r * interval '6 hours' END",
        "last_sync_error": (
            "CASE WHEN g.r BETWEEN 0.01 AND 0.03"
            " THEN 'Big Interview refused list_tracks (HTTP 404)' ELSE '' END"
        ),
        "last_sync_error_at": "CASE WHEN g.r BETWEEN 0.01 AND 0.03 THEN now() END",
        "created_at": "g.created",
    },
)

TRACKS = Table(
    "biginterview.Track",
    "(SELECT i, (i - 1) / {tracks_per_account} AS a, (i - 1) % {tracks_per_account} AS p"
    " FROM generate_series(1, {accounts_with_tracks} * {tracks_per_account}) AS i) AS g",
    {
        "id": "g.i",
        # Every fifth account has tracks (the first ones when there are fewer accounts).
        "account_id": "1 + g.a * greatest(1, {accounts} / {accounts_with_tracks})",
        "title": f"({sql_array(TRACK_TITLES)})[1 + g.p]",
        "progress": "round(random()::numeric, 4)",
        "position": "g.p",
        "updated_at": "now() - random() * interval '30 days'",
    },
)

STEPS = Table(
    "biginterview.TrackStep",
    "(SELECT i, (i - 1) / {steps_per_track} + 1 AS t, (i - 1) % {steps_per_track} + 1 AS s"
    " FROM generate_series(1, {accounts_with_tracks} * {tracks_per_account}"
    " * {steps_per_track}) AS i) AS g",
    {
        "id": "g.i",
        "track_id": "g.t",
        "step": "g.s",
        "title": "'Chapter ' || g.s",
        "link": "'/members/curriculum?chapter=' || g.s",
        "completed": "random() < 0.5",
    },
)

INTERVIEWS = Table(
    "biginterview.Interview",
    # Accounts drawn as 1 + N * u^2: account n has about sqrt(n) - sqrt(n - 1) of the
    # share, so the first accounts are busy and most have a handful.
    "(SELECT i, 1 + floor({accounts} * power(random(), 2))::bigint AS a,"
    f" 1 + floor(random() * {len(TITLES)})::int AS t, 1 + floor(random() * 5)::int AS k,"
    " random() < 0.7 AS c, random() < 0.03 AS d,"
    " now() - random() * interval '730 days' AS u"
    " FROM generate_series(1, {interviews}) AS i) AS g",
    {
        "id": "g.i",
        "account_id": "g.a",
        "remote_id": "1000000 + g.i",
        "title": f"({sql_array(TITLES)})[g.t]",
        "interviewer_name": f"({sql_array(INTERVIEWERS)})[1 + g.i % {len(INTERVIEWERS)}]",
        "category": f"({sql_array(TITLES)})[g.t] || ': ' || g.k",
        "completed": "g.c",
        "remote_created_at": "g.u - interval '2 days'",
        "remote_updated_at": "g.u",
        "review_path": "'/members/mock_interviews/' || (1000000 + g.i) || '/review'",
        "retake_path": "'/members/mock_interviews/' || (1000000 + g.i) || '/retake'",
        "deleted_at": "CASE WHEN g.d THEN g.u + interval '1 hour' END",
        "deletion_source": "CASE WHEN g.d THEN 'webhook' ELSE '' END",
        "raw": (
            "jsonb_build_object('id', 1000000 + g.i,"
            f" 'title', ({sql_array(TITLES)})[g.t],"
            f" 'interviewer_name', ({sql_array(INTERVIEWERS)})[1 + g.i % {len(INTERVIEWERS)}],"
            f" 'category', ({sql_array(TITLES)})[g.t] || ': ' || g.k, 'completed', g.c,"
            " 'created_at', g.u - interval '2 days', 'updated_at', g.u,"
            " 'links', jsonb_build_object("
            "'review', '/members/mock_interviews/' || (1000000 + g.i) || '/review',"
            " 'retake', '/members/mock_interviews/' || (1000000 + g.i) || '/retake'))"
        ),
        "updated_at": "g.u + interval '1 minute'",
    },
)

EVENT_NAMES = "(ARRAY['interview.created', 'interview.updated', 'interview.deleted'])"
EVENTS = Table(
    "biginterview.WebhookEvent",
    "(SELECT i, 1 + floor({accounts} * power(random(), 2))::bigint AS a, random() AS r,"
    " 1 + (random() < 0.7)::int + (random() < 0.1)::int AS e,"
    " now() - random() * interval '30 days' AS at"
    " FROM generate_series(1, {events}) AS i) AS g",
    {
        "id": "g.i",
        "remote_id": "(50000000 + g.i)::text",
        "event_name": f"{EVENT_NAMES}[g.e]",
        # Ignored events name a partner_id no account has (yet).
        "partner_id": "CASE WHEN g.r BETWEEN 0.95 AND 0.99 THEN 'u-unknown-' || g.i"
        f" ELSE {PARTNER_ID.format(n='g.a')} END",
        "api_type": "'Interview'",
        "api_id": "(1000000 + g.i)::text",
        "payload": (
            "jsonb_build_object('webhook', jsonb_build_object("
            "'id', (50000000 + g.i)::text,"
            f" 'event_name', {EVENT_NAMES}[g.e],"
            f" 'partner_id', {PARTNER_ID.format(n='g.a')},"
            " 'api_id', (1000000 + g.i)::text, 'api_type', 'Interview',"
            " 'api_object', jsonb_build_object('id', 1000000 + g.i,"
            " 'title', 'Top 10 Questions', 'interviewer_name', 'Jordan',"
            " 'category', 'Top 10 Questions: 1', 'completed', g.r < 0.5,"
            " 'created_at', g.at, 'updated_at', g.at, 'links', jsonb_build_object("
            "'review', '/members/mock_interviews/' || (1000000 + g.i) || '/review',"
            " 'retake', '/members/mock_interviews/' || (1000000 + g.i) || '/retake'))))"
        ),
        "status": "CASE WHEN g.r < 0.95 THEN 'processed'"
        " WHEN g.r < 0.99 THEN 'ignored' ELSE 'failed' END",
        "reason": "CASE WHEN g.r BETWEEN 0.95 AND 0.99"
        " THEN 'no account for partner_id' ELSE '' END",
        "attempts": "CASE WHEN g.r >= 0.99 THEN 6 ELSE 1 END",
        "last_error": "CASE WHEN g.r >= 0.99"
        " THEN 'OperationalError: could not obtain lock on row' ELSE '' END",
        "next_attempt_at": "NULL",
        "received_at": "g.at",
        "processed_at": "CASE WHEN g.r < 0.99 THEN g.at + interval '1 second' END",
    },
)

SYNC_RUNS = Table(
    "biginterview.SyncRun",
    "(SELECT i, now() - i * interval '6 hours' AS at"
    " FROM generate_series(1, {sync_runs}) AS i) AS g",
    {
        "id": "g.i",
        "started_at": "g.at",
        "finished_at": "g.at + interval '14 minutes'",
        "accounts_synced": "{accounts} - 12",
        "accounts_failed": "10",
        "accounts_skipped": "2",
        "accounts_total": "{accounts}",
        "failures": (
            "(SELECT jsonb_agg(jsonb_build_object('partner_id', 'u-gone-' || n,"
            " 'error', 'HTTP 404')) FROM generate_series(1, 10) AS n)"
        ),
        "accounts_lost": "0",
        "lost_reason": "''",
    },
)

#: In loading order (foreign keys point backwards).
TABLES = (USERS, ACCOUNTS, TRACKS, STEPS, INTERVIEWS, EVENTS, SYNC_RUNS)


def model_columns(label: str) -> list[str]:
    """The concrete columns of a model, in its field order."""
    from django.apps import apps

    return [f.column for f in apps.get_model(label)._meta.concrete_fields]


def unfilled_columns(table: Table) -> tuple[set[str], set[str]]:
    """Columns the model has and the loader does not fill, and the other way round."""
    columns = set(model_columns(table.model))
    return columns - set(table.columns), set(table.columns) - columns


def insert_sql(table: Table, volume: Volume) -> str:
    from django.apps import apps

    model = apps.get_model(table.model)
    columns = model_columns(table.model)
    values = ", ".join(table.columns[c].format(**vars(volume)) for c in columns)
    return (
        f"INSERT INTO {model._meta.db_table} ({', '.join(columns)}) "
        f"SELECT {values} FROM {table.source.format(**vars(volume))}"
    )


#: The indexes of a table that back no constraint, with their definitions.
PLAIN_INDEXES = """
SELECT i.indexrelid::regclass::text, pg_get_indexdef(i.indexrelid)
FROM pg_index i LEFT JOIN pg_constraint c ON c.conindid = i.indexrelid
WHERE i.indrelid = %s::regclass AND c.oid IS NULL
"""


def load(database: str, volume: Volume) -> None:
    """Fill every table of ``TABLES`` in one session, then vacuum and analyze them (as
    autovacuum would have by then: index-only scans need the visibility map).

    A table's indexes that back no constraint are dropped while it fills and built again
    from their own definitions after: one build is faster than a million insertions.
    """
    from django.apps import apps

    for table in TABLES:
        missing, unknown = unfilled_columns(table)
        if missing or unknown:
            raise SystemExit(f"{table.model}: loader lacks {missing}, fills unknown {unknown}")
    started = time.monotonic()
    with psycopg.connect(dbname=database, autocommit=True, **PG) as conn:
        # Generated rows are consistent: skip the per-row foreign-key triggers.
        conn.execute("SET session_replication_role = replica")
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '256MB'")
        conn.execute("SELECT setseed(0.14)")
        for table in TABLES:
            db_table = apps.get_model(table.model)._meta.db_table
            step = time.monotonic()
            indexes = conn.execute(PLAIN_INDEXES.encode(), [db_table]).fetchall()
            for name, _definition in indexes:
                conn.execute(f"DROP INDEX {name}".encode())
            conn.execute(insert_sql(table, volume).encode())
            for _name, definition in indexes:
                conn.execute(definition.encode())
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{db_table}', 'id'),"
                f" (SELECT max(id) FROM {db_table}))".encode()
            )
            print(f"  {db_table}: {time.monotonic() - step:.1f} s", flush=True)
        step = time.monotonic()
        for table in TABLES:
            conn.execute(f"VACUUM ANALYZE {apps.get_model(table.model)._meta.db_table}".encode())
        print(f"  vacuum analyze: {time.monotonic() - step:.1f} s")
    print(f"loaded in {time.monotonic() - started:.1f} s", flush=True)


# --- Django, the database -----------------------------------------------------------------


def setup_django(database: str) -> None:
    """The example project on ``database``, DEBUG off, in this process."""
    os.environ.update(
        DJANGO_SETTINGS_MODULE="example_project.settings",
        DJANGO_DEBUG="0",
        DJANGO_ALLOWED_HOSTS="testserver",
        DATABASE_URL=f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{database}",
        # Nothing is enqueued; this only keeps the filesystem broker's folders away.
        CELERY_BROKER_URL="redis://127.0.0.1:6379/15",
    )
    sys.path[:0] = [str(EXAMPLE), str(ROOT)]
    import django

    django.setup()


def pg_admin(sql: str) -> None:
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        conn.execute(sql.encode())


def database_exists(database: str) -> bool:
    with psycopg.connect(dbname="postgres", autocommit=True, **PG) as conn:
        found = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
        return found.fetchone() is not None


def migrate() -> float:
    """Apply pending migrations; returns the seconds they took (on a loaded database,
    mostly index builds: the figure the upgrade notes quote)."""
    from django.core.management import call_command

    started = time.monotonic()
    call_command("migrate", verbosity=0)
    return time.monotonic() - started


# --- Jobs -----------------------------------------------------------------------------------


@dataclass
class Bench:
    """What a job gets: a test client logged in as a superuser, and sample values."""

    client: Any
    #: Looked up once: the busiest account's ids, an account with tracks, an interview
    #: and an event (``find_samples``).
    sample: dict[str, str] = field(default_factory=dict)

    def get(self, url: str, params: dict[str, Any] | None = None) -> Any:
        response = self.client.get(url, params or {})
        if response.status_code != 200:
            raise RuntimeError(f"{url} {params or ''}: HTTP {response.status_code}")
        return response


@dataclass
class Job:
    name: str
    target_ms: float
    run: Callable[[Bench], object]


JOBS: list[Job] = []


def job(
    name: str, target_ms: float
) -> Callable[[Callable[[Bench], object]], Callable[[Bench], object]]:
    """Register a function of the ``Bench`` as a measured job."""

    def register(function: Callable[[Bench], object]) -> Callable[[Bench], object]:
        JOBS.append(Job(name, target_ms, function))
        return function

    return register


def admin_url(model: str) -> str:
    from django.urls import reverse

    return reverse(f"admin:biginterview_{model}_changelist")


def api_url(route: str) -> str:
    from django.urls import reverse

    return reverse(f"biginterview:{route}")


def page_job(name: str, url: Callable[[], str], params: Callable[[Bench], dict[str, Any]]) -> None:
    target = API_MS if name.startswith("api") else ADMIN_MS
    job(name, target)(lambda bench: bench.get(url(), params(bench)))


CHANGELISTS = {
    "accounts": "account",
    "interviews": "interview",
    "tracks": "track",
    "webhook events": "webhookevent",
    "sync runs": "syncrun",
}
for _label, _model in CHANGELISTS.items():
    page_job(f"admin {_label}, page 1", lambda m=_model: admin_url(m), lambda b: {})
    if _model != "syncrun":  # 2,000 runs: 20 pages
        page_job(f"admin {_label}, page 50", lambda m=_model: admin_url(m), lambda b: {"p": 50})

for _name, _model, _key in (
    ("admin accounts, search partner_id", "account", "partner_id"),
    ("admin accounts, search username", "account", "username"),
    ("admin accounts, search email", "account", "email"),
    ("admin interviews, search partner_id", "interview", "partner_id"),
    ("admin interviews, search interview id", "interview", "interview_id"),
    ("admin tracks, search partner_id", "track", "track_partner_id"),
    ("admin webhook events, search partner_id", "webhookevent", "partner_id"),
    ("admin webhook events, search notification id", "webhookevent", "notification_id"),
):
    page_job(_name, lambda m=_model: admin_url(m), lambda b, k=_key: {"q": b.sample[k]})
# Asked for with its prefix: no index serves a substring search, it reads every interview.
page_job(
    "admin interviews, search title: (opt-in)",
    lambda: admin_url("interview"),
    lambda b: {"q": "title:Sales"},
)

for _route in ("api-accounts", "api-interviews", "api-tracks"):
    _label = f"api {_route.removeprefix('api-')}"
    page_job(f"{_label}, page 1", lambda r=_route: api_url(r), lambda b: {})
    page_job(f"{_label}, page 1 of 100", lambda r=_route: api_url(r), lambda b: {"page_size": 100})
    page_job(f"{_label}, page 50", lambda r=_route: api_url(r), lambda b: {"page": 50})
    page_job(
        f"{_label}, ?partner_id=",
        lambda r=_route: api_url(r),
        lambda b, r=_route: {
            "partner_id": b.sample["track_partner_id" if r == "api-tracks" else "partner_id"]
        },
    )


@job("sweeper, nothing due", SWEEPER_MS)
def sweeper_nothing_due(bench: Bench) -> None:
    """What beat runs every minute: the claim query, with none of the events due (the
    load's failed events have spent their attempts)."""
    from django_biginterview import webhook_processing

    if webhook_processing.claim_due_events():
        raise RuntimeError("events were due: the load should leave none")


def find_samples(bench: Bench) -> None:
    """Values the searches look for: the busiest account, an account with tracks, an event."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT a.partner_id, u.username, u.email FROM biginterview_account a"
            " JOIN auth_user u ON u.id = a.user_id WHERE a.id = 1"
        )
        sample = cursor.fetchone()
        bench.sample["partner_id"], bench.sample["username"], bench.sample["email"] = sample
        cursor.execute(
            "SELECT a.partner_id FROM biginterview_track t"
            " JOIN biginterview_account a ON a.id = t.account_id ORDER BY t.id DESC LIMIT 1"
        )
        bench.sample["track_partner_id"] = cursor.fetchone()[0]
        cursor.execute("SELECT remote_id FROM biginterview_interview WHERE id = %s", [1234])
        bench.sample["interview_id"] = str(cursor.fetchone()[0])
        cursor.execute("SELECT remote_id FROM biginterview_webhookevent WHERE id = %s", [4321])
        bench.sample["notification_id"] = cursor.fetchone()[0]


DATE_LINK = re.compile(r'<a href="(\?[^"]*)"([^>]*)>([^<]*)</a>')


def date_links(html: str) -> list[tuple[str, str]]:
    """The forward links of a page's date hierarchy: (query string, title)."""
    nav = re.search(r'<nav class="toplinks".*?</nav>', html, re.S)
    return [
        (unescape(query), title.strip())
        for query, attributes, title in DATE_LINK.findall(nav.group(0) if nav else "")
        if "date-back" not in attributes
    ]


def changelist_jobs(bench: Bench) -> None:
    """One job per choice of each filter on each changelist's page 1 (the first
    ``FILTER_CHOICES`` per filter), and one per date-hierarchy level (its newest link),
    read from the rendered pages so that the jobs follow the admin as it is."""
    from django.test.utils import setup_test_environment, teardown_test_environment

    for label, model in CHANGELISTS.items():
        url = admin_url(model)
        # Only for this page: with it, each template rendered copies its context.
        setup_test_environment()
        try:
            cl = bench.get(url).context["cl"]
        finally:
            teardown_test_environment()
        for spec in cl.filter_specs:
            choices = [c for c in spec.choices(cl) if not c.get("selected")]
            for choice in choices[:FILTER_CHOICES]:
                page_job(
                    f"admin {label}, {spec.title}: {choice['display']}",
                    lambda u=url, q=choice["query_string"]: u + q,
                    lambda b: {},
                )
        query = ""
        for _level in ("year", "month", "day"):
            links = date_links(bench.get(url + query).text)
            if not links:
                break
            query, title = links[-1]
            page_job(f"admin {label}, date {title}", lambda u=url, q=query: u + q, lambda b: {})


# --- Measuring ------------------------------------------------------------------------------


@dataclass
class Result:
    job: Job
    times_ms: list[float]
    queries: int
    slowest_ms: float
    slowest_sql: str
    error: str = ""

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms) if self.times_ms else float("nan")


def measure(bench: Bench, one: Job, rounds: int) -> Result:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    times: list[float] = []
    queries: list[dict[str, str]] = []
    try:
        one.run(bench)  # warm-up
        for _ in range(rounds):
            with CaptureQueriesContext(connection) as captured:
                started = time.perf_counter()
                one.run(bench)
                times.append((time.perf_counter() - started) * 1000)
            queries = captured.captured_queries
    except RuntimeError as exc:
        return Result(one, [], 0, 0.0, "", str(exc))
    slowest = max(queries, key=lambda q: float(q["time"]), default={"time": "0", "sql": ""})
    return Result(one, times, len(queries), float(slowest["time"]) * 1000, slowest["sql"])


def explain(sql: str) -> str:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
        return "\n".join(f"      {row[0]}" for row in cursor.fetchall())


def report(results: list[Result], show_plans: bool) -> None:
    print(f"\n{'job':<62}{'median ms':>10}{'target':>8}{'queries':>9}{'slowest ms':>12}  verdict")
    over = 0
    for r in results:
        if r.error:
            print(f"{r.job.name:<62}{'-':>10}{r.job.target_ms:>8.0f}{'-':>9}{'-':>12}  {r.error}")
            continue
        verdict = "ok" if r.median_ms <= r.job.target_ms else "OVER"
        over += verdict == "OVER"
        print(
            f"{r.job.name:<62}{r.median_ms:>10.1f}{r.job.target_ms:>8.0f}"
            f"{r.queries:>9}{r.slowest_ms:>12.1f}  {verdict}"
        )
        if show_plans and verdict == "OVER":
            print(f"    slowest query: {r.slowest_sql[:2000]}\n{explain(r.slowest_sql)}")
    print(f"\n{len(results)} jobs, {over} over target")


def selected(only: list[str]) -> Iterator[Job]:
    for one in JOBS:
        if not only or any(text in one.name for text in only):
            yield one


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="measured rounds per job")
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the volume")
    parser.add_argument("--only", action="append", default=[], help="jobs whose name has it")
    parser.add_argument("--explain", action="store_true", help="plans of jobs over target")
    parser.add_argument("--database", default=DB_NAME)
    parser.add_argument("--keep-db", action="store_true", help="keep the database afterwards")
    parser.add_argument("--reuse-db", action="store_true", help="measure a kept database")
    args = parser.parse_args()
    volume = Volume().scaled(args.scale)

    reuse = args.reuse_db and database_exists(args.database)
    if not reuse:
        pg_admin(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")
        pg_admin(f"CREATE DATABASE {args.database}")
    setup_django(args.database)
    try:
        took = migrate()
        if reuse:
            print(f"pending migrations applied in {took:.1f} s")
        if not reuse:
            load(args.database, volume)
        from django.contrib.auth import get_user_model
        from django.test import Client

        admin, _ = get_user_model().objects.get_or_create(
            username="bench-admin", defaults={"is_staff": True, "is_superuser": True}
        )
        client = Client()
        client.force_login(admin)
        bench = Bench(client)
        find_samples(bench)
        changelist_jobs(bench)
        jobs = list(selected(args.only))
        print(f"{len(jobs)} jobs, {args.rounds} rounds each", flush=True)
        report([measure(bench, one, args.rounds) for one in jobs], args.explain)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep_db:
            pg_admin(f"DROP DATABASE IF EXISTS {args.database} WITH (FORCE)")


if __name__ == "__main__":
    main()
