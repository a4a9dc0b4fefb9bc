"""Admin for the mirrored data: read-only, since it reflects Big Interview.

No SSO token or key is ever shown.
"""

from __future__ import annotations

import calendar
import json
import logging
from collections.abc import Callable
from datetime import date, datetime
from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.admin.filters import DateFieldListFilter, FieldListFilter, ListFilter
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.admin.views.main import ChangeList
from django.contrib.auth import get_user_model
from django.core.exceptions import ImproperlyConfigured, PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db import connections, router
from django.db.models import Field, Max, Min, Q, QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.forms.models import BaseInlineFormSet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.functional import cached_property
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import capfirst
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from . import status, tasks, webhook_processing
from .models import (
    Account,
    AccountQuerySet,
    Interview,
    SyncRun,
    Track,
    TrackQuerySet,
    TrackStep,
    WebhookEvent,
)
from .webhooks import KNOWN_EVENTS

logger = logging.getLogger(__name__)


class ReadOnlyMixin:
    """No adding, changing or deleting: the admin shows Big Interview, it does not edit
    it (a deleted interview row would let a late webhook bring the interview back)."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


#: A changelist of more rows than this, on PostgreSQL, shows the planner's estimate of
#: its size instead of counting it (``EstimatedCountPaginator``).
EXACT_COUNT_UP_TO = 10_000


class EstimatedCountPaginator(Paginator):
    """Counts up to ``EXACT_COUNT_UP_TO`` rows; past that, on PostgreSQL, takes the
    planner's estimate of the rows (``EXPLAIN``, from the statistics ANALYZE keeps).

    ``COUNT(*)`` reads every row it counts: on a million-row table, an unfiltered list
    or a filter that keeps most rows costs more to count than to show. Here the count
    stops after ``EXACT_COUNT_UP_TO + 1`` rows (a LIMIT ends the scan), so searches and
    narrow filters still get their exact count; a bigger list gets the estimate, never
    less than the rows already seen, and ``estimated`` tells the page to say so. Other
    databases count exactly. An estimate can be off, so the last page link may lead
    past the end (the admin then redirects to the unfiltered first page): old rows are
    reached through filters and date links, not page numbers.
    """

    estimated = False

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if not isinstance(queryset, QuerySet) or connections[queryset.db].vendor != "postgresql":
            return int(super().count)
        seen = queryset.order_by()[: EXACT_COUNT_UP_TO + 1].count()
        if seen <= EXACT_COUNT_UP_TO:
            return seen
        self.estimated = True
        return max(planned_rows(queryset), seen)


def planned_rows(queryset: QuerySet[Any]) -> int:
    """How many rows PostgreSQL's planner expects ``queryset`` to return."""
    sql, params = queryset.order_by().query.sql_with_params()
    with connections[queryset.db].cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        explained = cursor.fetchone()[0]
    plan = json.loads(explained) if isinstance(explained, str) else explained
    return int(plan[0]["Plan"]["Plan Rows"])


def as_date(value: date | datetime | None) -> date | None:
    """The (local) calendar day of a date or datetime."""
    if isinstance(value, datetime):
        return (timezone.localtime(value) if timezone.is_aware(value) else value).date()
    return value


