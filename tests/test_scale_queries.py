"""Issue #14: a staff page costs the same on a table of a million rows as on a small one.

Pinned here at a small volume: which queries a page runs (none reads every row to draw
a filter or the date links; interview counts cover the listed accounts only; searches
are plain equalities), which index serves each listing's ordering, filter and search
(EXPLAIN on PostgreSQL, with sequential scans and sorts priced out so that the plan shows
what can serve the query, as the planner chooses at volume), and that the results stay
right. ``bench/scale.py`` measures the same pages at full volume.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from io import StringIO
from typing import Any

import pytest
from django.contrib import admin
from django.core.management import call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from django_biginterview import admin as app_admin
from django_biginterview.models import Account, Interview, SyncRun, Track, WebhookEvent
from django_biginterview.testing.factories import (
    AccountFactory,
    InterviewFactory,
    SyncRunFactory,
    TrackFactory,
    UserFactory,
    WebhookEventFactory,
)
from django_biginterview.webhooks import KNOWN_EVENTS

pytestmark = pytest.mark.django_db
postgresql_only = pytest.mark.postgresql  # EXPLAIN and reltuples are PostgreSQL's


@pytest.fixture
def staff() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def changelist(model: type) -> str:
    return reverse(f"admin:biginterview_{model._meta.model_name}_changelist")


def get(client: Client, url: str, params: dict[str, Any] | None = None) -> tuple[Any, list[str]]:
    """The response (200 required) and the SQL of every query it ran."""
    with CaptureQueriesContext(connection) as captured:
        response = client.get(url, params or {})
    assert response.status_code == 200, (url, params, response.status_code)
    return response, [q["sql"] for q in captured.captured_queries]


def on_table(queries: list[str], model: type) -> list[str]:
    table = model._meta.db_table
    return [sql for sql in queries if re.search(rf'FROM "?{table}"?\b', sql)]


def listed(response: Any) -> list[Any]:
    return list(response.context["cl"].result_list)


# --- Accounts: interview counts for the page only ------------------------------------------


def account_with_interviews(live: int, deleted: int = 1) -> Account:
    account = AccountFactory()
    InterviewFactory.create_batch(live, account=account)
    InterviewFactory.create_batch(deleted, account=account, deleted_at=datetime.now(UTC))
    return account


def page_ids_in(sql: str) -> set[int]:
    found = re.search(r'"account_id" IN \(([^)]*)\)', sql)
    assert found, sql
    return {int(pk) for pk in found.group(1).split(",")}


def test_the_account_list_counts_the_interviews_of_its_page_only(
    staff: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    accounts = [account_with_interviews(live=n) for n in (1, 2, 3)]
    monkeypatch.setattr(admin.site._registry[Account], "list_per_page", 2)

    response, queries = get(staff, changelist(Account))

    shown = listed(response)
    assert [a.pk for a in shown] == [accounts[2].pk, accounts[1].pk]
    assert [a.interview_count for a in shown] == [3, 2]
    assert '<td class="field-interview_count">3</td>' in response.text
    # One query reads interviews (no count over every account, for the paginator or the
    # page), and only for the listed accounts.
    [counted] = on_table(queries, Interview)
    assert page_ids_in(counted) == {accounts[2].pk, accounts[1].pk}


def test_the_staff_api_counts_the_interviews_of_its_page_only(staff: Client) -> None:
    accounts = [account_with_interviews(live=n) for n in (1, 2, 3)]
    url = reverse("biginterview:api-accounts")

    response, queries = get(staff, url, {"page": 2, "page_size": 1})

    [row] = response.json()["results"]
    assert (row["partner_id"], row["interview_count"]) == (accounts[1].partner_id, 2)
    assert response.json()["count"] == 3
    [counted] = on_table(queries, Interview)
    assert page_ids_in(counted) == {accounts[1].pk}


# --- Filters and date links without a DISTINCT ----------------------------------------------


def some_of_everything() -> None:
    account = AccountFactory(partner_id="p-everything")
    TrackFactory(account=account)
    for day in (datetime(2023, 3, 10, tzinfo=UTC), datetime(2025, 7, 1, tzinfo=UTC)):
        InterviewFactory(account=account, remote_updated_at=day, category=f"Cat {day.year}")
        WebhookEventFactory(received_at=day)
        SyncRunFactory(started_at=day)


@pytest.mark.parametrize("model", [Account, Interview, WebhookEvent, SyncRun])
@pytest.mark.parametrize("level", [{}, {"year": "2024"}, {"year": "2025", "month": "7"}])
def test_no_filter_or_date_link_reads_every_row(
    staff: Client, model: type, level: dict[str, str]
) -> None:
    """Django's date hierarchy and its filter of a field's values each ran a DISTINCT
    over the whole table. (Tracks keep theirs: a few per account, see the README.)"""
    some_of_everything()
    hierarchy = admin.site._registry[model].date_hierarchy
    params = {f"{hierarchy}__{part}": value for part, value in level.items()} if hierarchy else {}

    _response, queries = get(staff, changelist(model), params)

    assert not [sql for sql in queries if "DISTINCT" in sql.upper()]


def date_links(response: Any) -> list[str]:
    nav = re.search(r'<nav class="toplinks".*?</nav>', response.text, re.S)
    assert nav, "no date hierarchy"
    return re.findall(r'<a href="[^"]*">([^<]*)</a>', nav.group(0))


def test_date_links_are_the_calendar_between_the_oldest_and_newest_rows(staff: Client) -> None:
    some_of_everything()
    url = changelist(Interview)
    field = "remote_updated_at"

    years, _queries = get(staff, url)
    in_2024, _queries = get(staff, url, {f"{field}__year": "2024"})
    in_2025, _queries = get(staff, url, {f"{field}__year": "2025"})
    july, _queries = get(staff, url, {f"{field}__year": "2025", f"{field}__month": "7"})

    assert date_links(years) == ["2023", "2024", "2025"]
    assert len(date_links(in_2024)) == 12 and in_2024.context["cl"].result_count == 0
    assert date_links(in_2025)[-1] == "July 2025" and len(date_links(in_2025)) == 7
    assert date_links(july) == ["July 1"]
    assert [i.remote_updated_at.day for i in listed(july)] == [1]


def test_one_month_of_rows_opens_at_its_days_as_django_does(staff: Client) -> None:
    for day in (3, 5):
        WebhookEventFactory(received_at=datetime(2026, 2, day, 12, tzinfo=UTC))

    response, _queries = get(staff, changelist(WebhookEvent))

    assert date_links(response) == ["February 3", "February 4", "February 5"]


def test_the_category_filter_offers_the_categories_in_order_and_takes_any(
    staff: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    for category in ("Sales: 2", "", "Nursing: 1", "Sales: 2", "Sales: 10", "Zebra: 1"):
        InterviewFactory(category=category, title=f"t-{category}")
    monkeypatch.setattr(app_admin, "CATEGORY_CHOICES", 3)

    response, _queries = get(staff, changelist(Interview))
    filtered, _queries = get(staff, changelist(Interview), {"category": "Zebra: 1"})

    [spec] = [s for s in response.context["cl"].filter_specs if s.title == "category"]
    assert [value for value, _label in spec.lookup_choices] == [
        "Nursing: 1",
        "Sales: 10",
        "Sales: 2",
    ]
    assert [i.title for i in listed(filtered)] == ["t-Zebra: 1"]


def test_the_event_filter_offers_the_handled_events(staff: Client) -> None:
    WebhookEventFactory(event_name="interview.deleted", remote_id="gone")
    WebhookEventFactory(event_name="interview.created", remote_id="made")
    WebhookEventFactory(event_name="account.merged", remote_id="odd")

    response, _queries = get(staff, changelist(WebhookEvent))
    deleted, _queries = get(staff, changelist(WebhookEvent), {"event_name": "interview.deleted"})
    unknown, _queries = get(staff, changelist(WebhookEvent), {"event_name": "account.merged"})

    [spec] = [s for s in response.context["cl"].filter_specs if s.title == "event"]
    assert [value for value, _label in spec.lookup_choices] == sorted(KNOWN_EVENTS)
    assert [e.remote_id for e in listed(deleted)] == ["gone"]
    assert [e.remote_id for e in listed(unknown)] == ["odd"]


# --- Searches: exact, on indexed columns ------------------------------------------------------


SEARCHES = [
    (Interview, "p-search", "by partner id"),
    (Interview, "777001", "by interview id"),
    (WebhookEvent, "n-777", "by notification id"),
    (WebhookEvent, "p-search", "by partner id"),
    (Account, "p-search", "by partner id"),
    (Account, "searcher", "by username"),
    (Account, "SEARCHER@Example.test", "by email, any case"),
    (Track, "p-search", "by partner id"),
]


@pytest.mark.parametrize(("model", "term", "_how"), SEARCHES)
def test_exact_searches_compare_plainly_and_find_the_row(
    staff: Client, model: type, term: str, _how: str
) -> None:
    account = AccountFactory(
        partner_id="p-search", user=UserFactory(username="searcher", email="searcher@example.test")
    )
    InterviewFactory(account=account, remote_id=777001)
    TrackFactory(account=account)
    WebhookEventFactory(partner_id="p-search", remote_id="n-777")
    AccountFactory(partner_id="p-other")
    InterviewFactory(remote_id=777002)
    TrackFactory()
    WebhookEventFactory(partner_id="p-other", remote_id="n-778")

    response, queries = get(staff, changelist(model), {"q": term})

    assert response.context["cl"].result_count == 1
    for sql in on_table(queries, model):
        assert "UPPER(" not in sql and " LIKE " not in sql.upper(), sql


@pytest.mark.parametrize("model", [Account, Interview, Track, WebhookEvent])
@pytest.mark.parametrize("term", ["x" * 300, "99999999999999999999999"])
def test_a_search_term_no_field_can_hold_finds_nothing(
    staff: Client, model: type, term: str
) -> None:
    """Too long for every column, past bigint: each field is left out, none errs."""
    some_of_everything()
    response, _queries = get(staff, changelist(model), {"q": term})
    assert response.context["cl"].result_count == 0


def test_a_title_search_is_asked_for_with_its_prefix(staff: Client) -> None:
    InterviewFactory(title="Done one")
    InterviewFactory(title="Other")

    words, _queries = get(staff, changelist(Interview), {"q": "Done"})
    titled, _queries = get(staff, changelist(Interview), {"q": "Title: done"})

    assert listed(words) == []
    assert [i.title for i in listed(titled)] == ["Done one"]


# --- The count of a big unfiltered list --------------------------------------------------------


def test_past_its_limit_a_list_shows_postgresqls_estimate_below_it_counts(
    staff: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    InterviewFactory.create_batch(3, completed=False)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(f"ANALYZE {Interview._meta.db_table}")
    InterviewFactory.create_batch(2, completed=True)  # not in the statistics
    monkeypatch.setattr(app_admin, "EXACT_COUNT_UP_TO", 2)

    everything, _queries = get(staff, changelist(Interview))
    few, _queries = get(staff, changelist(Interview), {"completed__exact": "1"})

    estimated = connection.vendor == "postgresql"
    # The planner still believes in the 3 rows it analyzed; 5 are there.
    assert everything.context["cl"].result_count == (3 if estimated else 5)
    assert ("PostgreSQL's estimate" in everything.text) is estimated
    assert few.context["cl"].result_count == 2
    assert "PostgreSQL's estimate" not in few.text


# --- Indexes ----------------------------------------------------------------------------------


def plan(sql: str, ordered: bool = True) -> str:
    """The plan of ``sql`` with sequential scans priced out, and sorts too when an index
    is to give the order."""
    switches = ["enable_seqscan", *(["enable_sort"] if ordered else [])]
    with connection.cursor() as cursor:
        for switch in switches:
            cursor.execute(f"SET {switch} = off")
        try:
            cursor.execute("EXPLAIN " + sql)
            return "\n".join(row[0] for row in cursor.fetchall())
        finally:
            for switch in switches:
                cursor.execute(f"RESET {switch}")


def uses(explained: str, index: str) -> bool:
    """Whether a plan reads ``index`` (an index scan or a bitmap index scan)."""
    return re.search(rf"\b(using|on) {index} ", explained) is not None


def page_query(queries: list[str], model: type) -> str:
    """The query that reads the listed rows (the one ordered)."""
    [sql] = [q for q in on_table(queries, model) if " ORDER BY " in q and "COUNT(" not in q]
    return sql


ADMIN_PLANS = [
    # (changelist, query string, the index that serves it, whether it gives the order)
    (Account, {}, "biginterview_acct_created_idx", True),
    (Account, {"p": "2"}, "biginterview_acct_created_idx", True),
    (Interview, {}, "biginterview_intv_updated_idx", True),
    (Interview, {"p": "2"}, "biginterview_intv_updated_idx", True),
    (Interview, {"completed__exact": "1"}, "biginterview_intv_updated_idx", True),
    (Interview, {"category": "Sales: 1"}, "biginterview_intv_category_idx", True),
    (Interview, {"deleted": "yes"}, "biginterview_intv_deleted_idx", True),
    (Interview, {"q": "900001"}, "biginterview_intv_remote_idx", False),
    (WebhookEvent, {"q": "n-900001"}, "biginterview_wh_unique_remote_id", False),
    (WebhookEvent, {"status__exact": "failed"}, "biginterview_wh_status_idx", False),
]


@postgresql_only
@pytest.mark.parametrize(("model", "params", "index", "ordered"), ADMIN_PLANS)
def test_an_index_serves_each_admin_listing(
    staff: Client, model: type, params: dict[str, str], index: str, ordered: bool
) -> None:
    for n in range(150):
        InterviewFactory(
            remote_id=900000 + n,
            category="Sales: 1",
            completed=n % 2 == 0,
            deleted_at=datetime.now(UTC) if n % 3 == 0 else None,
        )
        WebhookEventFactory(remote_id=f"n-{900000 + n}", status="failed")
    _response, queries = get(staff, changelist(model), params)
    explained = plan(page_query(queries, model), ordered)
    assert uses(explained, index), explained
    if ordered:
        assert "Sort" not in explained, explained


@postgresql_only
@pytest.mark.parametrize(
    ("route", "model", "index"),
    [
        ("api-accounts", Account, "biginterview_acct_created_idx"),
        ("api-interviews", Interview, "biginterview_intv_updated_idx"),
    ],
)
def test_an_index_gives_each_staff_api_listing_its_order(
    staff: Client, route: str, model: type, index: str
) -> None:
    InterviewFactory.create_batch(30)
    _response, queries = get(staff, reverse(f"biginterview:{route}"), {"page": 2})
    explained = plan(page_query(queries, model))
    assert uses(explained, index) and "Sort" not in explained, explained


@postgresql_only
def test_the_category_choices_walk_the_index() -> None:
    sql = app_admin.LOOSE_INDEX_SCAN.replace("{table}", Interview._meta.db_table)
    explained = plan(sql.replace("{column}", "category").replace("%s", "100"))
    assert "Index Only Scan using biginterview_intv_category_idx" in explained, explained
    assert "Seq Scan" not in explained


def index_columns(model: type) -> list[list[str]]:
    """The columns of each index of ``model``'s table, unique ones included."""
    with connection.cursor() as cursor:
        constraints = connection.introspection.get_constraints(cursor, model._meta.db_table)
    return [
        c["columns"]
        for c in constraints.values()
        if (c["index"] or c["unique"]) and not c["primary_key"]
    ]


