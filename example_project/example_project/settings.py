"""Settings of the example partner portal, all from environment variables.

The defaults run the whole demo on a fresh machine with no server installed: SQLite, the
local sandbox as Big Interview, and kombu's filesystem transport as the Celery broker.

| variable | default |
| --- | --- |
| ``BIGINTERVIEW_BASE_URL`` | ``http://127.0.0.1:8765`` (the sandbox) |
| ``BIGINTERVIEW_API_KEY`` | the sandbox's default key |
| ``BIGINTERVIEW_WEBHOOK_KEYS`` | the sandbox's default webhook key (comma-separated list) |
| ``BIGINTERVIEW_RETURN_URL`` | unset: where Big Interview sends members after logout |
| ``DATABASE_URL`` | ``sqlite:///<here>/db.sqlite3`` |
| ``CELERY_BROKER_URL`` | ``filesystem://`` (Redis when set, e.g. ``redis://127.0.0.1:6379/0``) |
| ``CELERY_BROKER_FOLDER`` | ``<here>/.broker``: the filesystem broker's folder |
| ``REDIS_URL`` | unset: locks, markers and the rate limit in Django's cache, a folder |
| ``DJANGO_CACHE_FOLDER`` | ``<here>/.cache``: that cache's folder (without ``REDIS_URL``) |
| ``DJANGO_SECRET_KEY`` | an insecure development key |
| ``DJANGO_DEBUG`` | ``1`` |
| ``DJANGO_ALLOWED_HOSTS`` | ``127.0.0.1,localhost`` |
| ``DJANGO_DEMO_LOGINS`` | unset: demo mode off. The demo sets a JSON list of ``{"role", \
"username", "password"}`` objects, which the landing page shows to logged-out visitors |
"""

import json
import os
from datetime import timedelta
from pathlib import Path

import dj_database_url

BASE_DIR = Path(__file__).resolve().parent.parent

SANDBOX_API_KEY = "sandbox-api-key-0000000000000000"
SANDBOX_WEBHOOK_KEY = "sandbox-webhook-key-000000000000"


def env_bool(name: str, default: bool) -> bool:
    return os.environ.get(name, "1" if default else "0").lower() in ("1", "true", "yes", "on")


SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "insecure-example-project-key")
DEBUG = env_bool("DJANGO_DEBUG", True)
ALLOWED_HOSTS = [
    h for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h
]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_biginterview",
    "portal",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Every page needs a login unless marked otherwise; the webhook and the practice view
    # handle that themselves.
    "django.contrib.auth.middleware.LoginRequiredMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

# Benchmarks swap in a URLconf with extra baseline views (bench/webhook_urls.py).
ROOT_URLCONF = os.environ.get("DJANGO_ROOT_URLCONF", "example_project.urls")
WSGI_APPLICATION = "example_project.wsgi.application"
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "home"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

DATABASES = {
    "default": dj_database_url.config(
        default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}", conn_max_age=60
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The worker's processes and the web server write the same file. IMMEDIATE takes the
    # write lock when a transaction begins, so they queue for up to ``timeout`` seconds;
    # a transaction that upgrades from reading to writing would fail at once instead.
    DATABASES["default"].setdefault("OPTIONS", {}).update(timeout=20, transaction_mode="IMMEDIATE")

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
USE_TZ = True
TIME_ZONE = "UTC"
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

if not os.environ.get("REDIS_URL"):
    # Without Redis the app keeps its locks, pending-sync markers and rate limit in
    # Django's cache, which every process (web, worker, beat) must share: a folder.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.filebased.FileBasedCache",
            "LOCATION": os.environ.get("DJANGO_CACHE_FOLDER", str(BASE_DIR / ".cache")),
        }
    }

_broker_dir = Path(os.environ.get("CELERY_BROKER_FOLDER", BASE_DIR / ".broker"))
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "filesystem://")
if CELERY_BROKER_URL.startswith("filesystem://"):
    # The demo's broker: no server, and no redelivery of anything a dead worker held.
    for sub in ("queue", "processed", "control"):
        (_broker_dir / sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "store_processed": False,
        "control_folder": str(_broker_dir / "control"),
    }
