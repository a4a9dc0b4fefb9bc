#!/usr/bin/env python3
"""Run the whole demo on one machine: ``python3 example_project/demo.py``.

It re-runs itself inside a virtualenv (``.venv-demo`` at the repository root) holding the
package and the example extra, migrates a SQLite database, creates a demo user and an
admin (printing their credentials, which the portal's landing page shows too), then starts
the Big Interview sandbox (webhooks pointed at the portal, logout returning to it), the
Procfile's Celery worker and beat (kombu's filesystem broker: no server needed) and the
portal (``runserver``, which serves the static files, unlike the Procfile's gunicorn),
prints the URL and waits. Ctrl-C stops everything it started.

The virtualenv is filled only when it is missing or what it was filled from changed
(``pyproject.toml`` or the install command): later starts need no package index.

Everything the demo writes (database, broker folder, beat schedule, sandbox state, logs)
is in its data folder; delete the folder to start afresh.

Options: ``--port`` (portal, 8000), ``--sandbox-port`` (8765), ``--data-dir`` (default
``example_project/.demo``), ``--no-install`` (use the current interpreter as is; the
end-to-end test runs the demo this way).

``demo.py [options] manage ARGS...`` runs ``manage.py ARGS...`` with the environment the
demo gives its processes (same data folder, broker, sandbox URL and keys; pass the same
options as the demo), e.g. ``python3 example_project/demo.py manage biginterview_sync --all``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import venv
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
VENV = ROOT / ".venv-demo"
#: The files that decide what the virtualenv holds, besides :data:`INSTALL_ARGS`.
INSTALL_SOURCES = (ROOT / "pyproject.toml",)
#: What the virtualenv's Python runs to fill it.
INSTALL_ARGS = ("-m", "pip", "install", "-q", "-e", f"{ROOT}[example]")
#: Written into the virtualenv after a successful install: the fingerprint it matched.
INSTALL_RECORD = "demo-install.sha256"

DEMO_USER = ("demo", "demo-password-1", "demo@example.com", "Dana", "Demo")
ADMIN_USER = ("admin", "admin-password-1", "admin@example.com")


def split_manage(argv: Sequence[str]) -> tuple[list[str], list[str] | None]:
    """The demo's own options, and the arguments after ``manage`` (``None`` without it)."""
    if "manage" not in argv:
        return list(argv), None
    at = list(argv).index("manage")
    return list(argv[:at]), list(argv[at + 1 :])


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """The demo's options (those in front of ``manage``)."""
    parser = argparse.ArgumentParser(
        usage="%(prog)s [options] [manage ARGS...]",
        description=__doc__.splitlines()[0],
        epilog=(
            "manage ARGS...: run manage.py ARGS... with the demo's environment (its data "
            "folder, broker, sandbox URL and keys); give the same options as the demo."
        ),
    )
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


def install_fingerprint(sources: Iterable[Path], install_args: Sequence[str]) -> str:
    """A hash of everything that decides what the virtualenv holds: the install command
    and the contents of the files it reads."""
    digest = hashlib.sha256(json.dumps(list(install_args)).encode())
    for source in sources:
        digest.update(f"\0{source.name}\0".encode())
        digest.update(source.read_bytes())
    return digest.hexdigest()


def install_reason(venv_dir: Path, fingerprint: str) -> str | None:
    """Why the virtualenv must be (re)filled, or ``None`` when its recorded install
    matches ``fingerprint``."""
    python = venv_dir / "bin" / "python"
    if not python.exists():
        return f"{python} does not exist"
    record = venv_dir / INSTALL_RECORD
    if not record.exists():
        return f"{venv_dir} has no complete install"
    if record.read_text().strip() != fingerprint:
        return "the dependencies changed"
    return None


