"""Local state: who is who on Big Interview, what it last told us, and what it sent us.

Models hold state and its invariants (database constraints); they never call the API.
Mirrored tables (``Track``, ``TrackStep``, ``Interview``) are written only by ``mirror.py``.

The QuerySets name the reads that several places share (the admin, the API, the template
tags, the webhook sweeper), so each is written once: which interviews count as live, how
tracks and steps are prefetched in order, which events are due or may be purged. What to
do with the rows (locking, leasing, batching) stays with the caller.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any, Self

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Count, Prefetch, Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .api_types import Secret
from .validators import PARTNER_ID_PATTERN


class SecretCharField(models.CharField):
    """A ``CharField`` whose values come back from the database as
    :class:`~django_biginterview.client.Secret`, so a row just fetched shows its token
    masked in a traceback's locals, on the debug page and in Sentry, like a token the
    client returned."""

    def from_db_value(self, value: str | None, expression: Any, connection: Any) -> str | None:
        return None if value is None else Secret(value)


partner_id_validator = RegexValidator(
    PARTNER_ID_PATTERN,
    message=_("Use 1 to 64 characters from 0-9, a-z, A-Z, '-' and '_'."),
)


class AccountQuerySet(models.QuerySet["Account"]):
    """Accounts with their tracks prefetched in order, as the admin and the API list them."""

    def with_tracks(self) -> Self:
        """Each account's tracks, in their order on Big Interview: one query for them all."""
        return self.prefetch_related(Prefetch("tracks", queryset=Track.objects.in_order()))

    def with_tracks_and_steps(self) -> Self:
        """Each account's tracks in order, each with its steps in order: two queries."""
        tracks = Track.objects.in_order().with_steps()
        return self.prefetch_related(Prefetch("tracks", queryset=tracks))


_AccountManagerBase = models.Manager.from_queryset(AccountQuerySet)


class AccountManager(_AccountManagerBase):
    """``Account.objects``: the QuerySet's methods, and counts for a fetched page."""

    def with_interview_counts(self, accounts: Iterable[Account]) -> list[Account]:
        """``accounts`` (a page already fetched), each given ``interview_count``: its live
        interviews, counted in one query over their ids.

        An annotation on the listing's queryset would count the interviews of every
        account before the page is cut, and again for the paginator's count.
        """
        page = list(accounts)
        counts = dict(
            Interview.objects.live()
            .filter(account__in=page)
            .order_by()
            .values_list("account")
            .annotate(Count("pk"))
        )
        for account in page:
            account.interview_count = counts.get(account.pk, 0)  # type: ignore[attr-defined]
        return page


class Account(models.Model):
    """The Big Interview account of one local user (or of one anonymous visitor).

    ``sso_token`` is a secret: it never appears in ``str``/``repr``, the admin or the API.
    """

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="biginterview_account",
        verbose_name=_("user"),
    )
    partner_id = models.CharField(
        _("partner id"), max_length=64, unique=True, validators=[partner_id_validator]
    )
    anonymous = models.BooleanField(_("anonymous"), default=False)
    sso_token = SecretCharField(_("SSO token"), max_length=255, blank=True, editable=False)
    sso_token_expires_at = models.DateTimeField(
        _("SSO token expires at"), null=True, blank=True, editable=False
    )
    remote_created_at = models.DateTimeField(_("created on Big Interview"), null=True, blank=True)
    remote_missing_at = models.DateTimeField(
        _("missing on Big Interview since"),
        null=True,
        blank=True,
        help_text=_("Set when Big Interview answered 404 for this user."),
    )
    last_synced_at = models.DateTimeField(_("last synced at"), null=True, blank=True)
    last_sync_error = models.TextField(_("last sync error"), blank=True)
    last_sync_error_at = models.DateTimeField(_("last sync error at"), null=True, blank=True)
    created_at = models.DateTimeField(_("created at"), default=timezone.now, editable=False)

    objects = AccountManager()

    class Meta:
        verbose_name = _("Big Interview account")
        verbose_name_plural = _("Big Interview accounts")
        ordering = ["-created_at", "-pk"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(partner_id=""), name="biginterview_account_partner_id_not_empty"
            ),
            models.CheckConstraint(
                condition=Q(anonymous=True) | Q(user__isnull=False),
                name="biginterview_account_regular_has_user",
            ),
        ]
        # partner_id has no text-pattern ("_like") index on PostgreSQL, although
        # unique=True asks for one: no lookup uses it, and migration 0004 drops it.
        indexes = [
            models.Index(fields=["last_synced_at"], name="biginterview_acct_synced_idx"),
            # The default ordering, which the admin and the API list by.
            models.Index(fields=["-created_at", "-id"], name="biginterview_acct_created_idx"),
        ]

    def __str__(self) -> str:
        return self.partner_id

    def __repr__(self) -> str:
        return f"<Account pk={self.pk} partner_id={self.partner_id!r}>"

    def has_fresh_token(self, margin: timedelta, now: datetime | None = None) -> bool:
        """Whether the cached SSO token stays valid for longer than ``margin``.

        Never while the user is known to be missing remotely (a sync got a 404): their
        token died with them, and the next practice click must recreate them.
        """
        if not self.sso_token or self.sso_token_expires_at is None:
            return False
        if self.remote_missing_at is not None:
            return False
        return self.sso_token_expires_at - margin > (now or timezone.now())


