"""The example portal configures itself from environment variables with working defaults.

Its ``manage.py check`` and ``migrate`` run in a fresh process, as on a fresh machine:
none of the portal's variables is set except ``DATABASE_URL`` (a throwaway SQLite file).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"

#: Variables the portal reads; a developer's shell must not change what is tested.
PORTAL_VARIABLES = ("BIGINTERVIEW_", "DJANGO_", "CELERY_", "REDIS_URL", "BI_")


def manage(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(PORTAL_VARIABLES)}
    env["DATABASE_URL"] = f"sqlite:///{tmp_path / 'portal.sqlite3'}"
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=EXAMPLE,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_example_project_checks_and_migrates_with_default_configuration(tmp_path: Path) -> None:
    checked = manage(tmp_path, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "System check identified no issues" in checked.stdout
    assert "biginterview." not in checked.stdout + checked.stderr  # the defaults are complete

    migrated = manage(tmp_path, "migrate", "--no-input")
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert "Applying biginterview.0001_initial... OK" in migrated.stdout
    assert (tmp_path / "portal.sqlite3").stat().st_size > 0

    # Everything is applied: a second run has nothing left to do.
    again = manage(tmp_path, "migrate", "--check")
    assert again.returncode == 0, again.stdout + again.stderr