def test_the_redundant_indexes_are_gone() -> None:
    # Interview.account's own index: the unique (account, remote_id) and the "recent"
    # index start with account_id.
    indexes = index_columns(Interview)
    assert ["account_id"] not in indexes
    assert ["account_id", "remote_id"] in indexes
    assert ["account_id", "remote_updated_at"] in indexes
    # partner_id's text-pattern index (PostgreSQL's "_like"): only the unique one is left.
    assert index_columns(Account).count(["partner_id"]) == 1


@pytest.mark.django_db(transaction=True)  # SQLite's schema editor refuses an open transaction
def test_the_migration_builds_and_drops_indexes_concurrently_only_on_postgresql() -> None:
    out = StringIO()
    call_command("sqlmigrate", "biginterview", "0004", stdout=out)
    statements = [s for s in out.getvalue().splitlines() if "INDEX" in s and not s.startswith("--")]
    assert len(statements) == (7 if connection.vendor == "postgresql" else 6)
    concurrently = [s for s in statements if " INDEX CONCURRENTLY " in s]
    assert len(concurrently) == (len(statements) if connection.vendor == "postgresql" else 0)


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_the_migration_unapplies_and_applies_again_on_postgresql() -> None:
    """Outside a transaction, as ``CREATE/DROP INDEX CONCURRENTLY`` must run."""
    call_command("migrate", "biginterview", "0003", verbosity=0)
    assert ["account_id"] in index_columns(Interview)
    assert ["created_at", "id"] not in index_columns(Account)
    call_command("migrate", "biginterview", verbosity=0)
    assert ["account_id"] not in index_columns(Interview)
    assert ["created_at", "id"] in index_columns(Account)


@postgresql_only
def test_a_sweep_with_nothing_due_reads_only_the_sweep_index() -> None:
    from django_biginterview import webhook_processing

    WebhookEventFactory.create_batch(5, status=WebhookEvent.Status.PROCESSED)
    sql, params = (
        webhook_processing.due_events()
        .order_by("received_at", "pk")
        .values_list("pk", flat=True)[:100]
        .query.sql_with_params()
    )
    with connection.cursor() as cursor:
        rendered = cursor.mogrify(sql, params)
    explained = plan(rendered, ordered=False)
    assert uses(explained, "biginterview_wh_sweep_idx"), explained
