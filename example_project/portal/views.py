"""The portal's own pages (a stand-in for a partner's careers site)."""

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from django_biginterview.models import Account, Interview


def home(request: HttpRequest) -> HttpResponse:
    """Home page: the "Practice interviews" link, track progress and recent interviews."""
    account = Account.objects.filter(user=request.user).first()
    interviews = (
        Interview.objects.filter(account=account, deleted_at__isnull=True)[:20]
        if account
        else Interview.objects.none()
    )
    return render(request, "portal/home.html", {"account": account, "interviews": interviews})
