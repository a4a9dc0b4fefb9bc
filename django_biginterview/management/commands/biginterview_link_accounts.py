"""``manage.py biginterview_link_accounts``: link local users to the Big Interview users
that already exist under your own ``partner_id`` values (from before the app was installed).

For example::

    manage.py biginterview_link_accounts users.csv --dry-run   # report only
    manage.py biginterview_link_accounts users.csv             # link, then enqueue syncs
    manage.py biginterview_link_accounts users.csv --sync-now  # link, then sync here

The file is CSV, UTF-8 (a byte-order mark is fine), one ``username,partner_id`` per line;
a first line ``username,partner_id`` is a header, blank lines are skipped. The rules are
:mod:`django_biginterview.linking`'s: bad rows are reported with their line and reason
while the others are linked; an existing link is never changed; a second run links
nothing. By default each new account's sync is enqueued (a Celery worker runs it);
``--sync-now`` syncs them in this process instead, ``--no-sync`` leaves them to the next
"sync all". Exits non-zero when a row was refused or a sync now failed.
"""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import IntegrityError

from ... import linking, sync, tasks
from ...models import Account


class Command(BaseCommand):
    help = "Link users to their existing Big Interview users from a username,partner_id CSV."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("csv_file", help="CSV of username,partner_id rows (UTF-8).")
        parser.add_argument(
            "--dry-run", action="store_true", help="Report what would be linked; change nothing."
        )
        when = parser.add_mutually_exclusive_group()
        when.add_argument(
            "--sync-now",
            action="store_true",
            help="Sync the newly linked accounts in this process instead of enqueueing.",
        )
        when.add_argument(
            "--no-sync",
            action="store_true",
            help="Do not sync the newly linked accounts (the next sync of all does).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        dry_run: bool = options["dry_run"]
        try:
            with open(options["csv_file"], newline="", encoding="utf-8-sig") as lines:
                result = linking.link_csv(lines, dry_run=dry_run)
        except OSError as exc:
            raise CommandError(f"Cannot read {options['csv_file']}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise CommandError(f"{options['csv_file']} is not UTF-8 text.") from None
        except IntegrityError:
            raise CommandError(
                "One of these users or partner_ids got an account while the file was being "
                "linked (a practice click?); nothing was linked. Run the command again: it "
                "reports that row."
            ) from None
        for refusal in result.refused:
            self.stderr.write(str(refusal))
        self.stdout.write(str(result))
        if dry_run:
            self.stdout.write("Dry run: nothing was changed.")
        elif result.account_ids and not options["no_sync"]:
            self._sync(result.account_ids, now=options["sync_now"])
        if result.refused:
            raise CommandError(f"{len(result.refused)} row(s) refused; see above.")

    def _sync(self, account_ids: list[int], *, now: bool) -> None:
        if not now:
            for account_id in account_ids:
                tasks.schedule_account_sync(account_id)
            self.stdout.write(
                f"Sync of {len(account_ids)} linked account(s) enqueued; a Celery worker runs it."
            )
            return
        client = sync.sync_client()
        outcomes = {"synced": 0, "failed": 0, "skipped": 0}
        for account_id in account_ids:  # a query each: the sync's own cost is far higher
            result = sync.sync_account_safely(Account.objects.get(pk=account_id), client)
            outcomes[result.outcome] += 1
            if result.outcome != "synced":
                self.stderr.write(f"{result.partner_id}: {result.outcome}: {result.error}")
        self.stdout.write(
            "Synced now: " + ", ".join(f"{count} {name}" for name, count in outcomes.items()) + "."
        )
        if outcomes["failed"]:
            raise CommandError(f"{outcomes['failed']} linked account(s) failed to sync.")
