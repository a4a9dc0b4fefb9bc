"""What an operator needs to see at a glance, for the admin's status page and the
``health/`` endpoint: the app's configuration problems, webhook and "sync all" activity,
the worker's last sign of life, and which of these needs a person.

:func:`take_snapshot` gathers it in three queries whatever the size of the tables (each
served by an index) and one read of the coordination store; :func:`check_connection`
asks Big Interview whether it accepts the configured key. Plain functions and frozen
dataclasses: the admin and the view only present them, and neither ever holds a key.

The worker's sign of life is a timestamp the webhook sweep writes into the coordination
store each time a worker runs it (:func:`note_worker_alive`); beat schedules the sweep
every minute, so a recent timestamp means beat, the broker and a worker consuming the
app's queue all work. It is only seen from the web process when both share the store
(``REDIS_URL``, or a cache they share).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from django.core.checks import ERROR, CheckMessage
from django.core.checks.registry import registry
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Count, Max, Q
from django.http import HttpRequest
from django.utils import timezone
from django.utils.timesince import timesince

from . import checks, coordination, sso, sync_runs
from .client import BigInterviewClient
from .conf import AppSettings, Setting, app_settings
from .exceptions import (
    APIError,
    AuthenticationError,
    InvalidSetting,
    LimitReached,
    NotFound,
    TransportError,
)
from .models import SyncRun, WebhookEvent

logger = logging.getLogger(__name__)

#: The note, in the coordination store, of when a worker last ran the webhook sweep.
WORKER_NOTE = "worker-seen"

#: How long that note is kept: a worker silent for longer shows as never seen.
WORKER_NOTE_KEPT = timedelta(days=7)

#: The check ids saying that a key the app cannot work without is not set, and the key.
MISSING_KEY_CHECKS = {
    "biginterview.W001": "BASE_URL",
    "biginterview.E001": "BASE_URL",
    "biginterview.W003": "API_KEY",
    "biginterview.E003": "API_KEY",
    "biginterview.W005": "WEBHOOK_KEYS",
    "biginterview.E005": "WEBHOOK_KEYS",
}

#: The member the connection test asks for: no one has this partner id, so Big
#: Interview's documented 404 means it accepted the key.
PROBE_PARTNER_ID = "biginterview-connection-test"

#: How many failure reasons of the last run a snapshot keeps (the run's page has all).
FAILURES_SHOWN = 5


def may_view(request: HttpRequest) -> bool:
    """Whether the request's user may see the status (the admin page, and ``health/``
    without the token): active staff with the view or change permission on sync runs,
    as the sync runs' admin, under which the page sits, grants its own pages."""
    user = request.user
    return bool(
        user.is_active
        and user.is_staff
        and (
            user.has_perm("biginterview.view_syncrun")
            or user.has_perm("biginterview.change_syncrun")
        )
    )


# --- The worker's sign of life ----------------------------------------------------------


def note_worker_alive(now: datetime | None = None) -> None:
    """Record that a worker is running the periodic tasks (the webhook sweep calls this
    each time it runs). Never raises: a store that is down is reported by the status."""
    try:
        coordination.remember(WORKER_NOTE, (now or timezone.now()).isoformat(), WORKER_NOTE_KEPT)
    except Exception:  # the sweep goes on; take_snapshot reports the store as unreachable
        logger.warning("Could not record the worker's sign of life", exc_info=True)


def worker_last_seen() -> datetime | None:
    """When a worker last ran the webhook sweep; ``None`` if not within
    ``WORKER_NOTE_KEPT`` (or never). Raises what the store raises when it is down."""
    value = coordination.recall(WORKER_NOTE)
    if not value:
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


# --- Snapshot ---------------------------------------------------------------------------


@dataclass(frozen=True)
class ConfigurationMessage:
    """One message of the app's system checks, as ``manage.py check`` prints it."""

    id: str
    level: str  # "error" or "warning"
    message: str
    hint: str


@dataclass(frozen=True)
class RunSummary:
    """The latest "sync all" run. ``duration`` is so far for a run still running."""

    pk: int
    state: str  # "running", "finished" or "lost" (SyncRun.state)
    started_at: datetime
    finished_at: datetime | None
    duration: timedelta
    total: int | None
    synced: int
    failed: int
    skipped: int
    lost: int
    lost_reason: str
    #: ``(partner id or "-", reason)`` of the first ``FAILURES_SHOWN`` failures.
    failures: tuple[tuple[str, str], ...]

    @property
    def duration_seconds(self) -> float:
        return self.duration.total_seconds()


@dataclass(frozen=True)
class Problem:
    """Something that needs a person; ``code`` is stable, ``message`` says what to do."""

    code: str
    message: str


@dataclass(frozen=True)
class Snapshot:
    """The status at ``taken_at``. ``problems`` is empty when nothing needs a person."""

    taken_at: datetime
    configuration: tuple[ConfigurationMessage, ...]
    last_webhook_at: datetime | None
    pending_events: int
    failed_events: int
    #: Failed with no retry left, received within ``HEALTH_FAILED_EVENTS_WINDOW``.
    exhausted_events: int
    last_run: RunSummary | None
    worker_seen_at: datetime | None
    #: Whether the coordination store could be read (else ``worker_seen_at`` is unknown).
    store_reachable: bool
    problems: tuple[Problem, ...]

    @property
    def healthy(self) -> bool:
        return not self.problems


