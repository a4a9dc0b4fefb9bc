from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_not_required
from django.templatetags.static import static
from django.urls import path
from django.views.generic import RedirectView

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("login/", auth_views.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    # For pages that declare no icon (the admin's, the API's): browsers ask for this one.
    path(
        "favicon.ico",
        login_not_required(RedirectView.as_view(url=static("portal/favicon.svg"))),
        name="favicon",
    ),
]