class AppChangeList(ChangeList):
    """Django's changelist, with date-hierarchy links that never read the table.

    Django draws the year, month and day links from a ``DISTINCT`` over every filtered
    row, after a MIN/MAX that, with a selective search, walks the date index end to end.
    Here they are the calendar between the oldest and newest value of the admin's whole
    queryset (two index lookups): a period without rows keeps its link, which then shows
    an empty list. ``admin/biginterview/change_list.html`` renders them with Django's
    ``date_hierarchy.html``; the filtering itself is Django's (a bounded range).
    """

    @cached_property
    def date_navigation(self) -> dict[str, Any]:
        name = self.date_hierarchy
        field = get_fields_from_path(self.model, name)[-1]
        bounds = self.root_queryset.order_by().aggregate(first=Min(name), last=Max(name))
        first, last = as_date(bounds["first"]), as_date(bounds["last"])
        year, month, day = (
            int(self.params[key]) if self.params.get(key) else None
            for key in (f"{name}__year", f"{name}__month", f"{name}__day")
        )
        if year is None and first and last and first.year == last.year:
            # As Django does: one year (or one month) of data opens at that level.
            year = first.year
            month = first.month if first.month == last.month else None

        def link(**parts: int) -> str:
            return str(
                self.get_query_string(
                    {f"{name}__{part}": value for part, value in parts.items()}, [f"{name}__"]
                )
            )

        def shown(start: date, end: date) -> bool:
            return first is not None and last is not None and start <= last and end >= first

        navigation: dict[str, Any] = {"back": None, "choices": [], "field_name": field.verbose_name}
        if year and month and day:
            picked = date(year, month, day)
            navigation["back"] = {
                "link": link(year=year, month=month),
                "title": capfirst(date_format(picked, "YEAR_MONTH_FORMAT")),
            }
            navigation["choices"] = [{"title": capfirst(date_format(picked, "MONTH_DAY_FORMAT"))}]
        elif year and month:
            navigation["back"] = {"link": link(year=year), "title": str(year)}
            days = (date(year, month, d) for d in range(1, calendar.monthrange(year, month)[1] + 1))
            navigation["choices"] = [
                {
                    "link": link(year=year, month=month, day=d.day),
                    "title": capfirst(date_format(d, "MONTH_DAY_FORMAT")),
                }
                for d in days
                if shown(d, d)
            ]
        elif year:
            navigation["back"] = {"link": link(), "title": gettext("All dates")}
            navigation["choices"] = [
                {
                    "link": link(year=year, month=m),
                    "title": capfirst(date_format(date(year, m, 1), "YEAR_MONTH_FORMAT")),
                }
                for m in range(1, 13)
                if shown(date(year, m, 1), date(year, m, calendar.monthrange(year, m)[1]))
            ]
        elif first and last:
            navigation["choices"] = [
                {"link": link(year=y), "title": str(y)} for y in range(first.year, last.year + 1)
            ]
        return navigation


def search_value(field: Field[Any, Any], term: str) -> Any:
    """``term`` as ``field`` holds it, or None when the field cannot hold it (not a
    number, not a valid partner id, a NUL character): then no row can match."""
    formfield = field.formfield()
    try:
        value = field.to_python(term) if formfield is None else formfield.clean(term)
        field.run_validators(value)
    except ValidationError:
        return None
    return value


