"""The app's status as the tests set it up: a coordination store of the test's own, staff
who may or may not see the status, and a state in which nothing needs a person."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from django.contrib.auth.models import Permission
from django.core.cache import cache
from django.test import Client
from django.utils import timezone

from django_biginterview import status
from django_biginterview.models import SyncRun
from django_biginterview.testing.factories import SyncRunFactory, UserFactory
from tests.support.app_settings import set_app_settings


def use_own_store(settings: Any) -> None:
    """Coordination in this process's own cache instead of the shared Redis, where other
    test runs on the machine write the worker's note and take the "sync all" lease."""
    set_app_settings(settings, REDIS_URL=None)
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
            "LOCATION": f"bi-status-{uuid.uuid4().hex}",
        }
    }
    cache.clear()


def staff(*codenames: str, username: str = "operator") -> Client:
    """A client logged in as staff (not superuser) holding the app's ``codenames``."""
    user = UserFactory(username=username, is_staff=True)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    client = Client()
    client.force_login(user)
    return client


def healthy(now: datetime | None = None) -> SyncRun:
    """A worker seen just now and a "sync all" run that finished a minute ago."""
    now = now or timezone.now()
    status.note_worker_alive(now)
    run: SyncRun = SyncRunFactory(
        started_at=now - timedelta(minutes=3),
        finished_at=now - timedelta(minutes=1),
        accounts_total=3,
        accounts_synced=3,
    )
    return run
