"""The demo (``example_project/demo.py``): when it fills its virtualenv, its ``manage``
passthrough, and the portal pages it serves (landing page, stylesheet, icon).

The passthrough and the portal run in real processes, as a partner starts them, with
``--no-install`` (this interpreter) and a temporary data folder.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.support.paths import EXAMPLE, ROOT
from tests.support.procfile import PORTAL_VARIABLES, free_port

DEMO_PY = EXAMPLE / "demo.py"
DEMO_PASSWORDS = ("demo-password-1", "admin-password-1")


@pytest.fixture(scope="module")
def demo() -> ModuleType:
    """``demo.py`` imported as a module (it is a script, not in a package)."""
    spec = importlib.util.spec_from_file_location("example_demo", DEMO_PY)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# -- When the virtualenv is filled ------------------------------------------------------


class Exec(Exception):
    """Raised by the fake ``os.execv``: the script would now re-run inside the venv."""


def test_the_virtualenv_is_filled_only_when_missing_or_its_dependencies_changed(
    demo: ModuleType, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A second start must neither reinstall nor need a package index; a changed
    ``pyproject.toml`` or a failed install does install (again)."""
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text('[project]\ndependencies = ["Django>=5.2"]\n')
    monkeypatch.setattr(demo, "INSTALL_SOURCES", (pyproject,))
    venv_dir = tmp_path / "venv"
    created: list[Path] = []
    installs: list[list[str]] = []
    failing = False

    class EnvBuilder:
        def __init__(self, *, clear: bool = False, **options: Any) -> None:
            self.clear = clear

        def create(self, path: Path) -> None:
            created.append(path)
            if self.clear:
                shutil.rmtree(path, ignore_errors=True)
            (path / "bin").mkdir(parents=True, exist_ok=True)
            (path / "bin" / "python").touch()

    def run(command: list[str], **options: Any) -> None:
        installs.append(command)
        if failing:
            raise subprocess.CalledProcessError(1, command)

    def execv(path: str, argv: list[str]) -> None:
        raise Exec(path, argv)

    monkeypatch.setattr(demo.venv, "EnvBuilder", EnvBuilder)
    monkeypatch.setattr(demo.subprocess, "run", run)
    monkeypatch.setattr(demo.os, "execv", execv)

    def start() -> tuple[str, list[str]]:
        with pytest.raises(Exec) as started:
            demo.ensure_virtualenv(["--port", "8100"], venv_dir)
        return started.value.args

    python = str(venv_dir / "bin" / "python")
    # No virtualenv: created and filled, then the demo re-runs in it without installing.
    assert start() == (python, [python, str(DEMO_PY), "--no-install", "--port", "8100"])
    assert created == [venv_dir]
    assert installs == [[python, *demo.INSTALL_ARGS]]

    # Nothing changed: no install at all.
    start()
    assert (len(created), len(installs)) == (1, 1)

    # The dependencies changed: installed again into the same virtualenv.
    pyproject.write_text('[project]\ndependencies = ["Django>=5.2", "celery>=5.4"]\n')
    start()
    assert (len(created), len(installs)) == (1, 2)
    start()
    assert len(installs) == 2

    # A failed install is not recorded: the next start tries again.
    pyproject.write_text('[project]\ndependencies = ["Django>=6"]\n')
    failing = True
    with pytest.raises(subprocess.CalledProcessError):
        demo.ensure_virtualenv([], venv_dir)
    failing = False
    start()
    assert len(installs) == 4
    start()
    assert len(installs) == 4

    # A virtualenv whose interpreter is gone is created afresh.
    (venv_dir / "bin" / "python").unlink()
    start()
    assert (len(created), len(installs)) == (2, 5)


def test_the_install_fingerprint_covers_pyproject_and_the_install_command(
    demo: ModuleType,
) -> None:
    """What decides the virtualenv's packages: the repository's ``pyproject.toml`` (its
    dependencies and the ``example`` extra) and the pip command."""
    assert ROOT / "pyproject.toml" in demo.INSTALL_SOURCES
    assert demo.INSTALL_ARGS[-1] == f"{ROOT}[example]"
    fingerprint = demo.install_fingerprint(demo.INSTALL_SOURCES, demo.INSTALL_ARGS)
    other_command = demo.install_fingerprint(demo.INSTALL_SOURCES, demo.INSTALL_ARGS[:-1])
    assert fingerprint != other_command


# -- demo.py manage ---------------------------------------------------------------------


def demo_command(
    data_dir: Path, *args: str, port: int = 8000, sandbox_port: int = 8765
) -> list[str]:
    return [
        sys.executable, str(DEMO_PY), "--no-install", "--data-dir", str(data_dir),
        "--port", str(port), "--sandbox-port", str(sandbox_port), *args,
    ]  # fmt: skip


def clean_environment() -> dict[str, str]:
    """This shell's environment less anything the portal reads (``DATABASE_URL`` too)."""
    return {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(PORTAL_VARIABLES) and key != "DATABASE_URL"
    }


