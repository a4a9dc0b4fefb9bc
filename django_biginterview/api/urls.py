"""REST API routes (namespace ``biginterview``): ``me/``, ``me/interviews/``, staff-only
``accounts/`` and ``interviews/``, and the OpenAPI schema at ``schema/``."""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
]