else:
    # Redis hands a message out again this many seconds after delivering it unless it was
    # acknowledged (its worker died outright). A worker holds a retry unacknowledged while
    # it waits for the countdown (SYNC_RETRY_BACKOFF_MAX, 600 s) and then runs it (time
    # limit 180 s): anything shorter than that runs a retry twice. RabbitMQ ignores it.
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": 3600}
CELERY_TASK_IGNORE_RESULT = True
# CELERY_TASK_ACKS_LATE stays unset: the app sets acks_late (and reject_on_worker_lost)
# on each task that is safe to run twice; a global value would extend it to every task.
# With late acknowledgement a worker holds every message it reserved until the task ends:
# reserve one per process, so a worker that dies hands back only what it was running
# and no message waits behind a long sync while another process is free.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Celery's Django fixup closes the database connection after every task unless this is
# set; then it closes it every 2 x this many tasks. Reconnecting costs each small task
# more than its work. (The app's own batching does not depend on it.)
CELERY_DB_REUSE_MAX = 200
# A broker outage must never stop the worker: retry the connection forever, at start too.
CELERY_BROKER_CONNECTION_MAX_RETRIES = None
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A late-acknowledged task still running when the broker connection is lost cannot be
# acknowledged any more, so its message is handed out again (RabbitMQ: at once; Redis: at
# the latest after visibility_timeout). The app's tasks are idempotent: let the running
# copy finish the work now, and the second copy finds nothing left to do. Cancelling it
# (True, Celery 6's default) would leave the work undone until that redelivery. Celery
# logs a pending-deprecation warning on each connection loss while this is False.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = False
CELERY_BEAT_SCHEDULE = {
    "biginterview-sync-all": {
        "task": "biginterview.sync_all_accounts",
        "schedule": timedelta(hours=6),
    },
    "biginterview-close-lost-sync-runs": {
        "task": "biginterview.close_lost_sync_runs",
        "schedule": timedelta(minutes=1),
    },
    "biginterview-sweep-webhooks": {
        "task": "biginterview.sweep_webhook_events",
        "schedule": timedelta(minutes=1),
    },
    "biginterview-purge-webhooks": {
        "task": "biginterview.purge_webhook_events",
        "schedule": timedelta(hours=1),
    },
    "biginterview-purge-anonymous-accounts": {
        "task": "biginterview.purge_anonymous_accounts",
        "schedule": timedelta(hours=1),
    },
}

_webhook_keys = os.environ.get("BIGINTERVIEW_WEBHOOK_KEYS", SANDBOX_WEBHOOK_KEY)
BIGINTERVIEW = {
    "BASE_URL": os.environ.get("BIGINTERVIEW_BASE_URL", "http://127.0.0.1:8765"),
    "API_KEY": os.environ.get("BIGINTERVIEW_API_KEY", SANDBOX_API_KEY),
    "WEBHOOK_KEYS": [key.strip() for key in _webhook_keys.split(",") if key.strip()],
    "REDIS_URL": os.environ.get("REDIS_URL") or None,
    "RETURN_URL": os.environ.get("BIGINTERVIEW_RETURN_URL") or None,
    # The Procfile's worker consumes it beside "celery": a user's stale progress is
    # refreshed ahead of a running "sync all".
    "INTERACTIVE_QUEUE": "biginterview_interactive",
}

# Demo mode (``demo.py`` sets it): logins shown on the landing page. Never set it elsewhere.
PORTAL_DEMO_LOGINS = json.loads(os.environ.get("DJANGO_DEMO_LOGINS") or "[]")

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}
SPECTACULAR_SETTINGS = {"TITLE": "Big Interview portal API", "VERSION": "1.0.0"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_biginterview": {"handlers": ["console"], "level": "INFO"}},
}
