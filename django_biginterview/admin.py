"""Admin for the mirrored data: read-only, since it reflects Big Interview.

No SSO token or key is ever shown.
"""

from __future__ import annotations

import json
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.db.models import Count, Prefetch, Q, QuerySet
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from . import tasks, webhooks
from .models import Account, Interview, SyncRun, Track, TrackStep, WebhookEvent


class ReadOnlyMixin:
    """No adding, changing or deleting: the admin shows Big Interview, it does not edit
    it (a deleted interview row would let a late webhook bring the interview back)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    def has_model_change_permission(self, request: HttpRequest) -> bool:
        """The model's change permission, which the actions that write (sync, replay)
        require although no form may change a row."""
        opts = self.opts
        return request.user.has_perm(f"{opts.app_label}.change_{opts.model_name}")


def pretty_json(value: Any) -> SafeString:
    """A JSON document indented in a ``<pre>``, escaped (it comes from outside)."""
    return format_html("<pre>{}</pre>", json.dumps(value, indent=2, ensure_ascii=False))


# --- Accounts, tracks, interviews, sync runs (sync) -----------------------------------


def progress_bar(track: Track) -> SafeString:
    """One track's progress as an HTML ``<progress>`` bar, its title escaped."""
    return format_html(
        '<span class="bi-track" title="{title}">{title} '
        '<progress max="100" value="{pct}">{pct}%</progress> {pct}%</span>',
        title=track.title,
        pct=track.percent,
    )


def account_link(account: Account) -> SafeString:
    url = reverse("admin:biginterview_account_change", args=[account.pk])
    return format_html('<a href="{}">{}</a>', url, account.partner_id)


class DateIsSetFilter(admin.SimpleListFilter):
    """Yes/no on whether the date field ``date_field`` is set (e.g. ``deleted_at``)."""

    date_field = ""

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("yes", _("Yes")), ("no", _("No"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() in ("yes", "no"):
            return queryset.filter(**{f"{self.date_field}__isnull": self.value() == "no"})
        return queryset


class MissingRemotelyFilter(DateIsSetFilter):
    title = _("missing on Big Interview")
    parameter_name = "missing"
    date_field = "remote_missing_at"


class SyncErrorFilter(admin.SimpleListFilter):
    title = _("last sync")
    parameter_name = "sync"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, Any]]:
        return [("failed", _("Failed")), ("ok", _("Succeeded")), ("never", _("Never synced"))]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Account]) -> QuerySet[Account]:
        if self.value() == "failed":
            return queryset.exclude(last_sync_error="")
        if self.value() == "ok":
            return queryset.filter(last_sync_error="", last_synced_at__isnull=False)
        if self.value() == "never":
            return queryset.filter(last_synced_at__isnull=True)
        return queryset


class DeletedFilter(DateIsSetFilter):
    title = _("deleted on Big Interview")
    parameter_name = "deleted"
    date_field = "deleted_at"


class TrackInline(ReadOnlyMixin, admin.TabularInline):
    """The account's tracks, each with a read-only summary of its steps."""

    model = Track
    fields = ("title", "progress_bar", "steps_summary", "updated_at")
    readonly_fields = fields
    extra = 0
    show_change_link = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Track]:
        return super().get_queryset(request).prefetch_related("steps")

    @admin.display(description=_("progress"))
    def progress_bar(self, obj: Track) -> SafeString:
        return progress_bar(obj)

    @admin.display(description=_("steps"))
    def steps_summary(self, obj: Track) -> SafeString:
        return format_html(
            "<ol>{}</ol>",
            format_html_join(
                "",
                '<li value="{}">{} {}</li>',
                ((s.step, "\u2713" if s.completed else "\u2022", s.title) for s in obj.steps.all()),
            ),
        )


class RecentInterviewsFormSet(BaseInlineFormSet):
    """Only the newest interviews: an account may have hundreds."""

    def get_queryset(self) -> QuerySet[Interview]:
        if not hasattr(self, "_recent"):
            self._recent = super().get_queryset()[:RECENT_INTERVIEWS]
        return self._recent


RECENT_INTERVIEWS = 10