class TrackQuerySet(models.QuerySet["Track"]):
    """Tracks in order, with their steps in order.

    Both order by their own column only: the models' default orderings start with the
    foreign key, which sorts by the parent's ordering and so joins the parent tables.
    """

    def in_order(self) -> Self:
        """By position, as Big Interview lists an account's tracks."""
        return self.order_by("position")

    def with_steps(self) -> Self:
        """Each track's steps prefetched by step number: one query for all the tracks."""
        steps = TrackStep.objects.order_by("step")
        return self.prefetch_related(Prefetch("steps", queryset=steps))


class Track(models.Model):
    """One guided learning track of an account, as Big Interview last reported it."""

    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="tracks", verbose_name=_("account")
    )
    title = models.CharField(_("title"), max_length=255)
    progress = models.DecimalField(_("progress"), max_digits=5, decimal_places=4)
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    updated_at = models.DateTimeField(_("updated at"), default=timezone.now)

    objects = TrackQuerySet.as_manager()

    class Meta:
        verbose_name = _("track")
        verbose_name_plural = _("tracks")
        ordering = ["account", "position"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "title"], name="biginterview_track_unique_title"
            ),
            models.CheckConstraint(
                condition=Q(progress__gte=0) & Q(progress__lte=1),
                name="biginterview_track_progress_range",
            ),
        ]

    def __str__(self) -> str:
        return self.title

    @property
    def percent(self) -> int:
        return round(self.progress * 100)


class TrackStep(models.Model):
    """One step of a track; ``link`` is a Big Interview path usable as SSO ``redirect_to``."""

    track = models.ForeignKey(
        Track, on_delete=models.CASCADE, related_name="steps", verbose_name=_("track")
    )
    step = models.PositiveIntegerField(_("step"))
    title = models.CharField(_("title"), max_length=255)
    link = models.CharField(_("link"), max_length=500, blank=True)
    completed = models.BooleanField(_("completed"), default=False)

    class Meta:
        verbose_name = _("track step")
        verbose_name_plural = _("track steps")
        ordering = ["track", "step"]
        constraints = [
            models.UniqueConstraint(fields=["track", "step"], name="biginterview_step_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.step}. {self.title}"


class InterviewQuerySet(models.QuerySet["Interview"]):
    """The interviews people are shown: live ones, most recently updated first."""

    def live(self) -> Self:
        """Not deleted: what users see and what the interview counts count."""
        return self.filter(deleted_at__isnull=True)

    def newest_first(self) -> Self:
        """Most recently updated on Big Interview first (an index serves it)."""
        return self.order_by("-remote_updated_at", "-pk")


class Interview(models.Model):
    """A mock interview of an account. ``raw`` keeps the API object as last received.

    ``deleted_at`` is sticky once Big Interview said the interview is gone (a webhook): no
    later, or late and older, update brings it back. A deletion the sync only inferred
    (the interview was missing from a listing) is undone by a later listing that shows it
    again; ``deletion_source`` tells the two apart.
    """

    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="interviews", verbose_name=_("account")
    )
    remote_id = models.BigIntegerField(_("Big Interview id"))
    title = models.CharField(_("title"), max_length=255, blank=True)
    interviewer_name = models.CharField(_("interviewer"), max_length=255, blank=True)
    category = models.CharField(_("category"), max_length=255, blank=True)
    completed = models.BooleanField(_("completed"), default=False)
    remote_created_at = models.DateTimeField(_("created on Big Interview"), null=True, blank=True)
    remote_updated_at = models.DateTimeField(_("updated on Big Interview"), null=True, blank=True)
    review_path = models.CharField(_("review link"), max_length=500, blank=True)
    retake_path = models.CharField(_("retake link"), max_length=500, blank=True)
    deleted_at = models.DateTimeField(_("deleted at"), null=True, blank=True)
    deletion_source = models.CharField(
        _("deleted by"),
        max_length=10,
        blank=True,
        default="",
        choices=[("webhook", _("webhook")), ("sync", _("sync (missing from a listing)"))],
    )
    raw = models.JSONField(_("API object"), default=dict, blank=True)
    updated_at = models.DateTimeField(_("updated locally at"), default=timezone.now)

    objects = InterviewQuerySet.as_manager()

    class Meta:
        verbose_name = _("interview")
        verbose_name_plural = _("interviews")
        ordering = ["-remote_updated_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "remote_id"], name="biginterview_interview_unique_remote"
            ),
        ]
        # ``account`` has no index of its own although its ForeignKey asks for one: the
        # unique constraint above and the "recent" index start with it and serve its
        # lookups, and migration 0004 drops it.
        indexes = [
            models.Index(
                fields=["account", "-remote_updated_at"], name="biginterview_intv_recent_idx"
            ),
            # The default ordering, which the admin and the API list by.
            models.Index(
                fields=["-remote_updated_at", "-id"], name="biginterview_intv_updated_idx"
            ),
            # Big Interview's ids are unique across accounts: the admin searches by them.
            models.Index(fields=["remote_id"], name="biginterview_intv_remote_idx"),
            # The admin's category filter: its choices and its pages, in the ordering.
            models.Index(
                fields=["category", "-remote_updated_at", "-id"],
                name="biginterview_intv_category_idx",
            ),
            # The admin's "deleted" filter: a few percent of the rows, in the ordering.
            models.Index(
                fields=["-remote_updated_at", "-id"],
                condition=Q(deleted_at__isnull=False),
                name="biginterview_intv_deleted_idx",
            ),
        ]

    def __str__(self) -> str:
        return self.title or f"Interview {self.remote_id}"

    @property
    def is_deleted(self) -> bool:
        return self.deleted_at is not None


