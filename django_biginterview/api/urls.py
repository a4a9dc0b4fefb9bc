"""REST API routes (namespace ``biginterview``): the API root (``""``), ``me/``,
``me/interviews/``, staff-only ``accounts/``, ``interviews/`` and ``tracks/``, the OpenAPI
schema at ``schema/`` and its Swagger UI page at ``docs/``.

Every route is exempt from ``LoginRequiredMiddleware``: DRF's permissions answer an
anonymous client with JSON (401/403; the docs page, HTML) instead of a redirect to the
login page, and ``API_SCHEMA_ACCESS = "public"`` must reach anonymous readers.
"""

from django.contrib.auth.decorators import login_not_required
from django.urls import path

from . import views

urlpatterns = [
    path("", login_not_required(views.ApiRootView.as_view()), name="api-root"),
    path("me/", login_not_required(views.MeView.as_view()), name="api-me"),
    path(
        "me/interviews/",
        login_not_required(views.MeInterviewsView.as_view()),
        name="api-me-interviews",
    ),
    path("accounts/", login_not_required(views.AccountListView.as_view()), name="api-accounts"),
    path(
        "interviews/",
        login_not_required(views.InterviewListView.as_view()),
        name="api-interviews",
    ),
    path("tracks/", login_not_required(views.TrackListView.as_view()), name="api-tracks"),
    path("schema/", login_not_required(views.SchemaView.as_view()), name="api-schema"),
    path("docs/", login_not_required(views.DocsView.as_view()), name="api-docs"),
]