def configuration_messages() -> tuple[ConfigurationMessage, ...]:
    """What the app's registered system checks report now, by id (errors and warnings;
    the ``--deploy`` variants of the missing-key warnings are the same problems)."""
    found: list[CheckMessage] = []
    for check in registry.get_checks():
        if check.__module__ == checks.__name__:
            found.extend(check(app_configs=None, databases=None))
    return tuple(
        ConfigurationMessage(
            id=message.id or "",
            level="error" if message.level >= ERROR else "warning",
            message=str(message.msg),
            hint=str(message.hint or ""),
        )
        for message in sorted(found, key=lambda m: m.id or "")
    )


def take_snapshot(now: datetime | None = None) -> Snapshot:
    """The status now: three queries (the latest webhook, the pending and failed events'
    counts, the latest run) and one read of the coordination store.

    The counts read only pending and failed events (an index on status), never the
    processed ones, however many are kept.
    """
    now = now or timezone.now()
    configuration = configuration_messages()
    window = _threshold(AppSettings.HEALTH_FAILED_EVENTS_WINDOW)
    counts = _event_counts(now, window)
    last_webhook_at = WebhookEvent.objects.aggregate(last=Max("received_at"))["last"]
    run = SyncRun.objects.order_by("-started_at", "-pk").first()
    last_run = None if run is None else _summary(run, now)
    try:
        seen, reachable = worker_last_seen(), True
    except Exception:  # any store error: reported as a problem, never raised
        logger.warning("Coordination store unreachable: worker's sign of life unknown")
        seen, reachable = None, False
    problems = (
        *_configuration_problems(configuration),
        *_worker_problems(now, seen, reachable),
        *_event_problems(counts["exhausted"], window),
        *_sync_problems(now, last_run),
    )
    return Snapshot(
        taken_at=now,
        configuration=configuration,
        last_webhook_at=last_webhook_at,
        pending_events=counts["pending"],
        failed_events=counts["failed"],
        exhausted_events=counts["exhausted"],
        last_run=last_run,
        worker_seen_at=seen,
        store_reachable=reachable,
        problems=problems,
    )


def _threshold(declaration: Setting[timedelta]) -> timedelta:
    """The setting's value, or its default while the value is refused (the configuration
    messages report it as ``biginterview.E013``): the status never fails over its own
    settings."""
    try:
        return declaration.value()
    except InvalidSetting:
        default: timedelta = declaration.default
        return default


def _event_counts(now: datetime, window: timedelta) -> dict[str, int]:
    Status = WebhookEvent.Status
    counts = {
        "pending": Count("pk", filter=Q(status=Status.PENDING)),
        "failed": Count("pk", filter=Q(status=Status.FAILED)),
    }
    if window:
        exhausted = Q(status=Status.FAILED, next_attempt_at__isnull=True)
        counts["exhausted"] = Count("pk", filter=exhausted & Q(received_at__gte=now - window))
    found = WebhookEvent.objects.filter(status__in=[Status.PENDING, Status.FAILED]).aggregate(
        **counts
    )
    return {"exhausted": 0, **found}


def _summary(run: SyncRun, now: datetime) -> RunSummary:
    return RunSummary(
        pk=run.pk,
        state=run.state,
        started_at=run.started_at,
        finished_at=run.finished_at,
        duration=(run.finished_at or now) - run.started_at,
        total=run.accounts_total,
        synced=run.accounts_synced,
        failed=run.accounts_failed,
        skipped=run.accounts_skipped,
        lost=run.accounts_lost,
        lost_reason=run.lost_reason,
        failures=tuple(
            (str(failure.get("partner_id") or "-"), str(failure.get("error", "")))
            for failure in run.failures[:FAILURES_SHOWN]
        ),
    )


def spoken(duration: timedelta) -> str:
    """``duration`` in words, to two units ("1 hour, 5 minutes"), with plain spaces (a
    monitor's log shows the messages as text)."""
    reference = datetime(2000, 1, 1, tzinfo=UTC)
    return timesince(reference - duration, reference).replace("\xa0", " ")


def _configuration_problems(configuration: tuple[ConfigurationMessage, ...]) -> list[Problem]:
    problems = []
    missing = sorted(
        {MISSING_KEY_CHECKS[m.id] for m in configuration if m.id in MISSING_KEY_CHECKS}
    )
    if missing:
        problems.append(
            Problem("keys_missing", f"Not configured: {', '.join(missing)} (see manage.py check).")
        )
    errors = [m.id for m in configuration if m.level == "error" and m.id not in MISSING_KEY_CHECKS]
    if errors:
        problems.append(
            Problem("configuration_error", f"manage.py check reports {', '.join(errors)}.")
        )
    return problems