#: The events the sweeper can ever pick: ``pending``, and ``failed`` with a retry planned
#: (an exhausted event has no ``next_attempt_at``). A partial index covers exactly these,
#: so a sweep with nothing due reads a handful of index entries, not the table.
SWEEPABLE = Q(status="pending") | Q(status="failed", next_attempt_at__isnull=False)


class WebhookEventQuerySet(models.QuerySet["WebhookEvent"]):
    """The webhook sweeper's and the purge's selections. The caller passes the policy (how
    long to wait, how many attempts, how long to keep), read from its settings, and does
    the locking and leasing (``webhook_processing``)."""

    def due(self, now: datetime, *, stuck_after: timedelta, max_attempts: int) -> Self:
        """Events to (re)enqueue at ``now``.

        ``pending`` for longer than ``stuck_after`` (the task was never sent, e.g. the
        broker was down, or got lost), and ``failed`` ones with fewer than
        ``max_attempts`` attempts; neither while ``next_attempt_at`` (a backoff or a
        sweep's lease) is still ahead. Past ``max_attempts`` an event stays ``failed``
        for a person to look at.
        """
        Status = WebhookEvent.Status
        not_before = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
        stuck = Q(status=Status.PENDING, received_at__lte=now - stuck_after)
        retry = Q(status=Status.FAILED, attempts__lt=max_attempts)
        return self.filter(SWEEPABLE).filter((stuck | retry) & not_before)

    def purgeable(self, *, done_before: datetime, failed_before: datetime) -> Self:
        """Events kept long enough: ``processed`` and ``ignored`` ones received before
        ``done_before``, and ``failed`` ones with no retry planned received before
        ``failed_before``. Pending events and failed ones still to be retried never are."""
        Status = WebhookEvent.Status
        return self.filter(
            Q(status__in=[Status.PROCESSED, Status.IGNORED], received_at__lt=done_before)
            | Q(status=Status.FAILED, next_attempt_at__isnull=True, received_at__lt=failed_before)
        )


