"""The example project's Procfile processes under pytest.

The one parser and runner is ``bench/procfile.py`` (the benches run standalone with it and
import nothing of the tests): the Procfile's lines split as sh splits them, run from
``example_project/`` in an environment the developer's shell cannot change. Here its
:class:`ProcfileProcess` fails the test, with the process's log, instead of exiting.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from bench import procfile as _bench
from bench.procfile import (
    EXAMPLE,
    PORTAL_VARIABLES,
    PROCFILE,
    WORKER_READY,
    free_port,
    portal_environment,
    procfile_command,
    procfile_lines,
)

__all__ = [
    "EXAMPLE",
    "PORTAL_VARIABLES",
    "PROCFILE",
    "WORKER_READY",
    "ProcfileProcess",
    "free_port",
    "portal_environment",
    "procfile_command",
    "procfile_lines",
]


class ProcfileProcess(_bench.ProcfileProcess):
    """One Procfile process type running as its line says (``bench/procfile.py``'s), with
    waits that fail the test."""

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def wait_until(self, predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
        """Wait for ``predicate``; fail with the log if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if not self.alive:
                pytest.fail(f"{self.name} exited ({self.process.returncode}):\n{self.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name}: no {what} within {timeout:.0f} s:\n{self.log()}")
            time.sleep(0.1)

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM (a warm shutdown); SIGKILL it and its children after ``timeout`` s."""
        super().stop(timeout)
