"""Include with ``path("biginterview/", include("django_biginterview.urls"))``.

The namespace is ``biginterview``: ``biginterview:practice`` (SSO redirect),
``biginterview:webhook`` (Big Interview's notifications) and the REST API under ``api/``.
"""

from django.urls import include, path

from . import views

app_name = "biginterview"

urlpatterns = [
    path("practice/", views.practice, name="practice"),
    path("webhook/", views.WebhookView.as_view(), name="webhook"),
    path("api/", include("django_biginterview.api.urls")),
]