class RecentInterviewInline(ReadOnlyMixin, admin.TabularInline):
    model = Interview
    formset = RecentInterviewsFormSet
    verbose_name_plural = _("recent interviews")
    fields = ("title", "category", "completed", "remote_updated_at", "deleted_at")
    readonly_fields = fields
    ordering = ("-remote_updated_at", "-pk")
    extra = 0
    show_change_link = True


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    """Accounts with their track progress, interview count and sync state. The SSO token
    is never shown. "Sync now" enqueues the same task the webhook follow-up uses."""

    list_display = (
        "partner_id",
        "user",
        "anonymous",
        "track_progress",
        "interview_count",
        "last_synced_at",
        "last_sync_error",
        "missing_remotely",
    )
    list_select_related = ("user",)
    list_filter = ("anonymous", MissingRemotelyFilter, SyncErrorFilter, "last_synced_at")
    fields = (
        "partner_id",
        "user",
        "anonymous",
        "remote_created_at",
        "remote_missing_at",
        "last_synced_at",
        "last_sync_error",
        "last_sync_error_at",
        "sso_token_expires_at",
        "created_at",
    )
    readonly_fields = ("sso_token_expires_at", "created_at")
    inlines = (TrackInline, RecentInterviewInline)
    actions = ["sync_now"]
    ordering = ("-created_at", "-pk")

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        user_model = get_user_model()
        names = {user_model.USERNAME_FIELD, user_model.get_email_field_name()}
        user_fields = {f.name for f in user_model._meta.get_fields()}
        return ("=partner_id", *(f"user__{n}" for n in sorted(names) if n in user_fields))

    def get_queryset(self, request: HttpRequest) -> QuerySet[Account]:
        live = Q(interviews__deleted_at__isnull=True)
        return (
            super()
            .get_queryset(request)
            .annotate(interview_count=Count("interviews", filter=live))
            .prefetch_related(Prefetch("tracks", queryset=Track.objects.order_by("position")))
        )

    @admin.display(description=_("tracks"))
    def track_progress(self, obj: Account) -> SafeString:
        return format_html_join(
            mark_safe("<br>"), "{}", ((progress_bar(t),) for t in obj.tracks.all())
        )

    @admin.display(description=_("interviews"), ordering="interview_count")
    def interview_count(self, obj: Account) -> int:
        return getattr(obj, "interview_count", 0)

    @admin.display(description=_("missing remotely"), boolean=True, ordering="remote_missing_at")
    def missing_remotely(self, obj: Account) -> bool:
        return obj.remote_missing_at is not None

    def has_sync_permission(self, request: HttpRequest) -> bool:
        """Syncing spends API calls: it takes the account's change permission."""
        return self.has_model_change_permission(request)

    @admin.action(description=_("Sync now from Big Interview"), permissions=["sync"])
    def sync_now(self, request: HttpRequest, queryset: QuerySet[Account]) -> None:
        ids = list(queryset.values_list("pk", flat=True))
        for account_id in ids:
            tasks.schedule_account_sync(account_id)
        self.message_user(
            request,
            ngettext(
                "Sync of %(count)d account scheduled.",
                "Sync of %(count)d accounts scheduled.",
                len(ids),
            )
            % {"count": len(ids)},
            messages.SUCCESS,
        )


class TrackStepInline(ReadOnlyMixin, admin.TabularInline):
    model = TrackStep
    fields = ("step", "title", "link", "completed")
    readonly_fields = fields
    extra = 0


@admin.register(Track)
class TrackAdmin(ReadOnlyAdmin):
    list_display = ("title", "account_link", "progress_bar", "updated_at")
    list_select_related = ("account",)
    list_filter = ("title",)
    search_fields = ("=account__partner_id", "title")
    inlines = (TrackStepInline,)

    @admin.display(description=_("account"), ordering="account__partner_id")
    def account_link(self, obj: Track) -> SafeString:
        return account_link(obj.account)

    @admin.display(description=_("progress"), ordering="progress")
    def progress_bar(self, obj: Track) -> SafeString:
        return progress_bar(obj)


