"""REST API routes (namespace ``biginterview``): ``me/``, ``me/interviews/``, staff-only
``accounts/``, ``interviews/`` and ``tracks/``, and the OpenAPI schema at ``schema/``.

Every route is exempt from ``LoginRequiredMiddleware``: DRF's permissions answer an
anonymous client with JSON (401/403) instead of a redirect to the login page.
"""

from django.contrib.auth.decorators import login_not_required
from django.urls import path

from . import views

urlpatterns = [
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
]