class WebhookEvent(models.Model):
    """One notification from Big Interview, stored before any work happens.

    ``remote_id`` (the notification ``id``) is unique: a retried delivery finds the row
    already there. ``status`` moves from ``pending`` to ``processed`` only once processing
    committed; a failure keeps ``last_error`` for the sweeper, the admin and the command.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("pending")
        PROCESSED = "processed", _("processed")
        FAILED = "failed", _("failed")
        IGNORED = "ignored", _("ignored")

    remote_id = models.CharField(_("notification id"), max_length=255)
    event_name = models.CharField(_("event"), max_length=100)
    partner_id = models.CharField(_("partner id"), max_length=64)
    api_type = models.CharField(_("API type"), max_length=100, blank=True)
    api_id = models.CharField(_("API id"), max_length=100, blank=True)
    payload = models.JSONField(_("payload"))
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.PENDING
    )
    reason = models.CharField(
        _("reason"), max_length=255, blank=True, help_text=_("Why the event was ignored.")
    )
    attempts = models.PositiveIntegerField(_("attempts"), default=0)
    last_error = models.TextField(_("last error"), blank=True)
    next_attempt_at = models.DateTimeField(_("next attempt at"), null=True, blank=True)
    received_at = models.DateTimeField(_("received at"), default=timezone.now, db_index=True)
    processed_at = models.DateTimeField(_("processed at"), null=True, blank=True)

    objects = WebhookEventQuerySet.as_manager()

    class Meta:
        verbose_name = _("webhook event")
        verbose_name_plural = _("webhook events")
        ordering = ["-received_at", "-pk"]
        # Declared here rather than with unique=True/db_index=True: on PostgreSQL those
        # also add a text-pattern ("_like") index per column, which every insert pays for
        # and no lookup here uses.
        constraints = [
            models.UniqueConstraint(fields=["remote_id"], name="biginterview_wh_unique_remote_id"),
        ]
        indexes = [
            models.Index(fields=["status", "received_at"], name="biginterview_wh_status_idx"),
            models.Index(fields=["partner_id"], name="biginterview_wh_partner_idx"),
            # Only the rows the sweeper may pick: a sweep with nothing due reads a few
            # index entries, however many events are kept.
            models.Index(
                fields=["received_at"], condition=SWEEPABLE, name="biginterview_wh_sweep_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_name} {self.remote_id}"


class SyncRun(models.Model):
    """Summary of one "sync all" run: counts, failures with reasons, duration."""

    started_at = models.DateTimeField(_("started at"), default=timezone.now, db_index=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    accounts_synced = models.PositiveIntegerField(_("synced"), default=0)
    accounts_failed = models.PositiveIntegerField(_("failed"), default=0)
    accounts_skipped = models.PositiveIntegerField(_("skipped"), default=0)
    accounts_total = models.PositiveIntegerField(
        _("total"),
        null=True,
        blank=True,
        help_text=_("Accounts in the run; empty while the run is still fanning out."),
    )
    failures = models.JSONField(
        _("failures"), default=list, blank=True, help_text=_("partner_id and reason per failure.")
    )
    accounts_lost = models.PositiveIntegerField(
        _("lost"),
        default=0,
        help_text=_(
            "Accounts no worker reported before the run was closed as lost; "
            "the next run syncs them."
        ),
    )
    lost_reason = models.TextField(
        _("closed as lost because"),
        blank=True,
        help_text=_("Empty for a run that finished with every account reported."),
    )

    class Meta:
        verbose_name = _("sync run")
        verbose_name_plural = _("sync runs")
        ordering = ["-started_at", "-pk"]

    def __str__(self) -> str:
        return f"Sync run {self.started_at:%Y-%m-%d %H:%M}"

    @property
    def duration(self) -> timedelta | None:
        if self.finished_at is None:
            return None
        return self.finished_at - self.started_at

    @property
    def state(self) -> str:
        """``running``, ``finished``, or ``lost`` (closed without every account's report)."""
        if self.finished_at is None:
            return "running"
        return "lost" if self.lost_reason else "finished"


class SyncRunOutcome(models.Model):
    """One account's outcome in one run: the run's books count each account once, however
    often a redelivered or retried task reports it.

    ``account_id`` is a plain number, not a foreign key: an account deleted during the run
    still has its outcome. Rows of finished runs are deleted after a day.
    """

    class Outcome(models.TextChoices):
        SYNCED = "synced", _("synced")
        FAILED = "failed", _("failed")
        SKIPPED = "skipped", _("skipped")

    # No index of its own: the unique constraint's index starts with ``run``.
    run = models.ForeignKey(
        SyncRun,
        on_delete=models.CASCADE,
        related_name="outcomes",
        verbose_name=_("run"),
        db_index=False,
    )
    account_id = models.BigIntegerField(_("account id"))
    outcome = models.CharField(_("outcome"), max_length=16, choices=Outcome.choices)

    class Meta:
        verbose_name = _("sync run outcome")
        verbose_name_plural = _("sync run outcomes")
        constraints = [
            models.UniqueConstraint(
                fields=["run", "account_id"], name="biginterview_outcome_once_per_run"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}: {self.outcome}"
