"""Include with ``path("biginterview/", include("django_biginterview.urls"))``.

The namespace is ``biginterview``: ``biginterview:practice`` (SSO redirect),
``biginterview:webhook`` (Big Interview's notifications), ``biginterview:health`` (for
uptime monitors) and the REST API under ``api/``.
"""

from django.urls import include, path

from . import views

app_name = "biginterview"

webhook = views.WebhookView.as_view()

urlpatterns = [
    path("practice/", views.practice, name="practice"),
    path("webhook/", webhook, name="webhook"),
    # A destination URL registered without the slash would otherwise get a redirect,
    # which Big Interview does not follow: every delivery would be lost.
    path("webhook", views.WebhookSlashlessView.as_view()),
    path("health/", views.health, name="health"),
    path("api/", include("django_biginterview.api.urls")),
]
