"""``manage.py biginterview_sync``: sync accounts from Big Interview now, or enqueue it.

For example::

    manage.py biginterview_sync --all              # every account, in this process
    manage.py biginterview_sync --all --async      # the Celery fan-out (as the beat does)
    manage.py biginterview_sync --user alice --user bob  # these users' accounts
    manage.py biginterview_sync --partner-id abc123 --async
    manage.py biginterview_sync --runs             # the latest runs, lost ones included

Exits non-zero when an account failed (or, for ``--all``, when another run holds the lock).
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from ... import sync, sync_runs, tasks
from ...conf import app_settings
from ...models import Account, SyncRun


class Command(BaseCommand):
    help = "Sync track progress and interviews from Big Interview."

    def add_arguments(self, parser: CommandParser) -> None:
        target = parser.add_mutually_exclusive_group(required=True)
        target.add_argument("--all", action="store_true", help="Every account.")
        target.add_argument(
            "--user", action="append", metavar="USERNAME", help="This user's account (repeatable)."
        )
        target.add_argument(
            "--partner-id", action="append", metavar="ID", help="This account (repeatable)."
        )
        target.add_argument(
            "--runs",
            action="store_true",
            help="Show the latest runs of --all, first closing those whose lease lapsed.",
        )
        parser.add_argument(
            "--async",
            action="store_true",
            dest="enqueue",
            help="Enqueue Celery tasks instead of syncing in this process.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["runs"]:
            self._show_runs()
        elif options["all"]:
            self._sync_all(enqueue=options["enqueue"])
        else:
            accounts = self._accounts(options["user"] or [], options["partner_id"] or [])
            self._sync_accounts(accounts, enqueue=options["enqueue"])

    # -- targets ---------------------------------------------------------------------------

    def _accounts(self, usernames: list[str], partner_ids: list[str]) -> list[Account]:
        accounts: list[Account] = []
        lookup = f"user__{get_user_model().USERNAME_FIELD}"
        for username in usernames:
            account = Account.objects.filter(**{lookup: username}).first()
            if account is None:
                raise CommandError(f"No Big Interview account for user {username!r}.")
            accounts.append(account)
        for partner_id in partner_ids:
            account = Account.objects.filter(partner_id=partner_id).first()
            if account is None:
                raise CommandError(f"No Big Interview account with partner_id {partner_id!r}.")
            accounts.append(account)
        return accounts

    def _sync_accounts(self, accounts: list[Account], *, enqueue: bool) -> None:
        if enqueue:
            for account in accounts:
                tasks.schedule_account_sync(account.pk)
                self.stdout.write(f"{account.partner_id}: sync scheduled")
            return
        client = sync.sync_client()
        failed = 0
        for account in accounts:
            result = sync.sync_account_safely(account, client)
            failed += result.outcome == "failed"
            self.stdout.write(self._describe(result))
        if failed:
            raise CommandError(f"{failed} of {len(accounts)} account(s) failed.")

    def _sync_all(self, *, enqueue: bool) -> None:
        if enqueue:
            tasks.sync_all_accounts.apply_async()
            self.stdout.write("Sync of all accounts enqueued; see the sync runs in the admin.")
            return
        progress = Progress(self.stdout, total=sync_runs.accounts_to_sync().count())
        run = sync_runs.sync_all_inline(
            sync.sync_client(),
            chunk_size=app_settings.SYNC_CHUNK_SIZE,
            on_result=progress.update,
        )
        progress.close()
        if run is None:
            raise CommandError("Another sync of all accounts is running; nothing done.")
        self.stdout.write(sync_runs.summarize_run(run))
        if run.accounts_failed:
            raise CommandError(f"{run.accounts_failed} account(s) failed.")

    def _show_runs(self, count: int = 10) -> None:
        sync_runs.close_lost_runs()
        for run in SyncRun.objects.order_by("-started_at", "-pk")[:count]:
            self.stdout.write(f"[{run.state}] {sync_runs.summarize_run(run)}")

    @staticmethod
    def _describe(result: sync.SyncResult) -> str:
        if result.outcome == "failed":
            return f"{result.partner_id}: failed: {result.error}"
        if result.outcome == "skipped":
            return f"{result.partner_id}: skipped: {result.error}"
        return (
            f"{result.partner_id}: synced ({result.interviews_created} new, "
            f"{result.interviews_updated} updated, {result.interviews_deleted} deleted "
            f"interviews; tracks {'changed' if result.tracks_changed else 'unchanged'})"
        )


class Progress:
    """A one-line progress bar on a terminal; one plain line per account otherwise
    (logs and pipes get no carriage returns)."""

    WIDTH = 30

    def __init__(self, out: Any, *, total: int) -> None:
        self.out = out
        self.total = max(total, 0)
        self.done = 0
        self.failed = 0
        self.tty = bool(getattr(out, "isatty", lambda: False)())

    def update(self, result: sync.SyncResult) -> None:
        self.done += 1
        self.failed += result.outcome == "failed"
        if not self.tty:
            self.out.write(Command._describe(result))
            return
        total = max(self.total, self.done)
        filled = round(self.WIDTH * self.done / total) if total else self.WIDTH
        bar = "#" * filled + "-" * (self.WIDTH - filled)
        self.out.write(f"\r[{bar}] {self.done}/{total} ({self.failed} failed)", ending="")
        self.out.flush()

    def close(self) -> None:
        if self.tty and self.done:
            self.out.write("")
