"""The portal's own pages (a stand-in for a partner's careers site)."""

from django.conf import settings
from django.contrib.auth.decorators import login_not_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from django_biginterview.models import Account, Interview


@login_not_required
def home(request: HttpRequest) -> HttpResponse:
    """Home page: for members the "Practice interviews" link, track progress and recent
    interviews; for logged-out visitors a landing page (with the demo's logins in demo
    mode, ``PORTAL_DEMO_LOGINS``)."""
    if not request.user.is_authenticated:
        return render(request, "portal/landing.html", {"demo_logins": settings.PORTAL_DEMO_LOGINS})
    account = Account.objects.filter(user=request.user).first()
    interviews = (
        Interview.objects.filter(account=account, deleted_at__isnull=True)[:20]
        if account
        else Interview.objects.none()
    )
    return render(request, "portal/home.html", {"account": account, "interviews": interviews})
