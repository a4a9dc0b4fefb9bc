"""HTTP in: translate requests into domain calls (``sso.py``, ``webhooks.py``) and back.

No business rules live here.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from rest_framework.views import APIView

# --- SSO (practice) ------------------------------------------------------------------


def practice(request: HttpRequest) -> HttpResponse:
    """Placeholder until the SSO view lands."""
    return HttpResponse(status=501)


# --- Webhook receiver ----------------------------------------------------------------


class WebhookView(APIView):
    """Placeholder until the webhook receiver lands."""

    def post(self, request: HttpRequest) -> HttpResponse:
        return HttpResponse(status=501)
