"""``manage.py biginterview_erase``: erase what this app stores about people (GDPR).

For example::

    manage.py biginterview_erase --user alice --dry-run     # what would be erased
    manage.py biginterview_erase --user alice --user bob
    manage.py biginterview_erase --partner-id anon_abc123   # e.g. an anonymous visitor

Runs :mod:`django_biginterview.erasure` for each target, all in one transaction: the
account with its tracks, steps and interviews is deleted, webhook events are deleted or
anonymised. The Django users themselves are kept. Every target is looked up before
anything is erased; an unknown one (no such user; no account or webhook event with that
``partner_id``, e.g. because it was erased already) stops the command with a non-zero
exit and nothing changed. ``--dry-run`` prints the counts and changes nothing.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import transaction

from ...erasure import erase_partner_id, erase_user
from ...models import Account, WebhookEvent
from ...validators import is_valid_partner_id


class Command(BaseCommand):
    help = "Erase the Big Interview data stored for users or partner ids."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--user",
            action="append",
            default=[],
            metavar="USERNAME",
            help="Erase this user's data; the user is kept (repeatable).",
        )
        parser.add_argument(
            "--partner-id",
            action="append",
            default=[],
            metavar="ID",
            help="Erase the data of this partner_id, e.g. an anonymous account (repeatable).",
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="Print what would be erased; change nothing."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        usernames: list[str] = options["user"]
        partner_ids: list[str] = options["partner_id"]
        if not usernames and not partner_ids:
            raise CommandError("Name at least one --user or --partner-id.")
        users = self._users(usernames)
        self._check_partner_ids(partner_ids)
        dry_run: bool = options["dry_run"]
        with transaction.atomic():
            for username, user in users:
                report = erase_user(user, dry_run=dry_run)
                where = f" (partner_id {report.partner_id})" if report.partner_id else ""
                self.stdout.write(f"user {username}{where}: {report}")
            for partner_id in partner_ids:
                report = erase_partner_id(partner_id, dry_run=dry_run)
                self.stdout.write(f"partner_id {partner_id}: {report}")
        if dry_run:
            self.stdout.write("Dry run: nothing was changed.")

    def _users(self, usernames: list[str]) -> list[tuple[str, Any]]:
        model = get_user_model()
        found = {
            getattr(user, model.USERNAME_FIELD): user
            for user in model._default_manager.filter(**{f"{model.USERNAME_FIELD}__in": usernames})
        }
        unknown = [name for name in usernames if name not in found]
        if unknown:
            raise CommandError(f"No such user: {', '.join(unknown)}. Nothing was erased.")
        return [(name, found[name]) for name in usernames]

    def _check_partner_ids(self, partner_ids: list[str]) -> None:
        invalid = [value for value in partner_ids if not is_valid_partner_id(value)]
        if invalid:
            raise CommandError(f"Not a valid partner_id: {', '.join(map(repr, invalid))}.")
        known = set(
            Account.objects.filter(partner_id__in=partner_ids).values_list("partner_id", flat=True)
        ) | set(
            WebhookEvent.objects.filter(partner_id__in=partner_ids).values_list(
                "partner_id", flat=True
            )
        )
        unknown = [value for value in partner_ids if value not in known]
        if unknown:
            raise CommandError(
                f"No account or webhook event with partner_id: {', '.join(unknown)} "
                "(unknown, or erased already). Nothing was erased."
            )
