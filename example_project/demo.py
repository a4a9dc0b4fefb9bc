#!/usr/bin/env python3
"""Run the whole demo on one machine: ``python3 example_project/demo.py``.

It creates a virtualenv (``.venv-demo`` at the repository root) with the package and the
example extra, migrates a SQLite database, creates a demo user and an admin (printing
their credentials), then starts the Big Interview sandbox (webhooks pointed at the
portal), the Procfile's Celery worker and beat (kombu's filesystem broker: no server
needed) and the portal (``runserver``, which serves the admin's static files, unlike the
Procfile's gunicorn), prints the URL and waits. Ctrl-C stops everything it started.

Options: ``--port`` (portal, 8000), ``--sandbox-port`` (8765), ``--data-dir`` (database,
broker folder, logs; default ``example_project/.demo``), ``--no-install`` (use the current
interpreter as is; the end-to-end test runs the demo this way).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import venv
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = ROOT / ".venv-demo"

DEMO_USER = ("demo", "demo-password-1", "demo@example.com", "Dana", "Demo")
ADMIN_USER = ("admin", "admin-password-1", "admin@example.com")


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--sandbox-port", type=int, default=8765)
    parser.add_argument("--data-dir", type=Path, default=HERE / ".demo")
    parser.add_argument("--no-install", action="store_true")
    parser.add_argument(
        "--webhook-retry-delay",
        type=float,
        default=2.0,
        help="Seconds between the sandbox's webhook retries (Big Interview waits 10 minutes).",
    )
    return parser.parse_args(argv)


def ensure_virtualenv(argv: list[str]) -> None:
    """Re-run this script inside ``.venv-demo``, creating and filling it first if needed."""
    python = VENV / "bin" / "python"
    if not python.exists():
        print(f"Creating {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    print("Installing django-biginterview with the example extra ...", flush=True)
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "-e", f"{ROOT}[example]"], check=True
    )
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), "--no-install", *argv])


def procfile_commands() -> dict[str, list[str]]:
    """The Procfile's commands by process type (``name: command`` lines)."""
    commands = {}
    for line in (HERE / "Procfile").read_text().splitlines():
        name, separator, command = line.partition(":")
        if separator and not line.lstrip().startswith("#"):
            commands[name.strip()] = shlex.split(command)
    return commands


def wait_until_up(url: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # any HTTP answer means the server is up
        except OSError:
            time.sleep(0.3)
    raise SystemExit(f"{url} did not come up within {timeout:.0f} s")


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if not args.no_install:
        ensure_virtualenv(argv)

    data_dir = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    portal_url = f"http://127.0.0.1:{args.port}"
    sandbox_url = f"http://127.0.0.1:{args.sandbox_port}"
    env = {
        **os.environ,
        # The Procfile's commands (``celery``) come from this interpreter's environment.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "BIGINTERVIEW_BASE_URL": sandbox_url,
        "DATABASE_URL": os.environ.get("DATABASE_URL", f"sqlite:///{data_dir / 'db.sqlite3'}"),
        "CELERY_BROKER_FOLDER": str(data_dir / "broker"),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    manage = [sys.executable, str(HERE / "manage.py")]

    def run(*command: str) -> None:
        subprocess.run([*manage, *command], cwd=HERE, env=env, check=True)

    run("migrate", "--no-input", "-v", "0")
    username, password, email, first, last = DEMO_USER
    admin_name, admin_password, admin_email = ADMIN_USER
    run(
        "shell",
        "-v",
        "0",
        "-c",
        (
            "from django.contrib.auth import get_user_model\n"
            "User = get_user_model()\n"
            f"u, _ = User.objects.get_or_create(username={username!r}, defaults=dict("
            f"email={email!r}, first_name={first!r}, last_name={last!r}))\n"
            f"u.set_password({password!r}); u.save()\n"
            f"a, _ = User.objects.get_or_create(username={admin_name!r}, defaults=dict("
            f"email={admin_email!r}, is_staff=True, is_superuser=True))\n"
            f"a.set_password({admin_password!r}); a.save()\n"
        ),
    )

    logs = data_dir / "logs"
    logs.mkdir(exist_ok=True)
    procfile = procfile_commands()
    commands = {
        "sandbox": [
            *manage,
            "biginterview_sandbox",
            "--port",
            str(args.sandbox_port),
            "--webhook-url",
            f"{portal_url}/biginterview/webhook/",
            "--webhook-retry-delay",
            str(args.webhook_retry_delay),
            "--state-file",
            str(data_dir / "sandbox-state.json"),
        ],
        "worker": procfile["worker"],
        "beat": procfile["beat"],
        "portal": [*manage, "runserver", f"127.0.0.1:{args.port}", "--noreload"],
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}

    def stop_all(*_: object) -> None:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    signal.signal(signal.SIGTERM, lambda *_: (stop_all(), sys.exit(0)))
    try:
        for name, command in commands.items():
            log = (logs / f"{name}.log").open("ab")
            processes[name] = subprocess.Popen(
                command, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT
            )
        wait_until_up(f"{sandbox_url}/sso/login")
        wait_until_up(f"{portal_url}/login/")
        print(
            f"\nThe portal is running at {portal_url}/\n"
            f"  demo user: {username} / {password}\n"
            f"  admin:     {admin_name} / {admin_password}  ({portal_url}/admin/)\n"
            f"  sandbox (fake Big Interview): {sandbox_url}/\n"
            f"  logs: {logs}\n"
            "Press Ctrl-C to stop everything.\n",
            flush=True,
        )
        while True:
            for name, process in processes.items():
                if process.poll() is not None:
                    print(f"{name} exited with {process.returncode}; see {logs}/{name}.log")
                    return 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        print("\nStopping ...")
        return 0
    finally:
        stop_all()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
