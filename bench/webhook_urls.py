"""Bench-only URLconf for ``bench/webhook_ingest.py``: the example site plus two baselines.

Selected with ``DJANGO_ROOT_URLCONF=webhook_urls`` (``bench/`` on ``PYTHONPATH``); never
part of the example project itself. Both baselines run behind the same middleware as the
webhook, and are exempt from CSRF, login and ``ATOMIC_REQUESTS`` like it.
"""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_not_required
from django.db import connection, transaction
from django.http import HttpRequest, JsonResponse
from django.urls import path
from django.views.decorators.csrf import csrf_exempt
from example_project.urls import urlpatterns as site_urlpatterns

RAW_TABLE = "bi_bench_raw_insert"


@csrf_exempt
@login_not_required
def trivial(request: HttpRequest) -> JsonResponse:
    """The ceiling: a Django JSON view doing nothing."""
    return JsonResponse({"status": "ok"})


@csrf_exempt
@login_not_required
@transaction.non_atomic_requests
def raw_insert(request: HttpRequest) -> JsonResponse:
    """The floor of any durable receiver: one INSERT ... ON CONFLICT DO NOTHING of the body."""
    body = request.body
    remote_id = json.loads(body)["webhook"]["id"]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {RAW_TABLE} (remote_id, payload) VALUES (%s, %s::jsonb) "
            "ON CONFLICT (remote_id) DO NOTHING",
            [remote_id, body.decode()],
        )
    return JsonResponse({"status": "stored"})


urlpatterns = [
    path("bench/trivial/", trivial),
    path("bench/raw-insert/", raw_insert),
    *site_urlpatterns,
]
