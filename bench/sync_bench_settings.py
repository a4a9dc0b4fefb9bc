"""Django settings of ``sync_throughput.py`` and of the Celery worker it starts (from env)."""

import os

SECRET_KEY = "bench-not-secret"
USE_TZ = True
TIME_ZONE = "UTC"
DEBUG = False
INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django_biginterview",
]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": os.environ.get("BENCH_DB", "bench_sync"),
        "USER": os.environ.get("PGUSER", "postgres"),
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
        "CONN_MAX_AGE": 60,
    }
}
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
CELERY_BROKER_URL = REDIS_URL
CELERY_TASK_DEFAULT_QUEUE = os.environ.get("BENCH_QUEUE", "bench-sync")
CELERY_TASK_IGNORE_RESULT = True
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
BIGINTERVIEW = {
    "BASE_URL": os.environ.get("BENCH_BASE_URL", "http://127.0.0.1:8765"),
    "API_KEY": os.environ.get("BENCH_API_KEY", "0" * 32),
    "WEBHOOK_KEYS": ["w" * 32],
    "REDIS_URL": REDIS_URL,
    "RATE_LIMIT": float(os.environ.get("BENCH_RATE_LIMIT", "0")),
    "READ_TIMEOUT": 30.0,
}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_biginterview": {"handlers": ["console"], "level": "WARNING"}},
}
