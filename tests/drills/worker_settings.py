"""Settings of the drills' worker and web processes: the example project's own settings
(as a partner deploys them), the fault-injection app, and timings that let a drill see
recovery in seconds instead of minutes."""

from example_project.settings import *  # noqa: F403
from example_project.settings import BIGINTERVIEW, INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.drills.faults"]

BIGINTERVIEW = {
    **BIGINTERVIEW,
    # The sweeper re-enqueues an event left behind by a dead worker or broker.
    "WEBHOOK_STUCK_AFTER": 3,
    "WEBHOOK_RETRY_BACKOFF": 1,
    # The poison-event drill: an event that kills its worker gives up after 3 starts.
    "WEBHOOK_MAX_ATTEMPTS": 3,
    # Sync retries after 429/503 wait seconds, not minutes (Retry-After still wins).
    "SYNC_RETRY_BACKOFF": 1.0,
    "SYNC_RETRY_BACKOFF_MAX": 5.0,
}
