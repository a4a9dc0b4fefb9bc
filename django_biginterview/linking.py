"""Linking local users to the Big Interview users a partner made before installing the app.

Those users already exist on Big Interview under the partner's own ``partner_id``s, which
an ``Account`` must carry so that single sign-on, webhooks and syncs reach them (the
adapter would derive a new id, and so a new, empty Big Interview user). This module reads
``username,partner_id`` rows and creates the missing ``Account`` rows; it never changes
an existing one. The command is ``manage.py biginterview_link_accounts``.

Every row is checked, and a bad one is refused with its line number and the reason while
the others go on:

- the ``partner_id`` must follow the documented rules, and the user must exist;
- the file must agree with itself: a username listed with two ids, or an id listed for
  two users, refuses all of those rows (which one is right is not known); a row repeated
  exactly is refused as a repeat, and its first line counts;
- it must agree with the database: a user linked already to another id, or an id another
  account has (a user's, or an anonymous visitor's), is refused, never overwritten.

A row whose user is linked to that id already is unchanged, so a second run links nothing.
The lookups and the inserts go by ``CHUNK_SIZE`` rows (a 10,000-row file costs about a
hundred queries), and all the links are made in one transaction: if another process
creates one of these accounts meanwhile (a practice click), the unique constraints refuse
it and nothing is linked. Syncing the new accounts is the caller's: they are in
:attr:`LinkResult.account_ids`.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from .models import Account
from .signals import account_created
from .validators import is_valid_partner_id

#: Rows per lookup and per insert: well under any database's limit of query parameters.
CHUNK_SIZE = 500

#: A first row equal to this (any case, spaces around the names ignored) is a header.
HEADER = ("username", "partner_id")

#: At most this many other line numbers are named in a conflict's reason.
MAX_LINES_NAMED = 5


@dataclass(frozen=True)
class Row:
    """One ``username,partner_id`` row of the file, with its line number (from 1)."""

    line: int
    username: str
    partner_id: str

    def __str__(self) -> str:
        return f"{self.username},{self.partner_id}"


@dataclass(frozen=True)
class Refusal:
    """A row that was not linked: its line, the row as read, and why."""

    line: int
    text: str
    reason: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.text}: {self.reason}"


@dataclass
class LinkResult:
    """What linking did (or, in a dry run, would do).

    ``linked``: rows whose account was created; ``unchanged``: rows whose user was linked
    to that ``partner_id`` already; ``refused``: the bad rows, by line; ``account_ids``:
    the accounts created (empty in a dry run), for the caller to sync.
    """

    dry_run: bool = False
    linked: list[Row] = field(default_factory=list)
    unchanged: list[Row] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    account_ids: list[int] = field(default_factory=list)

    @property
    def rows(self) -> int:
        return len(self.linked) + len(self.unchanged) + len(self.refused)

    def __str__(self) -> str:
        verb = "would be linked" if self.dry_run else "linked"
        text = (
            f"{self.rows} row(s): {len(self.linked)} {verb}, "
            f"{len(self.unchanged)} already linked, {len(self.refused)} refused"
        )
        if not self.linked:
            text += "; nothing to change" if self.dry_run else "; nothing changed"
        return text + "."


def read_rows(lines: Iterable[str]) -> tuple[list[Row], list[Refusal]]:
    """The rows of a CSV file (``lines`` as ``open(..., newline="")`` gives them), and
    the lines that are not a ``username,partner_id`` pair.

    Two fields per row, spaces around each removed; blank lines are skipped, and a first
    row ``username,partner_id`` is taken as the header. Line numbers are those of the
    file (a quoted field may span lines).
    """
    rows: list[Row] = []
    refused: list[Refusal] = []
    reader = csv.reader(lines)
    first = True
    for fields in reader:
        values = [value.strip() for value in fields]
        if not any(values):
            continue
        if first and tuple(value.lower() for value in values) == HEADER:
            first = False
            continue
        first = False
        if len(values) != 2:
            refused.append(
                Refusal(
                    reader.line_num,
                    ",".join(values)[:200],
                    f"expected 2 fields (username,partner_id), found {len(values)}",
                )
            )
            continue
        rows.append(Row(reader.line_num, values[0], values[1]))
    return rows, refused


def link_csv(lines: Iterable[str], *, dry_run: bool = False) -> LinkResult:
    """:func:`read_rows`, then :func:`link_accounts`; the refusals of both, by line."""
    rows, unreadable = read_rows(lines)
    result = link_accounts(rows, dry_run=dry_run)
    result.refused = sorted([*unreadable, *result.refused], key=lambda refusal: refusal.line)
    return result


def link_accounts(rows: Sequence[Row], *, dry_run: bool = False) -> LinkResult:
    """Create an ``Account`` for each acceptable row (see the module's rules), in one
    transaction, and send ``account_created`` for each after commit; ``dry_run``
    checks the same and writes nothing.

    Raises ``IntegrityError`` (nothing linked) when another process created one of these
    accounts, or took one of these ids, between the checks and the insert.
    """
    result = LinkResult(dry_run=dry_run)

    def refuse(row: Row, reason: str) -> None:
        result.refused.append(Refusal(row.line, str(row), reason))

    candidates = []
    for row, reason in _check_file(rows):
        if reason:
            refuse(row, reason)
        else:
            candidates.append(row)
    users = _users_by_name([row.username for row in candidates])
    user_pks = [user.pk for user in users.values()]
    linked_to = dict(
        _in_chunks(Account.objects.values_list("user_id", "partner_id"), "user_id__in", user_pks)
    )
    taken = _holders(row.partner_id for row in candidates)
    to_link: list[tuple[Row, Any]] = []
    for row in candidates:
        user = users.get(row.username)
        if user is None:
            refuse(row, "no such user")
            continue
        current = linked_to.get(user.pk)
        if current == row.partner_id:
            result.unchanged.append(row)
        elif current is not None:
            refuse(row, f"user already linked to partner_id {current} (never overwritten)")
        elif row.partner_id in taken:
            refuse(row, f"partner_id already used by {taken[row.partner_id]}")
        else:
            to_link.append((row, user))
    result.linked = [row for row, _ in to_link]
    result.refused.sort(key=lambda refusal: refusal.line)
    if not dry_run and to_link:
        result.account_ids = _create_accounts(to_link)
    return result


def _check_file(rows: Sequence[Row]) -> Iterator[tuple[Row, str]]:
    """Each row with the reason the file itself refuses it (``""`` when it does not): an
    empty username, an invalid ``partner_id``, a conflict with another row, a repeat."""
    ids_of: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    users_of: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    for row in rows:
        ids_of[row.username][row.partner_id].append(row.line)
        users_of[row.partner_id][row.username].append(row.line)
    for row in rows:
        if not row.username:
            yield row, "empty username"
        elif not is_valid_partner_id(row.partner_id):
            yield row, "invalid partner_id (1 to 64 characters from 0-9, a-z, A-Z, '-' and '_')"
        elif len(ids_of[row.username]) > 1:
            others = _lines(ids_of[row.username], but=row.partner_id)
            yield row, f"username also on {others} with another partner_id"
        elif len(users_of[row.partner_id]) > 1:
            others = _lines(users_of[row.partner_id], but=row.username)
            yield row, f"partner_id also on {others} for another user"
        elif (first := ids_of[row.username][row.partner_id][0]) != row.line:
            yield row, f"repeats line {first}"
        else:
            yield row, ""


def _lines(lines_by_key: dict[str, list[int]], *, but: str) -> str:
    lines = sorted(line for key, found in lines_by_key.items() if key != but for line in found)
    named = ", ".join(str(line) for line in lines[:MAX_LINES_NAMED])
    more = len(lines) - MAX_LINES_NAMED
    return (
        ("line " if len(lines) == 1 else "lines ")
        + named
        + (f" (+{more} more)" if more > 0 else "")
    )


def _in_chunks(queryset: Any, lookup: str, values: Sequence[Any]) -> Iterator[Any]:
    """The rows of ``queryset`` filtered by ``lookup`` over ``values``, ``CHUNK_SIZE``
    values per query, unordered (the models' default orderings would only cost a sort)."""
    for start in range(0, len(values), CHUNK_SIZE):
        yield from queryset.filter(**{lookup: values[start : start + CHUNK_SIZE]}).order_by()


def _users_by_name(usernames: Sequence[str]) -> dict[str, Any]:
    model = get_user_model()
    name = model.USERNAME_FIELD
    users = _in_chunks(model._default_manager.all(), f"{name}__in", sorted(set(usernames)))
    return {getattr(user, name): user for user in users}


def _holders(partner_ids: Iterable[str]) -> dict[str, str]:
    """``{partner_id: who has it}`` for those of ``partner_ids`` an account has."""
    name = get_user_model().USERNAME_FIELD
    accounts = Account.objects.values_list("partner_id", f"user__{name}")
    return {
        partner_id: f"user {username}" if username is not None else "an anonymous account"
        for partner_id, username in _in_chunks(accounts, "partner_id__in", sorted(set(partner_ids)))
    }


def _create_accounts(to_link: Sequence[tuple[Row, Any]]) -> list[int]:
    """Insert the accounts in one transaction, announce them after commit, and return
    their primary keys (read back: not every database returns them from a bulk insert)."""
    user_of = {row.partner_id: user for row, user in to_link}
    with transaction.atomic():
        Account.objects.bulk_create(
            [Account(user=user, partner_id=row.partner_id) for row, user in to_link],
            batch_size=CHUNK_SIZE,
        )
        accounts = list(_in_chunks(Account.objects.all(), "partner_id__in", list(user_of)))
        accounts.sort(key=lambda account: account.pk)
        for account in accounts:
            account.user = user_of[account.partner_id]

        def announce() -> None:
            for account in accounts:
                account_created.send(sender=Account, account=account, user=account.user)

        transaction.on_commit(announce)
    return [account.pk for account in accounts]
