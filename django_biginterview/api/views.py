"""REST API views: thin read-only views over the mirrored tables.

Permissions: ``IsAuthenticated`` for the user's own data; the staff listings need
``is_staff`` and the model's view permission, as the admin does (``ModelViewPermission``);
the schema and its docs page follow ``API_SCHEMA_ACCESS`` (``SchemaAccess``); the API root
lists what the signed-in user may use. The views are exempt from
``LoginRequiredMiddleware`` in ``urls.py``, so an anonymous client gets a JSON 401/403,
never a login redirect. Pagination is set here, not taken from the host's
``REST_FRAMEWORK`` settings.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponseBase, HttpResponseRedirect
from django.templatetags.static import static
from django.utils.cache import patch_vary_headers
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework import generics
from rest_framework.exceptions import ValidationError
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.reverse import reverse
from rest_framework.settings import api_settings
from rest_framework.views import APIView

from .. import tasks
from ..models import Account, Interview, Track
from ..validators import is_valid_partner_id
from .permissions import ModelViewPermission, SchemaAccess
from .schema import api_responses, api_root_schema, schema_urlpatterns
from .serializers import (
    AccountSummarySerializer,
    InterviewSerializer,
    StaffAccountSerializer,
    StaffInterviewSerializer,
    StaffTrackSerializer,
)

PARTNER_ID_PARAMETER = OpenApiParameter(
    "partner_id", OpenApiTypes.STR, description="Only this Big Interview partner_id."
)


class Pagination(PageNumberPagination):
    """``?page=`` and ``?page_size=`` (at most 100). A ``page_size`` that is not a
    positive integer is a 400, not silently the default: the client asked for something
    else than it gets."""

    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100

    def get_page_size(self, request: Any) -> int:
        requested = request.query_params.get(self.page_size_query_param)
        if requested is None:
            return self.page_size
        size = int(requested) if requested.isascii() and requested.isdigit() else 0
        if size < 1:
            raise ValidationError({self.page_size_query_param: ["Must be a positive integer."]})
        return min(size, self.max_page_size)

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"]["minimum"] = 1
                parameter["description"] = (
                    f"Results per page (default {self.page_size}; more than "
                    f"{self.max_page_size} gives {self.max_page_size})."
                )
        return parameters


@extend_schema(exclude=True)
class SchemaView(SpectacularAPIView):
    """The OpenAPI schema of this app's endpoints only (the webhook included), at the
    paths the host project mounts them; it leaves itself out (it is not part of the API).

    Readable as ``API_SCHEMA_ACCESS`` says (signed-in users by default): drf-spectacular's
    ``serve_public`` only decides which endpoints are listed, not who may read them.

    A browser is sent to the docs page (``DocsView``), where the schema is readable; a tool
    gets the document: YAML, or JSON when it asks for it (``Accept`` or ``?format=json``).
    """

    permission_classes = [SchemaAccess]

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # Before the permission check: the docs page checks the same permission.
        if self.wants_a_page(request):
            response: HttpResponseBase = HttpResponseRedirect(reverse("biginterview:api-docs"))
        else:
            response = super().dispatch(request, *args, **kwargs)
        patch_vary_headers(response, ["Accept"])  # one URL, two answers: caches must tell
        return response

    def wants_a_page(self, request: HttpRequest) -> bool:
        """A browser opening the URL: it puts ``text/html`` before every type the schema
        is rendered in, and names no ``?format=``. A tool's ``*/*`` (or no ``Accept``)
        prefers the schema's first type, YAML, as before."""
        override = api_settings.URL_FORMAT_OVERRIDE
        if request.method not in ("GET", "HEAD") or (override and override in request.GET):
            return False
        documents = [renderer.media_type for renderer in self.renderer_classes]
        return request.get_preferred_type([*documents, "text/html"]) == "text/html"

    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.patterns = schema_urlpatterns()
        return super().get(request, *args, **kwargs)