def run_demo(data_dir: Path, cwd: Path, *args: str, **ports: int) -> str:
    done = subprocess.run(
        demo_command(data_dir, *args, **ports),
        cwd=cwd,
        env=clean_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_manage_runs_commands_against_the_demos_database(tmp_path: Path) -> None:
    """``demo.py manage ...`` reaches the demo's own database, broker, sandbox and return
    URL; it leaves no ``db.sqlite3`` beside ``manage.py`` or in the working folder."""
    stray = EXAMPLE / "db.sqlite3"
    stray_before = stray.stat() if stray.exists() else None
    data_dir, cwd = tmp_path / "demo", tmp_path / "cwd"
    cwd.mkdir()

    run_demo(data_dir, cwd, "manage", "migrate", "--no-input", "-v", "0")
    synced = run_demo(data_dir, cwd, "manage", "biginterview_sync", "--all")
    assert "sync run #1: 0 synced, 0 failed" in synced
    with sqlite3.connect(data_dir / "db.sqlite3") as db:
        assert db.execute("SELECT count(*) FROM biginterview_syncrun").fetchone() == (1,)

    printed = run_demo(
        data_dir, cwd, "manage", "shell", "-v", "0", "-c",
        "import json; from django.conf import settings; "
        "from django_biginterview.conf import app_settings as a; print(json.dumps(["
        "str(settings.DATABASES['default']['NAME']), a.BASE_URL, a.RETURN_URL, "
        "settings.CELERY_BROKER_TRANSPORT_OPTIONS['data_folder_in']]))",
        port=8123, sandbox_port=8877,
    )  # fmt: skip
    assert json.loads(printed) == [
        str(data_dir / "db.sqlite3"),
        "http://127.0.0.1:8877",
        "http://127.0.0.1:8123/",  # logging out of the sandbox returns to the portal
        str(data_dir / "broker" / "queue"),
    ]
    assert list(cwd.iterdir()) == []
    assert (stray.stat() if stray.exists() else None) == stray_before


# -- The portal's pages -------------------------------------------------------------------


def get(url: str) -> tuple[int, str, str]:
    """Status, content type and body of a GET (redirects followed)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as answer:
            return answer.status, answer.headers["Content-Type"], answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.headers["Content-Type"], error.read().decode()


def serve(command: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as output:
        server = subprocess.Popen(command, cwd=EXAMPLE, env=env, stdout=output, stderr=output)
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/login/", timeout=2)
            return server
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"runserver did not start:\n{log.read_text()}")
            time.sleep(0.2)


@pytest.fixture(scope="module")
def portals(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """The portal under ``runserver`` twice on one migrated database: ``demo`` started by
    ``demo.py manage`` (demo mode), ``plain`` by ``manage.py`` without the demo's
    variables. Their base URLs by name."""
    tmp = tmp_path_factory.mktemp("portals")
    data_dir = tmp / "demo"
    run_demo(data_dir, tmp, "manage", "migrate", "--no-input", "-v", "0")
    demo_port, plain_port = free_port(), free_port()
    plain_env = {
        **clean_environment(),
        "DATABASE_URL": f"sqlite:///{data_dir / 'db.sqlite3'}",
        "CELERY_BROKER_FOLDER": str(data_dir / "broker"),
    }
    servers = [
        serve(
            demo_command(data_dir, "manage", "runserver", f"127.0.0.1:{demo_port}", "--noreload",
                         port=demo_port),
            clean_environment(), demo_port, tmp / "demo.log",
        ),
        serve(
            [sys.executable, "manage.py", "runserver", f"127.0.0.1:{plain_port}", "--noreload"],
            plain_env, plain_port, tmp / "plain.log",
        ),
    ]  # fmt: skip
    try:
        yield {"demo": f"http://127.0.0.1:{demo_port}", "plain": f"http://127.0.0.1:{plain_port}"}
    finally:
        for server in servers:
            server.terminate()
            server.wait(timeout=20)


def test_the_landing_page_shows_the_demo_logins_only_in_demo_mode(
    portals: dict[str, str],
) -> None:
    status, _, demo_page = get(f"{portals['demo']}/")
    assert status == 200 and 'id="landing-login"' in demo_page
    assert 'id="demo-logins"' in demo_page
    for username, password in (("demo", "demo-password-1"), ("admin", "admin-password-1")):
        assert f"<code>{username}</code> / <code>{password}</code>" in demo_page

    status, _, plain_page = get(f"{portals['plain']}/")
    assert status == 200 and 'id="landing-login"' in plain_page
    assert "demo-logins" not in plain_page
    assert not any(password in plain_page for password in DEMO_PASSWORDS)


def test_the_portal_stylesheet_is_served_and_linked(portals: dict[str, str]) -> None:
    _, _, page = get(f"{portals['demo']}/login/")
    href = re.search(r'<link rel="stylesheet" href="([^"]+)"', page)
    assert href is not None and href[1] == "/static/portal/portal.css"
    status, content_type, css = get(f"{portals['demo']}{href[1]}")
    assert (status, content_type.split(";")[0]) == (200, "text/css")
    assert ".demo-logins" in css


@pytest.mark.parametrize("path", ["/", "/login/"])
def test_the_portal_pages_declare_an_icon_that_exists(portals: dict[str, str], path: str) -> None:
    _, _, page = get(f"{portals['demo']}{path}")
    href = re.search(r'<link rel="icon" href="([^"]+)"', page)
    assert href is not None, page
    status, content_type, _ = get(f"{portals['demo']}{href[1]}")
    assert (status, content_type) == (200, "image/svg+xml")


def test_favicon_ico_exists_for_pages_without_an_icon(portals: dict[str, str]) -> None:
    """The admin's pages declare no icon, so browsers ask for ``/favicon.ico``."""
    _, _, admin_login = get(f"{portals['demo']}/admin/login/")
    assert 'rel="icon"' not in admin_login
    status, content_type, _ = get(f"{portals['demo']}/favicon.ico")
    assert (status, content_type) == (200, "image/svg+xml")
