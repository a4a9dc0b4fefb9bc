"""``manage.py biginterview_link_accounts`` and ``linking.py``: users linked to the Big
Interview users a partner made before installing the app, from a ``username,partner_id``
CSV; bad rows reported by line, conflicts refused, existing links never changed."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from django_biginterview import linking, tasks
from django_biginterview.models import Account, Interview
from django_biginterview.signals import account_created
from django_biginterview.testing.factories import (
    AccountFactory,
    AnonymousAccountFactory,
    UserFactory,
)
from tests.support.messages import Sent, record_messages
from tests.support.signals import capture

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("clean_redis")]


@pytest.fixture
def enqueued(monkeypatch: pytest.MonkeyPatch) -> Sent:
    """The ``sync_account`` messages the command sends, instead of sending them."""
    return record_messages(monkeypatch, tasks.sync_account)


@pytest.fixture
def csv_file(tmp_path: Path) -> Any:
    def write(text: str, name: str = "users.csv", encoding: str = "utf-8") -> str:
        path = tmp_path / name
        path.write_text(text, encoding=encoding)
        return str(path)

    return write


class Outcome:
    def __init__(self, out: str, err: str, error: str | None) -> None:
        self.out, self.err, self.error = out, err, error

    def refused(self) -> list[str]:
        return self.err.splitlines()


def link(path: str, *args: str, commit: Any) -> Outcome:
    """Run the command, committing as a real run does (``commit`` is
    ``django_capture_on_commit_callbacks``); a ``CommandError`` is returned, not raised."""
    out, err = io.StringIO(), io.StringIO()
    error = None
    with commit(execute=True):
        try:
            call_command("biginterview_link_accounts", path, *args, stdout=out, stderr=err)
        except CommandError as exc:
            error = str(exc)
    return Outcome(out.getvalue(), err.getvalue(), error)


def links() -> dict[str, str]:
    name = get_user_model().USERNAME_FIELD
    return dict(
        Account.objects.filter(user__isnull=False).values_list(f"user__{name}", "partner_id")
    )


def test_valid_rows_are_linked_and_their_syncs_enqueued(
    csv_file: Any, enqueued: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    for name in ("alice", "bob", "carol"):
        UserFactory(username=name)
    path = csv_file("username,partner_id\nalice,bi-001\n\n bob , BI_002 \ncarol,3\n")

    with capture(account_created) as created:
        result = link(path, commit=django_capture_on_commit_callbacks)

    assert result.error is None and result.err == ""
    assert links() == {"alice": "bi-001", "bob": "BI_002", "carol": "3"}
    assert "3 row(s): 3 linked, 0 already linked, 0 refused." in result.out
    assert "Sync of 3 linked account(s) enqueued" in result.out
    accounts = Account.objects.order_by("pk")
    assert sorted(enqueued.args) == [(account.pk,) for account in accounts]
    assert [(kw["account"].pk, kw["user"].username) for kw in created] == [
        (account.pk, account.user.username) for account in accounts
    ]
    assert all(not a.anonymous and a.sso_token == "" for a in accounts)


def test_every_kind_of_bad_row_is_reported_with_its_line_and_the_rest_is_linked(
    csv_file: Any, enqueued: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    for name in ("ok", "dave", "erin", "frank", "gina", "hank", "ivan", "judy", "kim", "leo"):
        UserFactory(username=name)
    AccountFactory(user=UserFactory(username="linked"), partner_id="old-id")
    AccountFactory(user=UserFactory(username="owner"), partner_id="taken-id")
    AnonymousAccountFactory(partner_id="anon_taken")
    rows = [
        "ok,ok-1",  # 1: linked
        "dave,has space",  # 2
        "erin," + "x" * 65,  # 3
        "frank,",  # 4
        ",no-user",  # 5
        "nobody,nobody-1",  # 6
        "gina,g-1",  # 7  gina twice with two ids: 7 and 8
        "gina,g-2",  # 8
        "hank,shared",  # 9  one id for two users: 9 and 10
        "ivan,shared",  # 10
        "judy,j-1",  # 11: linked
        "judy,j-1",  # 12: a repeat of 11
        "linked,new-id",  # 13: already linked to old-id
        "kim,taken-id",  # 14: owner has it
        "leo,anon_taken",  # 15: an anonymous account has it
        "one,two,three",  # 16
        "ünïcode,ü-1",  # 17
    ]
    path = csv_file("\n".join(rows) + "\n")

    result = link(path, commit=django_capture_on_commit_callbacks)

    assert result.refused() == [
        "line 2: dave,has space: invalid partner_id (1 to 64 characters from 0-9, a-z, A-Z, "
        "'-' and '_')",
        f"line 3: erin,{'x' * 65}: invalid partner_id (1 to 64 characters from 0-9, a-z, "
        "A-Z, '-' and '_')",
        "line 4: frank,: invalid partner_id (1 to 64 characters from 0-9, a-z, A-Z, '-' and '_')",
        "line 5: ,no-user: empty username",
        "line 6: nobody,nobody-1: no such user",
        "line 7: gina,g-1: username also on line 8 with another partner_id",
        "line 8: gina,g-2: username also on line 7 with another partner_id",
        "line 9: hank,shared: partner_id also on line 10 for another user",
        "line 10: ivan,shared: partner_id also on line 9 for another user",
        "line 12: judy,j-1: repeats line 11",
        "line 13: linked,new-id: user already linked to partner_id old-id (never overwritten)",
        "line 14: kim,taken-id: partner_id already used by user owner",
        "line 15: leo,anon_taken: partner_id already used by an anonymous account",
        "line 16: one,two,three: expected 2 fields (username,partner_id), found 3",
        "line 17: ünïcode,ü-1: invalid partner_id (1 to 64 characters from 0-9, a-z, A-Z, "
        "'-' and '_')",
    ]
    assert result.error == "15 row(s) refused; see above."
    assert "17 row(s): 2 linked, 0 already linked, 15 refused." in result.out
    assert links() == {"ok": "ok-1", "judy": "j-1", "linked": "old-id", "owner": "taken-id"}
    assert Account.objects.get(partner_id="anon_taken").user is None
    assert len(enqueued) == 2


def test_a_second_run_changes_nothing_and_says_so(
    csv_file: Any, enqueued: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    UserFactory(username="alice")
    UserFactory(username="bob")
    path = csv_file("alice,a-1\nbob,b-1\nnobody,n-1\n")
    first = link(path, commit=django_capture_on_commit_callbacks)
    before = list(Account.objects.order_by("pk").values())
    assert "2 linked" in first.out and len(enqueued) == 2

    with capture(account_created) as created:
        second = link(path, commit=django_capture_on_commit_callbacks)

    assert "3 row(s): 0 linked, 2 already linked, 1 refused; nothing changed." in second.out
    assert second.refused() == first.refused() == ["line 3: nobody,n-1: no such user"]
    assert "enqueued" not in second.out
    assert list(Account.objects.order_by("pk").values()) == before
    assert len(enqueued) == 2 and created == []


def test_a_dry_run_reports_the_same_and_writes_nothing(
    csv_file: Any, enqueued: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    UserFactory(username="alice")
    AccountFactory(user=UserFactory(username="bob"), partner_id="b-1")
    path = csv_file("alice,a-1\nbob,b-1\nbob,b-2\n")

    with capture(account_created) as created:
        result = link(path, "--dry-run", commit=django_capture_on_commit_callbacks)

    assert "3 row(s): 1 would be linked, 0 already linked, 2 refused." in result.out
    assert "Dry run: nothing was changed." in result.out
    assert result.refused() == [
        "line 2: bob,b-1: username also on line 3 with another partner_id",
        "line 3: bob,b-2: username also on line 2 with another partner_id",
    ]
    assert result.error == "2 row(s) refused; see above."
    assert links() == {"bob": "b-1"}
    assert enqueued == [] and created == []


def test_a_header_and_a_byte_order_mark_are_understood_and_lines_count_from_the_file(
    csv_file: Any, enqueued: Sent, django_capture_on_commit_callbacks: Any
) -> None:
    UserFactory(username="alice")
    path = csv_file("Username , Partner_ID\r\n\r\nalice,a-1\r\nghost,g-1\r\n", encoding="utf-8-sig")
    result = link(path, "--no-sync", commit=django_capture_on_commit_callbacks)
    assert result.refused() == ["line 4: ghost,g-1: no such user"]
    assert links() == {"alice": "a-1"}
    assert enqueued == [] and "enqueued" not in result.out


def test_a_row_that_looks_like_a_header_further_down_is_a_row(
    db: None, django_capture_on_commit_callbacks: Any
) -> None:
    rows, unreadable = linking.read_rows(io.StringIO("alice,a-1\nusername,partner_id\n"))
    assert [(row.line, str(row)) for row in rows] == [(1, "alice,a-1"), (2, "username,partner_id")]
    assert unreadable == []


def test_sync_now_mirrors_the_linked_users_from_the_sandbox(
    csv_file: Any,
    enqueued: Sent,
    biginterview_sandbox: Any,
    settings: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "RATE_LIMIT": 0}
    sandbox = biginterview_sandbox
    sandbox.create_user("legacy-1")
    sandbox.start_interview("legacy-1", title="Before the app")
    UserFactory(username="alice")
    UserFactory(username="bob")  # linked to an id Big Interview does not know: 404
    path = csv_file("alice,legacy-1\nbob,typo-1\n")

    result = link(path, "--sync-now", commit=django_capture_on_commit_callbacks)

    assert Interview.objects.get().title == "Before the app"
    assert Interview.objects.get().account.user.username == "alice"
    assert "Synced now: 1 synced, 1 failed, 0 skipped." in result.out
    assert result.err.startswith("typo-1: failed: NotFound")
    assert result.error == "1 linked account(s) failed to sync."
    bob = Account.objects.get(partner_id="typo-1")
    assert bob.remote_missing_at is not None  # shown in the admin: the link is wrong
    assert enqueued == []
    # Linking created no user there: only the two accounts' listings were called.
    assert {call.method for call in sandbox.api_calls()} == {"GET"}


def test_an_account_made_between_the_checks_and_the_insert_links_nothing(
    csv_file: Any,
    enqueued: Sent,
    monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    """A practice click taking a partner_id after the checks: the unique constraint
    refuses the insert and the whole file is rolled back."""
    UserFactory(username="alice")
    AccountFactory(user=UserFactory(username="bob"), partner_id="b-1")
    UserFactory(username="carol")
    monkeypatch.setattr(linking, "_holders", lambda partner_ids: {})  # the check missed it
    path = csv_file("alice,a-1\ncarol,b-1\n")

    result = link(path, commit=django_capture_on_commit_callbacks)

    assert result.error is not None and "nothing was linked" in result.error
    assert links() == {"bob": "b-1"}
    assert enqueued == []


def test_an_unreadable_file_is_a_clear_error(
    csv_file: Any, tmp_path: Path, django_capture_on_commit_callbacks: Any
) -> None:
    missing = link(str(tmp_path / "nope.csv"), commit=django_capture_on_commit_callbacks)
    assert missing.error is not None and "Cannot read" in missing.error
    latin = csv_file("zoë,z-1\n", encoding="latin-1")
    assert link(latin, commit=django_capture_on_commit_callbacks).error == (
        f"{latin} is not UTF-8 text."
    )


def test_many_rows_cost_a_few_queries_per_chunk_not_per_row(
    django_assert_max_num_queries: Any,
) -> None:
    """1,200 rows, three chunks: users, links, ids taken, insert and read-back go by
    chunk. A query per row would be 1,200."""
    model = get_user_model()
    model.objects.bulk_create([model(username=f"u{n}") for n in range(1200)])
    text = "".join(f"u{n},p-{n}\n" for n in range(1200)) + "u1,p-other\nnobody,x\n"
    with django_assert_max_num_queries(30):
        result = linking.link_csv(io.StringIO(text))
    assert (len(result.linked), len(result.refused)) == (1199, 3)
    assert len(result.account_ids) == 1199
    assert Account.objects.count() == 1199
