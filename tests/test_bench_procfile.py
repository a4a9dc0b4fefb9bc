"""The benches and the fault drills run the Procfile's lines through one parser and one
process runner (``bench/procfile.py``), in an environment the developer's shell cannot
change."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

import bench.procfile
import tests.support.procfile


def test_the_drills_use_the_benches_procfile_parser_and_runner() -> None:
    for name in ("EXAMPLE", "PROCFILE", "procfile_command", "procfile_lines", "free_port"):
        assert getattr(tests.support.procfile, name) is getattr(bench.procfile, name)
    assert issubclass(tests.support.procfile.ProcfileProcess, bench.procfile.ProcfileProcess)


def test_the_benches_worker_is_the_procfiles_worker_line() -> None:
    line = bench.procfile.procfile_lines()["worker"]
    assert bench.procfile.procfile_command("worker", {}) == line.split()


def test_a_procfile_process_sees_no_portal_variable_of_the_shell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BIGINTERVIEW_BASE_URL", "https://elsewhere.example")
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
    env = bench.procfile.portal_environment(REDIS_URL="redis://127.0.0.1:7000/0")
    assert "BIGINTERVIEW_BASE_URL" not in env
    assert "CELERY_BROKER_URL" not in env
    assert env["REDIS_URL"] == "redis://127.0.0.1:7000/0"
    assert env["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert env["DJANGO_DEBUG"] == "0"