class DocsView(SpectacularSwaggerSplitView):
    """Swagger UI over the schema, for people; readable by whoever may read the schema
    (``SchemaAccess``), and left out of it, as the schema leaves itself out.

    Swagger UI's files come from drf-spectacular-sidecar through the static files app,
    whatever ``SPECTACULAR_SETTINGS`` says (its defaults point at a CDN); ``manage.py
    check`` reports a sidecar missing from ``INSTALLED_APPS`` (``biginterview.E016``). The
    page's script is served by this view too (``?script``), not inline, so a
    Content-Security-Policy that allows only the site's own scripts allows it.
    """

    permission_classes = [SchemaAccess]
    url_name = "biginterview:api-schema"

    # drf-spectacular's hooks for the file URLs (private: tests/test_api_docs.py fails if
    # a new version stops calling them and the page points at the CDN again).
    @staticmethod
    def _swagger_ui_resource(filename: str) -> str:
        return static(f"drf_spectacular_sidecar/swagger-ui-dist/{filename}")

    @staticmethod
    def _swagger_ui_favicon() -> str:
        return static("drf_spectacular_sidecar/swagger-ui-dist/favicon-32x32.png")


NO_SUCH_PAGE = "No such page."


def staff_forbidden(plural: str) -> str:
    """The 403 of a staff listing, in its schema."""
    return f"Not signed in (session), not staff, or without the permission to view {plural}."


@extend_schema_view(
    get=extend_schema(
        responses=api_responses(
            AccountSummarySerializer,
            not_found="The user has not practised yet (no account).",
            paginated=False,
        )
    )
)
class MeView(generics.RetrieveAPIView):
    """The signed-in user's Big Interview account, tracks and steps (404 before the user
    first practised). Progress older than ``PROGRESS_MAX_AGE`` is answered as stored, and
    a sync is asked for in the background (``tasks.refresh_stale_progress``)."""

    serializer_class = AccountSummarySerializer
    permission_classes = [IsAuthenticated]

    def get_object(self) -> Account:
        user_pk: Any = self.request.user.pk  # IsAuthenticated: never None here
        account = Account.objects.with_tracks_and_steps().filter(user_id=user_pk).first()
        if account is None:
            raise Http404
        tasks.refresh_stale_progress(account)
        return Account.objects.with_interview_counts([account])[0]


@extend_schema_view(
    get=extend_schema(responses=api_responses(InterviewSerializer, not_found=NO_SUCH_PAGE))
)
class MeInterviewsView(generics.ListAPIView):
    """The signed-in user's interviews, most recently updated first; deleted ones left out."""

    serializer_class = InterviewSerializer
    permission_classes = [IsAuthenticated]
    pagination_class = Pagination

    def get_queryset(self) -> QuerySet[Interview]:
        user_pk: Any = self.request.user.pk  # IsAuthenticated: never None here
        return Interview.objects.live().filter(account__user_id=user_pk).newest_first()


class PartnerIdFilterMixin:
    partner_id_lookup = "partner_id"
    request: Any

    def filter_partner_id(self, queryset: QuerySet[Any]) -> QuerySet[Any]:
        partner_id = self.request.query_params.get("partner_id")
        if partner_id:
            if not is_valid_partner_id(partner_id):
                # No account can have it; and PostgreSQL refuses some (NUL) outright.
                return queryset.none()
            queryset = queryset.filter(**{self.partner_id_lookup: partner_id})
        return queryset


@extend_schema_view(
    get=extend_schema(
        parameters=[PARTNER_ID_PARAMETER],
        responses=api_responses(
            StaffAccountSerializer,
            not_found=NO_SUCH_PAGE,
            forbidden=staff_forbidden("accounts"),
        ),
    )
)
class AccountListView(PartnerIdFilterMixin, generics.ListAPIView):
    """Staff with the view permission on accounts: every account with progress and sync
    state."""

    serializer_class = StaffAccountSerializer
    permission_classes = [IsAdminUser, ModelViewPermission]
    pagination_class = Pagination

    def get_queryset(self) -> QuerySet[Account]:
        queryset = Account.objects.with_tracks_and_steps().order_by("-created_at", "-pk")
        return self.filter_partner_id(queryset)

    def paginate_queryset(self, queryset: QuerySet[Any] | Sequence[Any]) -> list[Any] | None:
        page = super().paginate_queryset(queryset)
        return None if page is None else Account.objects.with_interview_counts(page)


