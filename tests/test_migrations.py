"""Migrations match the models, never read settings, and install in an unconfigured project.

The settings-independence tests run ``manage.py`` commands in fresh processes (a migration
module imported once in this process could not show a difference), each with a settings
module written for the test: one project that has no ``BIGINTERVIEW`` at all, and one
with every value changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

from tests.support.paths import ROOT

UNCONFIGURED = "del BIGINTERVIEW\n"
ODD_VALUES = """
from datetime import timedelta
BIGINTERVIEW = {
    "BASE_URL": "https://other.biginterview.com",
    "API_KEY": "0123456789abcdef0123456789abcdef",
    "WEBHOOK_KEYS": ["another-webhook-key"],
    "TOKEN_REFRESH_MARGIN": timedelta(hours=5),
    "WEBHOOK_RETENTION": timedelta(days=400),
    "SYNC_CHUNK_SIZE": 7,
    "PARTNER_ID_SECRET": "another-secret",
}
"""


def run_manage(tmp_path: Path, settings_body: str, *args: str) -> subprocess.CompletedProcess[str]:
    """``django-admin *args`` in a new process, with tests.settings plus ``settings_body``
    on a fresh SQLite file in ``tmp_path``."""
    module = f"bi_settings_{hashlib.sha256(settings_body.encode()).hexdigest()[:12]}"
    (tmp_path / f"{module}.py").write_text(
        "from tests.settings import *  # noqa: F403\n"
        f"DATABASES = {{'default': {{'ENGINE': 'django.db.backends.sqlite3', "
        f"'NAME': {str(tmp_path / (module + '.sqlite3'))!r}}}}}\n" + settings_body
    )
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("BI_WORKER_", "DJANGO_"))
    }
    env.update(
        DJANGO_SETTINGS_MODULE=module,
        PYTHONPATH=os.pathsep.join([str(tmp_path), str(ROOT)]),
    )
    return subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def assert_ok(result: subprocess.CompletedProcess[str]) -> str:
    """The output of a command that succeeded (check warnings included)."""
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout + result.stderr


@pytest.mark.django_db
def test_models_and_migrations_agree() -> None:
    out = StringIO()
    # Exits non-zero (SystemExit) when a model change has no migration.
    call_command("makemigrations", "biginterview", check=True, dry_run=True, stdout=out)
    assert "No changes detected" in out.getvalue()


def test_migrations_are_the_same_whatever_the_settings(tmp_path: Path) -> None:
    sql = {
        name: run_manage(tmp_path, body, "sqlmigrate", "biginterview", "0001").stdout
        for name, body in {"tests": "", "unconfigured": UNCONFIGURED, "odd": ODD_VALUES}.items()
    }
    assert "CREATE TABLE" in sql["tests"]
    assert sql["unconfigured"] == sql["tests"]
    assert sql["odd"] == sql["tests"]
    # Models do not read settings into field definitions either.
    out = assert_ok(run_manage(tmp_path, ODD_VALUES, "makemigrations", "--check", "--dry-run"))
    assert "No changes detected" in out


def test_an_unconfigured_project_migrates_and_passes_check(tmp_path: Path) -> None:
    migrated = assert_ok(run_manage(tmp_path, UNCONFIGURED, "migrate", "--no-input"))
    assert "Applying biginterview.0001_initial... OK" in migrated
    # The missing keys are warnings (printed), not errors (a non-zero exit).
    checked = assert_ok(run_manage(tmp_path, UNCONFIGURED, "check"))
    assert "biginterview.W001" in checked
    assert "biginterview.W003" in checked
    # The app's migrations unapply cleanly too.
    assert_ok(run_manage(tmp_path, UNCONFIGURED, "migrate", "biginterview", "zero", "--no-input"))


def test_an_unconfigured_project_fails_check_deploy(tmp_path: Path) -> None:
    result = run_manage(tmp_path, UNCONFIGURED, "check", "--deploy")
    assert result.returncode != 0
    assert "biginterview.E001" in result.stderr
    assert "biginterview.E003" in result.stderr
