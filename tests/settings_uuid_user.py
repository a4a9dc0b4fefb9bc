"""The suite with a custom user model whose primary key is a UUID (on PostgreSQL)."""

from .settings_postgres import *  # noqa: F403
from .settings_postgres import INSTALLED_APPS

INSTALLED_APPS = [*INSTALLED_APPS, "tests.testapp"]
AUTH_USER_MODEL = "testapp.UUIDUser"