def _worker_problems(now: datetime, seen: datetime | None, reachable: bool) -> list[Problem]:
    if not reachable:
        return [
            Problem(
                "store_unreachable",
                "The coordination store (REDIS_URL, else the cache) cannot be read: the "
                "worker's last sign of life is unknown, and locks and rate limits fall back.",
            )
        ]
    silent_after = _threshold(AppSettings.HEALTH_WORKER_SILENT_AFTER)
    if not silent_after or (seen is not None and now - seen <= silent_after):
        return []
    if seen is None:
        since = f"in the last {spoken(WORKER_NOTE_KEPT)}"
    else:
        since = f"for {spoken(now - seen)}"
    return [
        Problem(
            "worker_silent",
            f"No worker has run the webhook sweep {since} (the limit is "
            f"{spoken(silent_after)}): check the Celery worker and beat, the sweep in the "
            "beat schedule, and that the worker shares REDIS_URL with this site.",
        )
    ]


def _event_problems(exhausted: int, window: timedelta) -> list[Problem]:
    if not exhausted:
        return []
    return [
        Problem(
            "events_failed",
            f"{exhausted} webhook event(s) received in the last {spoken(window)} failed "
            "with no retry left: read their last error, fix the cause and process them "
            "again.",
        )
    ]


def _sync_problems(now: datetime, run: RunSummary | None) -> list[Problem]:
    if run is not None and run.state == "lost":
        return [
            Problem(
                "sync_lost",
                f"The last sync run (#{run.pk}) was closed as lost: {run.lost} account(s) "
                "were never reported (a worker was lost with its tasks).",
            )
        ]
    max_age = _threshold(AppSettings.HEALTH_SYNC_MAX_AGE)
    if not max_age or (run is not None and run.state == "running"):
        return []
    if run is None:
        return [
            Problem(
                "sync_stale",
                "No sync run has ever started: schedule biginterview.sync_all_accounts "
                "in beat, or start one from the sync runs page.",
            )
        ]
    age = now - run.started_at
    if age <= max_age:
        return []
    return [
        Problem(
            "sync_stale",
            f"The last sync run started {spoken(age)} ago (the limit is {spoken(max_age)}): "
            "check biginterview.sync_all_accounts in the beat schedule.",
        )
    ]


# --- "Sync all" lease --------------------------------------------------------------------


def run_holding_lease() -> SyncRun | None:
    """The unfinished run that holds the "sync all" lease (a new run would do nothing
    meanwhile), or ``None``. Raises what the store raises when it is down."""
    holder = coordination.lock_holder(sync_runs.LEASE)
    if holder is None:
        return None
    for run in SyncRun.objects.filter(finished_at__isnull=True).order_by("-started_at", "-pk"):
        if sync_runs.lease_token(run.pk) == holder:
            return run
    return None


# --- Connection test ---------------------------------------------------------------------


class Outcome(StrEnum):
    ACCEPTED = "accepted"
    REFUSED = "refused"
    UNREACHABLE = "unreachable"
    FAILED = "failed"
    NOT_CONFIGURED = "not_configured"


@dataclass(frozen=True)
class ConnectionCheck:
    """What the connection test found. ``detail`` is safe to show: no exception of this
    package carries the key, and the key is never put into it."""

    outcome: Outcome
    detail: str
    seconds: float


def check_connection(client: BigInterviewClient | None = None) -> ConnectionCheck:
    """Ask Big Interview for the tracks of :data:`PROBE_PARTNER_ID` with the configured
    key: its documented 404 (or a 200) means the key was accepted, 401 that it was
    refused, no answer that the service is unreachable.

    By default through the practice click's client (``sso.sso_client``): at most one
    retry, within ``SSO_TIME_BUDGET``, on the interactive share of ``RATE_LIMIT``.
    """
    started = time.monotonic()

    def found(outcome: Outcome, detail: str) -> ConnectionCheck:
        return ConnectionCheck(outcome, detail, time.monotonic() - started)

    try:
        client = client or sso.sso_client()
        budget = app_settings.SSO_TIME_BUDGET
    except (ImproperlyConfigured, ValueError) as exc:  # a setting missing or refused
        return found(Outcome.NOT_CONFIGURED, f"Not configured: {exc}")
    try:
        with client.deadline(budget):
            client.list_tracks(PROBE_PARTNER_ID)
    except NotFound as exc:
        if exc.error_type is None:
            return found(
                Outcome.FAILED,
                f"{client.base_url} answered 404 without Big Interview's error body: is "
                "BASE_URL your organisation's origin?",
            )
        return found(Outcome.ACCEPTED, "Big Interview accepted the API key.")
    except AuthenticationError:
        return found(Outcome.REFUSED, "Big Interview refused the API key (HTTP 401).")
    except TransportError as exc:
        return found(Outcome.UNREACHABLE, f"Big Interview could not be reached: {exc}.")
    except LimitReached:
        return found(
            Outcome.FAILED,
            "This site's share of RATE_LIMIT for interactive calls is used up right now.",
        )
    except APIError as exc:
        return found(Outcome.FAILED, f"Big Interview answered with an error: {exc}.")
    return found(Outcome.ACCEPTED, "Big Interview accepted the API key.")
