"""``manage.py biginterview_webhooks``: list stored webhook events, or process them again.

For example::

    manage.py biginterview_webhooks --status failed                 # list
    manage.py biginterview_webhooks --replay --status failed --since 2026-11-01
    manage.py biginterview_webhooks --replay --id 123456789

``--replay`` processes the matching events now, in this process, whatever their status
(the same function as the admin's "process again" action), prints a summary and exits
non-zero if any of them failed.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import QuerySet
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from django_biginterview import tasks, webhook_processing
from django_biginterview.models import WebhookEvent

_DURATION = re.compile(r"(\d+)([mhd])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


def parse_since(value: str) -> datetime:
    """An ISO date or datetime (naive means the current time zone), or an age such as
    ``30m``, ``6h``, ``7d``."""
    value = value.strip()
    match = _DURATION.fullmatch(value)
    if match:
        return timezone.now() - timedelta(**{_UNITS[match[2]]: int(match[1])})
    try:
        moment = parse_datetime(value)
        if moment is None:
            day = parse_date(value)
            if day is not None:
                moment = datetime(day.year, day.month, day.day)
    except ValueError:
        moment = None
    if moment is None:
        raise CommandError(f"--since: expected a date, a datetime or an age like 6h, not {value!r}")
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment)
    return moment


class Command(BaseCommand):
    help = "List Big Interview webhook events, or process them again with --replay."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--status",
            choices=[choice.value for choice in WebhookEvent.Status],
            help="Only events with this status.",
        )
        parser.add_argument(
            "--id",
            dest="notification_ids",
            action="append",
            metavar="NOTIFICATION_ID",
            help="Only the event with this notification id (repeatable).",
        )
        parser.add_argument("--since", help="Only events received since (date, or age: 6h, 7d).")
        parser.add_argument("--partner-id", help="Only events of this partner_id.")
        parser.add_argument("--event", help="Only events with this event_name.")
        parser.add_argument(
            "--replay", action="store_true", help="Process the matching events again, now."
        )
        parser.add_argument(
            "--limit", type=int, default=100, help="Most events listed (default 100)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        events = self._select(options)
        if options["replay"]:
            if not (options["status"] or options["notification_ids"]):
                raise CommandError("--replay needs --status or --id (refusing to replay all).")
            self._replay(events)
        else:
            self._list(events, options["limit"])

    def _select(self, options: dict[str, Any]) -> QuerySet[WebhookEvent]:
        events = WebhookEvent.objects.all()
        if options["status"]:
            events = events.filter(status=options["status"])
        if options["notification_ids"]:
            ids = options["notification_ids"]
            events = events.filter(remote_id__in=ids)
            found = set(events.values_list("remote_id", flat=True))
            missing = [notification for notification in ids if notification not in found]
            if missing:
                raise CommandError(f"No webhook event with notification id: {', '.join(missing)}")
        if options["since"]:
            events = events.filter(received_at__gte=parse_since(options["since"]))
        if options["partner_id"]:
            events = events.filter(partner_id=options["partner_id"])
        if options["event"]:
            events = events.filter(event_name=options["event"])
        return events.order_by("received_at", "pk")

    def _list(self, events: QuerySet[WebhookEvent], limit: int) -> None:
        total = events.count()
        for event in events.order_by("-received_at", "-pk")[: max(0, limit)]:
            detail = event.last_error if event.status == WebhookEvent.Status.FAILED else ""
            detail = detail or event.reason
            self.stdout.write(
                f"{event.received_at:%Y-%m-%d %H:%M:%S} {event.remote_id} {event.event_name} "
                f"{event.partner_id} {event.status} attempts={event.attempts}"
                + (f" - {detail.splitlines()[0][:200]}" if detail else "")
            )
        shown = min(total, max(0, limit))
        self.stdout.write(f"{total} event(s) match" + (f", {shown} shown" if shown < total else ""))

    def _replay(self, events: QuerySet[WebhookEvent]) -> None:
        remote_ids = dict(events.values_list("pk", "remote_id"))
        summary = webhook_processing.replay_events(events)
        tasks.schedule_syncs_after_webhooks(summary.sync_account_ids)
        for outcome in summary.failures:
            self.stderr.write(
                f"{remote_ids.get(outcome.event_id, outcome.event_id)} failed: {outcome.reason}"
            )
        self.stdout.write(f"Replayed {summary}")
        if summary.failures:
            raise CommandError(f"{len(summary.failures)} event(s) failed.")
