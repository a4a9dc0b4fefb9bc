from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView


class HostPrivateView(APIView):
    """A DRF endpoint of the host project, which the app's schema must never list."""

    def get(self, request: Request) -> Response:
        return Response({"secret": "host"})


urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("host/private-api/", HostPrivateView.as_view(), name="host-private-api"),
    path("biginterview/", include("django_biginterview.urls")),
]
