"""The suite on PostgreSQL (127.0.0.1:5432, trust auth)."""

import os

from .settings import *  # noqa: F403
from .settings import DB_STEM, WORKER_DB_NAME

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": WORKER_DB_NAME or DB_STEM,
        "USER": os.environ.get("PGUSER", "postgres"),
        "HOST": os.environ.get("PGHOST", "127.0.0.1"),
        "PORT": os.environ.get("PGPORT", "5432"),
    }
}