@extend_schema_view(
    get=extend_schema(
        parameters=[PARTNER_ID_PARAMETER],
        responses=api_responses(
            StaffInterviewSerializer,
            not_found=NO_SUCH_PAGE,
            forbidden=staff_forbidden("interviews"),
        ),
    )
)
class InterviewListView(PartnerIdFilterMixin, generics.ListAPIView):
    """Staff with the view permission on interviews: interviews of every account (deleted
    ones included, with ``deleted_at``), most recently updated first."""

    serializer_class = StaffInterviewSerializer
    permission_classes = [IsAdminUser, ModelViewPermission]
    pagination_class = Pagination
    partner_id_lookup = "account__partner_id"

    def get_queryset(self) -> QuerySet[Interview]:
        queryset = Interview.objects.select_related("account").newest_first()
        return self.filter_partner_id(queryset)


@extend_schema_view(
    get=extend_schema(
        parameters=[PARTNER_ID_PARAMETER],
        responses=api_responses(
            StaffTrackSerializer,
            not_found=NO_SUCH_PAGE,
            forbidden=staff_forbidden("tracks"),
        ),
    )
)
class TrackListView(PartnerIdFilterMixin, generics.ListAPIView):
    """Staff with the view permission on tracks: tracks with their steps."""

    serializer_class = StaffTrackSerializer
    permission_classes = [IsAdminUser, ModelViewPermission]
    pagination_class = Pagination
    partner_id_lookup = "account__partner_id"

    def get_queryset(self) -> QuerySet[Track]:
        queryset = (
            Track.objects.select_related("account").with_steps().order_by("account_id", "position")
        )
        return self.filter_partner_id(queryset)


#: What the API root lists, in this order: key -> (URL name, view).
ROOT_ENDPOINTS: dict[str, tuple[str, type[APIView]]] = {
    "me": ("biginterview:api-me", MeView),
    "me_interviews": ("biginterview:api-me-interviews", MeInterviewsView),
    "accounts": ("biginterview:api-accounts", AccountListView),
    "interviews": ("biginterview:api-interviews", InterviewListView),
    "tracks": ("biginterview:api-tracks", TrackListView),
    "schema": ("biginterview:api-schema", SchemaView),
    "docs": ("biginterview:api-docs", DocsView),
}


def permits(view_class: type[APIView], request: Request) -> bool:
    """Whether ``view_class``'s permissions let this request's user in. Only
    ``has_permission``: none of these views has objects to check."""
    view = view_class(request=request, args=(), kwargs={}, format_kwarg=None)
    return all(permission.has_permission(request, view) for permission in view.get_permissions())


@extend_schema_view(
    get=extend_schema(
        operation_id="biginterview_api_root",
        responses=api_responses(
            api_root_schema(list(ROOT_ENDPOINTS), always=("me", "me_interviews")),
            not_found=None,
            paginated=False,
        ),
    )
)
class ApiRootView(APIView):
    """The absolute URL of each endpoint the signed-in user may use, by name, like DRF's
    router root: ``me`` and ``me_interviews`` always; ``accounts``, ``interviews`` and
    ``tracks`` for staff with the model's view permission; ``schema`` and ``docs`` for
    the readers ``API_SCHEMA_ACCESS`` names.

    Each endpoint's own permissions decide, so the root never lists a URL that would
    answer this user 403. The webhook is not listed: Big Interview calls it, not a
    client of this API.
    """

    permission_classes = [IsAuthenticated]

    def get(self, request: Request) -> Response:
        return Response(
            {
                key: reverse(url_name, request=request)
                for key, (url_name, view_class) in ROOT_ENDPOINTS.items()
                if permits(view_class, request)
            }
        )