class ReadOnlyAdmin(ReadOnlyMixin, admin.ModelAdmin):
    """The base of every ModelAdmin of this app: read-only, and the URL filters only
    through the declared ``list_filter`` and ``date_hierarchy``.

    A page costs about the same on a table of a million rows as on a small one: no count
    of the unfiltered rows beside the filtered ones (``show_full_result_count``), no
    exact count past ten thousand rows (``EstimatedCountPaginator``), date-hierarchy
    links without a ``DISTINCT`` (``AppChangeList``), and searches that are exact
    matches, through the indexes (``get_search_results``).

    Django's default ``lookup_allowed`` accepts any lookup on a model's own fields, so a
    staff user with only the view permission could ask ``?sso_token__startswith=ab`` and
    read a secret one character at a time from "1 account" or "0 results". Here every
    other query parameter is refused with a 400 (``DisallowedModelAdminLookup``). The
    parameters Django itself reads (``o``, ``p``, ``q``, ``all``, ``e``, ``_popup``,
    ``_to_field``, ``_facets``) never reach ``lookup_allowed``. A subclass names its
    secret columns in ``secret_fields`` and keeps them out of ``list_display``,
    ``search_fields``, ``list_filter`` and ordering.
    """

    #: Columns that no ``?_to_field=`` may reference (a popup would show their values).
    secret_fields: tuple[str, ...] = ()
    show_full_result_count = False

    class Media:
        # Narrow list columns, and the sync runs' "Sync all now" button.
        css = {"all": ("biginterview/admin.css",)}

    paginator = EstimatedCountPaginator
    changelist_class: type[AppChangeList] = AppChangeList

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[AppChangeList]:
        return self.changelist_class

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """Rows where any search field equals the whole search term. Each search field
        names its lookup: ``partner_id__exact``, or ``user__email__iexact`` for a column
        no index serves anyway.

        Django's ``=field`` compares ``UPPER(column) = UPPER(term)``, which no index
        serves, and ORs the fields across joins, which keeps the planner off the indexes
        it has. Here a field of a related model is looked up there first and becomes
        ``relation IN (ids)``, so the OR stays on this table's indexes; a field that
        cannot hold the term is left out.
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        condition = Q(pk__in=[])
        for name in self.get_search_fields(request):
            match = self._exact_match(name, term)
            if match is not None:
                condition |= match
        return queryset.filter(condition), False

    def _exact_match(self, name: str, term: str) -> Q | None:
        path, _sep, lookup = name.rpartition(LOOKUP_SEP)
        if lookup not in ("exact", "iexact"):
            raise ImproperlyConfigured(
                f"{type(self).__name__}.search_fields: {name!r} must end in __exact or __iexact."
            )
        fields = get_fields_from_path(self.model, path)
        value = search_value(fields[-1], term)
        if value is None:
            return None
        if len(fields) == 1:
            return Q(**{name: value})
        # A forward relation to a primary key (``account__partner_id__exact``).
        relation = fields[0]
        related_model = cast("type[Any]", relation.related_model)
        related = related_model._default_manager.filter(**{name.split(LOOKUP_SEP, 1)[1]: value})
        return Q(**{f"{relation.name}__in": list(related.values_list("pk", flat=True))})

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest) -> bool:
        return lookup in self.filter_parameters(request)

    def filter_parameters(self, request: HttpRequest) -> set[str]:
        """The query parameters the declared filters and date hierarchy read."""
        parameters: set[str] = set()
        for item in self.get_list_filter(request):
            # Built as Django's ChangeList builds them, with no parameters given.
            spec: ListFilter
            if isinstance(item, type):
                spec = item(request, {}, self.model, self)
            elif isinstance(item, list | tuple):  # (field, FieldListFilter subclass)
                field, factory = cast("tuple[Field[Any, Any] | str, type[FieldListFilter]]", item)
                spec = self._field_filter(request, field, factory)
            else:
                spec = self._field_filter(request, item, FieldListFilter.create)
            parameters.update(name for name in spec.expected_parameters() if name)
        if self.date_hierarchy:
            parameters.update(f"{self.date_hierarchy}__{part}" for part in ("year", "month", "day"))
        return parameters

    def _field_filter(
        self,
        request: HttpRequest,
        field: Field[Any, Any] | str,
        factory: Callable[..., FieldListFilter],
    ) -> FieldListFilter:
        field_path = None
        if isinstance(field, str):
            field_path = field
            field = get_fields_from_path(self.model, field_path)[-1]
        return factory(field, request, {}, self.model, self, field_path=field_path)

    def to_field_allowed(self, request: HttpRequest, to_field: str) -> bool:
        return to_field not in self.secret_fields and super().to_field_allowed(request, to_field)

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
    """One track's progress as an HTML ``<progress>`` bar and its percentage, without the
    title: the pages show it once, beside the bar (or, on the accounts list, in the
    bar's tooltip)."""
    return format_html(
        '<progress max="100" value="{pct}">{pct}%</progress> {pct}%', pct=track.percent
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


#: At most this many categories are offered; ``?category=`` takes any.
CATEGORY_CHOICES = 100

#: A loose index scan; ``{table}``/``{column}`` are quoted names from a model's _meta.
LOOSE_INDEX_SCAN = """
WITH RECURSIVE walk(value, n) AS (
    SELECT MIN({column}), 1 FROM {table} WHERE {column} > ''
    UNION ALL
    SELECT (SELECT MIN({column}) FROM {table} WHERE {column} > walk.value), walk.n + 1
    FROM walk WHERE walk.value IS NOT NULL AND walk.n < %s
)
SELECT value FROM walk WHERE value IS NOT NULL
"""


def distinct_values(model: type[Any], field_name: str, limit: int) -> list[str]:
    """The first ``limit`` distinct non-empty values of an indexed text column, in order.

    Each step asks the index for the next value above the last one, so it costs one
    index probe per value where ``SELECT DISTINCT`` reads every row (PostgreSQL 15 and
    SQLite do not skip-scan an index on their own).
    """
    connection = connections[router.db_for_read(model)]
    quote = connection.ops.quote_name
    names = {
        "{table}": quote(model._meta.db_table),
        "{column}": quote(model._meta.get_field(field_name).column),
    }
    sql = LOOSE_INDEX_SCAN
    for placeholder, name in names.items():
        sql = sql.replace(placeholder, name)
    with connection.cursor() as cursor:
        cursor.execute(sql, [limit])
        return [row[0] for row in cursor.fetchall()]


class CategoryFilter(admin.SimpleListFilter):
    """Interviews of one category. The choices come from the category index
    (``distinct_values``), not from a ``DISTINCT`` over every interview."""

    title = _("category")
    parameter_name = "category"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(c, c) for c in distinct_values(Interview, "category", CATEGORY_CHOICES)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset if value is None else queryset.filter(category=value)


class EventNameFilter(admin.SimpleListFilter):
    """Events of one ``event_name``: the choices are the events this app handles, not a
    ``DISTINCT`` over every event; ``?event_name=`` takes any name (an unknown event is
    also ``ignored``, with its reason)."""

    title = _("event")
    parameter_name = "event_name"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(name, name) for name in sorted(KNOWN_EVENTS)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset if value is None else queryset.filter(event_name=value)


class TrackInline(ReadOnlyMixin, admin.TabularInline):
    """The account's tracks, each with a read-only summary of its steps. The title is
    the row's own label (Django shows each saved row's ``str`` above it), so no column
    repeats it."""

    model = Track
    fields = ("progress_bar", "steps_summary", "updated_at")
    readonly_fields = fields
    extra = 0
    show_change_link = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[Track]:
        return cast(TrackQuerySet, super().get_queryset(request)).with_steps()

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
    """The newest interviews; the title is the row's label, with its "view" link."""

    model = Interview
    formset = RecentInterviewsFormSet
    verbose_name_plural = _("recent interviews")
    fields = ("category", "completed", "remote_updated_at", "deleted_at")
    readonly_fields = fields
    ordering = ("-remote_updated_at", "-pk")
    extra = 0
    show_change_link = True


class AccountChangeList(AppChangeList):
    """Counts the live interviews of the listed accounts only, as the staff API does: an
    annotation on the changelist's queryset would count every account's interviews
    before the page is cut, and again for the paginator."""

    def get_results(self, request: HttpRequest) -> None:
        super().get_results(request)
        self.result_list = Account.objects.with_interview_counts(self.result_list)


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    """Accounts with their track progress, interview count and sync state. The SSO token
    is never shown. "Sync now" enqueues the same task the webhook follow-up uses.

    The list has four narrow columns, so that beside the navigation and the filters it
    fits a 1280-pixel screen: who (name, email and partner id stacked), the tracks' bars
    (titles in their tooltips), the interview count, and the last sync with its error or
    "missing on Big Interview". A long value is cut to its column, whole in its tooltip
    (``biginterview/admin.css``).
    """

    secret_fields = ("sso_token",)
    list_display = ("account", "track_progress", "interview_count", "sync_state")
    list_display_links = ("account",)
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
    changelist_class = AccountChangeList
    search_help_text = _("An exact partner id, username or email address.")

    def get_search_fields(self, request: HttpRequest) -> tuple[str, ...]:
        """The partner id and the user's username (both unique, so indexed) and email
        (case-insensitive: the user table has no index on it to lose)."""
        user_model = get_user_model()
        user_fields = {f.name for f in user_model._meta.get_fields()}
        lookups = [
            (user_model.USERNAME_FIELD, "exact"),
            (user_model.get_email_field_name(), "iexact"),
        ]
        return (
            "partner_id__exact",
            *(f"user__{n}__{lookup}" for n, lookup in dict(lookups).items() if n in user_fields),
        )

    def get_queryset(self, request: HttpRequest) -> QuerySet[Account]:
        return cast(AccountQuerySet, super().get_queryset(request)).with_tracks()

    @admin.display(description=_("account"))
    def account(self, obj: Account) -> SafeString:
        """The user's name (or username) and email, and the partner id."""
        user = obj.user
        if user is None:
            name, email = gettext("anonymous visitor"), ""
        else:
            get_full_name = getattr(user, "get_full_name", None)
            full_name = get_full_name().strip() if callable(get_full_name) else ""
            name = full_name or user.get_username()
            email = getattr(user, user.get_email_field_name(), "") or ""
        return format_html(
            '<span class="bi-line" title="{name}">{name}</span>'
            '<span class="bi-line bi-quiet" title="{email}">{email}</span>'
            '<code class="bi-line bi-quiet" title="{partner_id}">{partner_id}</code>',
            name=name,
            email=email,
            partner_id=obj.partner_id,
        )

    @admin.display(description=_("tracks"))
    def track_progress(self, obj: Account) -> SafeString:
        return format_html_join(
            "",
            '<span class="bi-track" title="{}">{}</span>',
            ((t.title, progress_bar(t)) for t in obj.tracks.all()),
        )

    # Not sortable: ordering by it would count every account's interviews.
    @admin.display(description=_("interviews"))
    def interview_count(self, obj: Account) -> int:
        return getattr(obj, "interview_count", 0)

    @admin.display(description=_("last sync"), ordering="last_synced_at")
    def sync_state(self, obj: Account) -> SafeString:
        """When it was last synced, then "missing on Big Interview" and the last error."""
        lines = [
            format_html(
                '<span class="bi-line">{}</span>',
                date_format(timezone.localtime(obj.last_synced_at), "SHORT_DATETIME_FORMAT")
                if obj.last_synced_at
                else gettext("never"),
            )
        ]
        if obj.remote_missing_at is not None:
            since = date_format(timezone.localtime(obj.remote_missing_at), "SHORT_DATETIME_FORMAT")
            lines.append(
                format_html(
                    '<span class="bi-line bi-bad" title="{}">{}</span>',
                    gettext("Big Interview answered 404 for this user on %(date)s.")
                    % {"date": since},
                    gettext("missing on Big Interview"),
                )
            )
        if obj.last_sync_error:
            lines.append(
                format_html(
                    '<span class="bi-line bi-bad" title="{error}">{error}</span>',
                    error=obj.last_sync_error,
                )
            )
        return format_html_join("", "{}", ((line,) for line in lines))

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
    search_fields = ("account__partner_id__exact",)
    search_help_text = _("An exact partner id.")
    inlines = (TrackStepInline,)

    @admin.display(description=_("account"), ordering="account__partner_id")
    def account_link(self, obj: Track) -> SafeString:
        return account_link(obj.account)

    @admin.display(description=_("progress"), ordering="progress")
    def progress_bar(self, obj: Track) -> SafeString:
        return progress_bar(obj)


#: The prefix of a title search in the interviews' changelist.
TITLE_SEARCH = "title:"


@admin.register(Interview)
class InterviewAdmin(ReadOnlyAdmin):
    secret_fields = ("raw",)
    list_display = (
        "__str__",
        "account_link",
        "category",
        "completed",
        "is_deleted",
        "remote_updated_at",
    )
    list_select_related = ("account",)
    list_filter = (
        "completed",
        DeletedFilter,
        CategoryFilter,
        ("remote_updated_at", DateFieldListFilter),
    )
    search_fields = ("account__partner_id__exact", "remote_id__exact")
    search_help_text = _(
        "An exact partner id or interview id. Start with “title:” to search titles "
        "(slow: it reads every interview)."
    )
    date_hierarchy = "remote_updated_at"
    ordering = ("-remote_updated_at", "-pk")
    # Facet counts would count every interview once per filter choice.
    show_facets = admin.ShowFacets.NEVER
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

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[Any], search_term: str
    ) -> tuple[QuerySet[Any], bool]:
        """Exact ids, or a part of a title after ``title:``: no index serves a substring
        search, so it is asked for, not run beside every id search."""
        term = search_term.strip()
        if term[: len(TITLE_SEARCH)].lower() == TITLE_SEARCH:
            return queryset.filter(title__icontains=term[len(TITLE_SEARCH) :].strip()), False
        return super().get_search_results(request, queryset, search_term)

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
    """The "sync all" runs, with two pages of their own:

    - ``sync-all/`` (``admin:biginterview_syncrun_sync_all``, POST only): "Sync all now"
      enqueues ``biginterview.sync_all_accounts``; it takes the change permission on
      sync runs, as it spends the API budget of a whole run.
    - ``status/`` (``admin:biginterview_status``): the app's status (``status.py``),
      for those who may view sync runs; its only POST is the connection test.
    """

    list_display = (
        "started_at",
        "state_display",
        "duration_display",
        "accounts_total",
        "accounts_synced",
        "accounts_failed",
        "accounts_skipped",
        "accounts_lost",
        "failures_summary",
    )
    date_hierarchy = "started_at"
    fields = (
        "started_at",
        "finished_at",
        "state_display",
        "duration_display",
        "accounts_total",
        "accounts_synced",
        "accounts_failed",
        "accounts_skipped",
        "accounts_lost",
        "lost_reason",
        "failures_table",
    )
    readonly_fields = ("state_display", "duration_display", "failures_table")

    def get_urls(self) -> list[URLPattern]:
        wrap = self.admin_site.admin_view
        return [
            path("sync-all/", wrap(self.sync_all_view), name="biginterview_syncrun_sync_all"),
            path("status/", wrap(self.status_view), name="biginterview_status"),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        context = {
            "may_sync_all": self.has_model_change_permission(request),
            **(extra_context or {}),
        }
        return super().changelist_view(request, context)

    def sync_all_view(self, request: HttpRequest) -> HttpResponse:
        """Start a "sync all" run in the background, unless a run holds the lease. The
        run's row appears in the list when a worker begins it."""
        if not self.has_model_change_permission(request):
            raise PermissionDenied
        if request.method != "POST":
            return HttpResponseNotAllowed(["POST"])
        changelist = reverse("admin:biginterview_syncrun_changelist")
        try:
            running = status.run_holding_lease()
        except Exception:  # store down: the task itself finds out whether a run holds it
            logger.warning("Could not read the sync-all lease", exc_info=True)
            running = None
        if running is not None:
            self.message_user(
                request,
                format_html(
                    gettext(
                        'Nothing started: run <a href="{url}">#{pk}</a>, started {started}, '
                        "still holds the lease. A new run can start once it finishes or is "
                        "closed as lost."
                    ),
                    url=reverse("admin:biginterview_syncrun_change", args=[running.pk]),
                    pk=running.pk,
                    started=date_format(timezone.localtime(running.started_at), "DATETIME_FORMAT"),
                ),
                messages.WARNING,
            )
            return redirect(changelist)
        try:
            tasks.sync_all_accounts.apply_async(retry=False)
        except Exception:  # any broker error
            logger.warning("Could not enqueue a sync-all run", exc_info=True)
            self.message_user(
                request,
                gettext(
                    "Nothing started: the task broker could not be reached. Try again once "
                    "it is back (the worker's log says more)."
                ),
                messages.ERROR,
            )
            return redirect(changelist)
        self.message_user(
            request,
            gettext(
                "Sync all started in the background: the run appears in this list as soon "
                "as a worker begins it."
            ),
            messages.SUCCESS,
        )
        return redirect(changelist)

    def status_view(self, request: HttpRequest) -> HttpResponse:
        """The status page (read-only); a POST tests the connection to Big Interview."""
        if not status.may_view(request):
            raise PermissionDenied
        if request.method == "POST":
            found = status.check_connection()
            level = messages.SUCCESS if found.outcome is status.Outcome.ACCEPTED else messages.ERROR
            self.message_user(request, f"{found.detail} ({found.seconds:.1f} s)", level)
            return redirect(request.path)
        if request.method not in ("GET", "HEAD"):
            return HttpResponseNotAllowed(["GET", "HEAD", "POST"])
        snapshot = status.take_snapshot()
        pending_url = failed_url = None
        site = self.admin_site
        if site.is_registered(WebhookEvent) and site.get_model_admin(
            WebhookEvent
        ).has_view_permission(request):
            events = reverse("admin:biginterview_webhookevent_changelist")
            pending_url = f"{events}?status__exact={WebhookEvent.Status.PENDING}"
            failed_url = f"{events}?status__exact={WebhookEvent.Status.FAILED}"
        context = {
            **site.each_context(request),
            "title": gettext("Big Interview status"),
            "opts": self.opts,
            "snapshot": snapshot,
            "pending_url": pending_url,
            "failed_url": failed_url,
            "may_sync_all": self.has_model_change_permission(request),
            "worker_note_kept": status.spoken(status.WORKER_NOTE_KEPT),
        }
        return TemplateResponse(request, "admin/biginterview/status.html", context)

    @admin.display(description=_("state"))
    def state_display(self, obj: SyncRun) -> str:
        return {
            "running": gettext("running"),
            "finished": gettext("finished"),
            "lost": gettext("closed as lost"),
        }[obj.state]

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

    secret_fields = ("payload",)
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
    search_fields = ("partner_id__exact", "remote_id__exact")
    search_help_text = _("An exact partner id or notification id.")
    ordering = ("-received_at", "-pk")
    # Facet counts would count every event once per filter choice.
    show_facets = admin.ShowFacets.NEVER
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

    def get_list_filter(self, request: HttpRequest) -> list[Any]:
        """``event_name`` through ``EventNameFilter``, whose choices need no query."""
        return [EventNameFilter if f == "event_name" else f for f in self.list_filter]

    def has_process_permission(self, request: HttpRequest) -> bool:
        """Replaying changes mirrored data: it takes the model's change permission."""
        return self.has_model_change_permission(request)

    @admin.display(description=_("payload"))
    def payload_pretty(self, obj: WebhookEvent) -> SafeString:
        return pretty_json(obj.payload)

    @admin.action(description=_("Process again"), permissions=["process"])
    def process_again(self, request: HttpRequest, queryset: QuerySet[WebhookEvent]) -> None:
        summary = webhook_processing.replay_events(queryset)
        tasks.schedule_syncs_after_webhooks(summary.sync_account_ids)
        if summary.failures:
            errors = "; ".join(f"#{o.event_id}: {o.reason}" for o in summary.failures[:5])
            self.message_user(request, f"{summary}. Failed: {errors}", messages.WARNING)
        else:
            self.message_user(request, str(summary), messages.SUCCESS)
