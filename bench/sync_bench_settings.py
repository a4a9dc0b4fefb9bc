"""Settings of ``sync_throughput.py`` and of the Procfile workers it starts: the example
project's own settings (``DATABASE_URL``, ``CELERY_BROKER_URL``, ``REDIS_URL``,
``BIGINTERVIEW_*`` from the environment, as a partner deploys them), with ``RATE_LIMIT``
taken from ``BENCH_RATE_LIMIT`` (requests per second), which they do not read."""

import os

from example_project.settings import *  # noqa: F403
from example_project.settings import BIGINTERVIEW

BIGINTERVIEW = {**BIGINTERVIEW, "RATE_LIMIT": float(os.environ.get("BENCH_RATE_LIMIT", "10"))}