def ensure_virtualenv(argv: Sequence[str], venv_dir: Path = VENV) -> None:
    """Re-run this script inside ``venv_dir``, creating and filling it first if needed.

    The install is recorded (its fingerprint) only once pip succeeded, so an interrupted
    or failed install is retried on the next start.
    """
    python = venv_dir / "bin" / "python"
    fingerprint = install_fingerprint(INSTALL_SOURCES, INSTALL_ARGS)
    reason = install_reason(venv_dir, fingerprint)
    if reason is not None:
        if not python.exists():
            print(f"Creating {venv_dir} ...", flush=True)
            venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
        print(f"Installing django-biginterview with the example extra ({reason}) ...", flush=True)
        subprocess.run([str(python), *INSTALL_ARGS], check=True)
        (venv_dir / INSTALL_RECORD).write_text(fingerprint + "\n")
    os.execv(str(python), [str(python), str(Path(__file__).resolve()), "--no-install", *argv])


def demo_environment(
    args: argparse.Namespace, base: Mapping[str, str] = os.environ
) -> dict[str, str]:
    """The environment of every process of the demo, and of ``demo.py manage``: ``base``
    with the demo's database, broker, sandbox, return URL and demo logins."""
    data_dir = args.data_dir.resolve()
    return {
        **base,
        # The Procfile's commands (``celery``) come from this interpreter's environment.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{base.get('PATH', '')}",
        "PYTHONUNBUFFERED": "1",
        "DJANGO_SETTINGS_MODULE": "example_project.settings",
        "BIGINTERVIEW_BASE_URL": f"http://127.0.0.1:{args.sandbox_port}",
        # Logging out of the sandbox comes back to the portal.
        "BIGINTERVIEW_RETURN_URL": f"http://127.0.0.1:{args.port}/",
        "DATABASE_URL": base.get("DATABASE_URL", f"sqlite:///{data_dir / 'db.sqlite3'}"),
        "CELERY_BROKER_FOLDER": str(data_dir / "broker"),
        "DJANGO_CACHE_FOLDER": str(data_dir / "cache"),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Demo mode: the portal's landing page shows these logins.
        "DJANGO_DEMO_LOGINS": json.dumps(
            [
                {"role": "Demo user", "username": DEMO_USER[0], "password": DEMO_USER[1]},
                {"role": "Admin", "username": ADMIN_USER[0], "password": ADMIN_USER[1]},
            ]
        ),
    }


def procfile_commands() -> dict[str, list[str]]:
    """The Procfile's commands by process type (``name: command`` lines)."""
    commands = {}
    for line in (HERE / "Procfile").read_text().splitlines():
        name, separator, command = line.partition(":")
        if separator and not line.lstrip().startswith("#"):
            commands[name.strip()] = shlex.split(command)
    return commands


def with_option(command: list[str], option: str, value: str) -> list[str]:
    """``command`` with the value after ``option`` replaced by ``value``."""
    at = command.index(option) + 1
    return [*command[:at], value, *command[at + 1 :]]


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
    options, manage_args = split_manage(argv)
    args = parse_args(options)
    if not args.no_install:
        ensure_virtualenv(argv)

    data_dir = args.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    env = demo_environment(args)
    manage = [sys.executable, str(HERE / "manage.py")]
    if manage_args is not None:
        # Replaces this process: signals and the exit status are manage.py's own.
        os.execve(sys.executable, [*manage, *manage_args], env)

    portal_url = f"http://127.0.0.1:{args.port}"
    sandbox_url = env["BIGINTERVIEW_BASE_URL"]

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
        # The Procfile's beat, with its schedule file in the data folder.
        "beat": with_option(procfile["beat"], "--schedule", str(data_dir / "celerybeat-schedule")),
        "portal": [*manage, "runserver", f"127.0.0.1:{args.port}", "--noreload"],
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}

    def stop_all() -> None:
        for process in processes.values():
            if process.poll() is None:
                process.terminate()
        for process in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()

    def stop_and_exit(*_: object) -> None:
        stop_all()
        sys.exit(0)

    signal.signal(signal.SIGTERM, stop_and_exit)
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
            f"  data (delete it to start afresh): {data_dir}\n"
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