@admin.register(Interview)
class InterviewAdmin(ReadOnlyAdmin):
    list_display = (
        "__str__",
        "account_link",
        "category",
        "completed",
        "is_deleted",
        "remote_updated_at",
    )
    list_select_related = ("account",)
    list_filter = ("completed", DeletedFilter, "category")
    search_fields = ("title", "=account__partner_id", "=remote_id")
    date_hierarchy = "remote_updated_at"
    ordering = ("-remote_updated_at", "-pk")
    fields = (
        "account",
        "remote_id",
        "title",
        "interviewer_name",
        "category",
        "completed",
        "remote_created_at",
        "remote_updated_at",
        "review_path",
        "retake_path",
        "deleted_at",
        "deletion_source",
        "updated_at",
        "raw_pretty",
    )
    readonly_fields = ("raw_pretty",)

    @admin.display(description=_("account"), ordering="account__partner_id")
    def account_link(self, obj: Interview) -> SafeString:
        return account_link(obj.account)

    @admin.display(description=_("deleted"), boolean=True, ordering="deleted_at")
    def is_deleted(self, obj: Interview) -> bool:
        return obj.deleted_at is not None

    @admin.display(description=_("API object"))
    def raw_pretty(self, obj: Interview) -> SafeString:
        return pretty_json(obj.raw)


@admin.register(SyncRun)
class SyncRunAdmin(ReadOnlyAdmin):
    list_display = (
        "started_at",
        "finished_at",
        "duration_display",
        "accounts_total",
        "accounts_synced",
        "accounts_failed",
        "accounts_skipped",
        "failures_summary",
    )
    date_hierarchy = "started_at"
    fields = (
        "started_at",
        "finished_at",
        "duration_display",
        "accounts_total",
        "accounts_synced",
        "accounts_failed",
        "accounts_skipped",
        "failures_table",
    )
    readonly_fields = ("duration_display", "failures_table")

    @admin.display(description=_("duration"))
    def duration_display(self, obj: SyncRun) -> str:
        duration = obj.duration
        if duration is None:
            return gettext("running")
        return f"{duration.total_seconds():.1f} s"

    @admin.display(description=_("failures"))
    def failures_summary(self, obj: SyncRun) -> str:
        reasons = [f"{f.get('partner_id') or '-'}: {f.get('error')}" for f in obj.failures[:3]]
        more = len(obj.failures) - len(reasons)
        return "; ".join(reasons) + (f" (+{more})" if more > 0 else "")

    @admin.display(description=_("failures"))
    def failures_table(self, obj: SyncRun) -> SafeString:
        if not obj.failures:
            return format_html("{}", "-")
        return format_html(
            "<table><tr><th>{}</th><th>{}</th></tr>{}</table>",
            gettext("partner id"),
            gettext("reason"),
            format_html_join(
                "",
                "<tr><td>{}</td><td>{}</td></tr>",
                ((f.get("partner_id") or "-", f.get("error", "")) for f in obj.failures),
            ),
        )


# --- Webhook events (webhooks) --------------------------------------------------------


@admin.register(WebhookEvent)
class WebhookEventAdmin(ReadOnlyAdmin):
    """Every delivery as received, its status and its last error; "process again" replays
    the selected events now (for ``failed`` ones past their last automatic retry, or
    ``ignored`` ones whose account exists by now). Events are never edited or deleted here:
    the purge task applies the retention."""

    list_display = (
        "remote_id",
        "event_name",
        "partner_id",
        "status",
        "attempts",
        "received_at",
        "processed_at",
    )
    list_filter = ("status", "event_name", "received_at")
    date_hierarchy = "received_at"
    search_fields = ("=partner_id", "=remote_id")
    ordering = ("-received_at", "-pk")
    fields = (
        "remote_id",
        "event_name",
        "partner_id",
        "api_type",
        "api_id",
        "status",
        "reason",
        "attempts",
        "last_error",
        "next_attempt_at",
        "received_at",
        "processed_at",
        "payload_pretty",
    )
    readonly_fields = ("payload_pretty",)
    actions = ["process_again"]

    def has_process_permission(self, request: HttpRequest) -> bool:
        """Replaying changes mirrored data: it takes the model's change permission."""
        return self.has_model_change_permission(request)

    @admin.display(description=_("payload"))
    def payload_pretty(self, obj: WebhookEvent) -> SafeString:
        return pretty_json(obj.payload)

    @admin.action(description=_("Process again"), permissions=["process"])
    def process_again(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        summary = webhooks.replay_events(queryset)
        tasks.schedule_syncs_after_webhooks(summary.sync_account_ids)
        if summary.failures:
            errors = "; ".join(f"#{o.event_id}: {o.reason}" for o in summary.failures[:5])
            self.message_user(request, f"{summary}. Failed: {errors}", messages.WARNING)
        else:
            self.message_user(request, str(summary), messages.SUCCESS)
