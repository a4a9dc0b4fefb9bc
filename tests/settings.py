"""Default test settings: SQLite. ``settings_postgres`` and ``settings_uuid_user`` build on it.

Environment:
- ``BI_TEST_DB_NAME``: database name (PostgreSQL) or file stem (SQLite), so parallel runs
  of the suite on one machine do not share a database.
- ``BI_TEST_REDIS_URL``: the Redis used as Celery broker and for locks/rate limits.
- ``BI_WORKER_DB_NAME``: set by the worker fixture, so the Celery worker process opens
  the test database the test process created.
"""

import json
import os
import tempfile
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
DB_STEM = os.environ.get("BI_TEST_DB_NAME", "biginterview")
WORKER_DB_NAME = os.environ.get("BI_WORKER_DB_NAME")

SECRET_KEY = "tests-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
TIME_ZONE = "UTC"

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
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

ROOT_URLCONF = "tests.urls"
LOGIN_URL = "/accounts/login/"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

_sqlite_file = os.path.join(tempfile.gettempdir(), f"{DB_STEM}-test.sqlite3")
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": WORKER_DB_NAME or os.path.join(tempfile.gettempdir(), f"{DB_STEM}.sqlite3"),
        # A file, not memory: a Celery worker process must open the same test database.
        "TEST": {"NAME": _sqlite_file},
        # IMMEDIATE: a write transaction takes the write lock at BEGIN, so two processes
        # (test + worker, or two workers) queue on the busy timeout instead of failing.
        "OPTIONS": {"timeout": 20, "transaction_mode": "IMMEDIATE"},
    }
}

STATIC_URL = "/static/"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

REDIS_URL = os.environ.get("BI_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_ALWAYS_EAGER = False
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("BI_TEST_QUEUE", "celery")
CELERY_BROKER_TRANSPORT_OPTIONS = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

BIGINTERVIEW = {
    # ``.invalid`` never resolves (RFC 2606): a test that forgets the sandbox fails at once
    # instead of reaching for a real organisation's host.
    "BASE_URL": "https://acme.biginterview.invalid",
    "API_KEY": "935d85189822bf96c28c4fa79d3d8f31",
    "WEBHOOK_KEYS": ["webhook-key-current-0000000000000", "webhook-key-previous-000000000000"],
    "REDIS_URL": REDIS_URL,
    "MAX_RETRIES": 2,
    "RETRY_BACKOFF": 0.01,
    "RETRY_BACKOFF_MAX": 0.5,
}
# The worker fixture passes the test's BIGINTERVIEW overrides (the sandbox URL, ...) here.
BIGINTERVIEW.update(json.loads(os.environ.get("BI_TEST_BIGINTERVIEW") or "{}"))

REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_biginterview": {"handlers": ["console"], "level": "INFO"}},
}
