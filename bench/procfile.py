"""The example project's Procfile, read and run the way honcho and foreman run it.

One copy for the benchmarks (``bench/*.py``) and the fault drills (``tests/drills``), so
both run the Procfile's own lines: :func:`procfile_command` splits a line as sh does,
:class:`ProcfileProcess` runs it from ``example_project/`` with this virtualenv's ``bin``
first on ``PATH`` (:func:`portal_environment`), and :class:`PrivateRedis` is the broker
and ``REDIS_URL`` a bench gives it (never the shared Redis on 6379).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "example_project"
PROCFILE = EXAMPLE / "Procfile"

#: Variables the portal reads; a developer's shell must not change what is measured.
PORTAL_VARIABLES = ("BIGINTERVIEW_", "DJANGO_", "CELERY_", "REDIS_URL", "BI_")

# ``$NAME``, ``${NAME}`` and ``${NAME:-default}``: what the Procfile's lines use of sh.
_VARIABLE = re.compile(r"\$\{(?P<braced>\w+)(?::-(?P<default>[^}]*))?\}|\$(?P<bare>\w+)")

#: The line a Celery worker logs once it consumes.
WORKER_READY = re.compile(r"celery@\S+ ready\.")


def procfile_lines(path: Path = PROCFILE) -> dict[str, str]:
    """``{process type: command}`` of a Procfile (``name: command`` lines; ``#`` comments)."""
    lines: dict[str, str] = {}
    for line in path.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, command = line.partition(":")
        lines[name.strip()] = command.strip()
    return lines


def procfile_command(name: str, env: Mapping[str, str], path: Path = PROCFILE) -> list[str]:
    """The argv of one process type, split like sh splits it, variables taken from ``env``
    (an unset or empty ``${NAME:-default}`` gives the default, as in sh)."""

    def expand(match: re.Match[str]) -> str:
        variable = match["braced"] or match["bare"]
        return env.get(variable) or match["default"] or ""

    return [_VARIABLE.sub(expand, word) for word in shlex.split(procfile_lines(path)[name])]


def portal_environment(**variables: str) -> dict[str, str]:
    """The environment of a Procfile process: this shell's, less anything the portal
    reads, with this virtualenv's ``bin`` first on ``PATH`` and the repository on
    ``PYTHONPATH`` (for a settings module under ``bench/`` or ``tests/``), plus
    ``variables`` (``DATABASE_URL``, ``CELERY_BROKER_URL``, ...)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(PORTAL_VARIABLES)}
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
        DJANGO_DEBUG="0",
    )
    env.update(variables)
    return env


class ProcfileProcess:
    """One Procfile process type running exactly as its line says; output to ``log_path``."""

    def __init__(self, name: str, env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = procfile_command(name, env)
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv, cwd=EXAMPLE, env=dict(env), stdout=log, stderr=subprocess.STDOUT
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, pattern: re.Pattern[str] = WORKER_READY, timeout: float = 60) -> None:
        """Wait for ``pattern`` in the log; exit with the log's tail if it never comes."""
        deadline = time.monotonic() + timeout
        while not pattern.search(self.log()):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"{self.name} did not start:\n{self.log()[-3000:]}")
            time.sleep(0.1)

    def children(self) -> list[int]:
        """PIDs of its direct children (a prefork worker's pool processes)."""
        pids: set[int] = set()
        for path in Path(f"/proc/{self.pid}/task").glob("*/children"):
            with contextlib.suppress(OSError):
                pids.update(int(pid) for pid in path.read_text().split())
        return sorted(pids)

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (a warm shutdown); SIGKILL it and its children if that takes too long."""
        children = {pid: _cmdline(pid) for pid in self.children()}
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        for pid, cmdline in children.items():
            if cmdline and _cmdline(pid) == cmdline:  # still that child, not a reused PID
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A ``redis-server`` of the bench's own on a free loopback port, no persistence;
    stopped by its PID."""

    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", str(workdir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise SystemExit(f"redis-server did not start on port {self.port}") from None
                time.sleep(0.05)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)
