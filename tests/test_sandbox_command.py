"""``manage.py biginterview_sandbox``: defaults from settings, masking, a real run."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from io import StringIO
from typing import Any

import pytest
import requests
from django.core.management import CommandError, call_command

from django_biginterview.management.commands import biginterview_sandbox as command
from django_biginterview.sandbox import DEFAULT_API_KEY, DEFAULT_WEBHOOK_KEY, cli
from tests.support.paths import ROOT


def test_port_comes_from_a_local_base_url_only() -> None:
    assert command.default_port({"BASE_URL": "http://127.0.0.1:8799"}) == 8799
    assert command.default_port({"BASE_URL": "http://localhost:9000/"}) == 9000
    assert command.default_port({"BASE_URL": "https://acme.biginterview.com"}) == 8765
    assert command.default_port({"BASE_URL": "https://acme.biginterview.com:8443"}) == 8765
    assert command.default_port({}) == 8765


def test_webhook_defaults_follow_the_app() -> None:
    assert command.default_webhook_url() == "http://127.0.0.1:8000/biginterview/webhook/"
    assert command.default_webhook_key({"WEBHOOK_KEYS": ["first", "second"]}) == "first"
    assert command.default_webhook_key({"WEBHOOK_KEYS": "only"}) == "only"
    assert command.default_webhook_key({}) == DEFAULT_WEBHOOK_KEY


def run_command(
    *arguments: str,
    env: dict[str, str] | None = None,
    program: tuple[str, ...] = ("-m", "django", "biginterview_sandbox"),
) -> tuple[subprocess.Popen[str], list[str]]:
    """Start the command; return the process and its output up to "Press Ctrl-C"."""
    process = subprocess.Popen(
        [sys.executable, *program, *arguments],
        cwd=ROOT,
        env={
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "DJANGO_SETTINGS_MODULE": "tests.settings",
            **(env or {}),
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    lines: list[str] = []
    assert process.stdout is not None
    for line in process.stdout:
        lines.append(line.rstrip("\n"))
        if line.startswith("Press Ctrl-C"):
            break
    else:
        pytest.fail("the command exited early:\n" + "\n".join(lines))
    return process, lines


def stop(process: subprocess.Popen[str], sig: int = signal.SIGINT) -> str:
    process.send_signal(sig)
    output, _ = process.communicate(timeout=10)
    return output


def test_command_serves_until_ctrl_c_and_masks_the_projects_real_keys(tmp_path: Any) -> None:
    state_file = tmp_path / "state.json"
    process, lines = run_command(
        "--port", "0", "--state-file", str(state_file), "--webhook-url", ""
    )
    try:
        url = lines[0].rsplit(" ", 1)[1]
        assert lines[0].startswith("Big Interview sandbox running at http://127.0.0.1:")
        # tests.settings point BASE_URL at a non-local host: its key is never printed.
        assert "935d85189822bf96c28c4fa79d3d8f31" not in "\n".join(lines)
        assert "API key:      ****8f31" in lines[1]
        assert "(disabled)" in lines[2]
        response = requests.post(
            url + "/api/users/abc123",
            data={"first_name": "Ada", "last_name": "L", "email": "a@b.c"},
            headers={"Authorization": "935d85189822bf96c28c4fa79d3d8f31"},
            timeout=5,
        )
        assert response.status_code == 201
    finally:
        output = stop(process)
    assert process.returncode == 0
    assert "Sandbox stopped." in output
    assert "abc123" in state_file.read_text()


def test_command_options_override_settings_and_sigterm_stops_it() -> None:
    process, lines = run_command(
        "--port",
        "0",
        "--api-key",
        "cli-key",
        "--webhook-url",
        "http://127.0.0.1:9/hook",
        "--webhook-key",
        "cli-webhook-key",
        "--error-rate",
        "1",
        "--error-status",
        "502",
    )
    try:
        url = lines[0].rsplit(" ", 1)[1]
        assert "API key:      cli-key" in lines[1]
        assert "webhook key:  cli-webhook-key" in lines[3]
        refused = requests.get(
            url + "/api/users/x/tracks", headers={"Authorization": "nope"}, timeout=5
        )
        failed = requests.get(
            url + "/api/users/x/tracks", headers={"Authorization": "cli-key"}, timeout=5
        )
        assert refused.status_code == 401
        assert failed.status_code == 502
    finally:
        output = stop(process, signal.SIGTERM)
    assert process.returncode == 0
    assert "Sandbox stopped." in output


def test_command_shows_keys_when_base_url_is_the_local_sandbox_and_sets_faults(
    settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "BASE_URL": "http://127.0.0.1:8799"}
    seen: dict[str, Any] = {}

    def serve_once(sandbox: Any) -> None:
        seen.update(port=sandbox.port, faults=sandbox.faults())
        sandbox.stop()

    monkeypatch.setattr(cli, "serve_until_interrupted", serve_once)
    out = StringIO()
    call_command(
        "biginterview_sandbox",
        "--port",
        "0",
        "--rate-limit",
        "--retry-after",
        "9",
        "--latency",
        "0.5",
        stdout=out,
    )

    text = out.getvalue()
    assert "API key:      935d85189822bf96c28c4fa79d3d8f31" in text
    assert "webhooks to:  http://127.0.0.1:8000/biginterview/webhook/" in text
    assert "webhook key:  webhook-key-current-0000000000000" in text
    assert "faults:" in text
    assert seen["faults"]["rate_limit"] is True
    assert seen["faults"]["retry_after"] == 9
    assert seen["faults"]["latency"] == 0.5
    assert "Sandbox stopped." in text


@pytest.mark.parametrize(
    ("arguments", "problem"),
    [
        (("--error-rate", "3"), "error_rate"),
        (("--webhook-attempts", "0"), "webhook-attempts"),
        (("--port", "99999"), "--port must be between 0 and 65535"),
        (("--webhook-url", "ftp://example.com/hook"), "--webhook-url must be an http(s) URL"),
        (("--api-key", ""), "--api-key cannot be empty"),
    ],
)
def test_bad_options_are_command_errors(arguments: tuple[str, ...], problem: str) -> None:
    with pytest.raises(CommandError, match=re.escape(problem)):
        call_command("biginterview_sandbox", *arguments, stdout=StringIO())


def test_several_api_keys_are_accepted_at_once_for_rotation() -> None:
    process, lines = run_command(
        "--port", "0", "--api-key", "old-key", "--api-key", "new-key", "--webhook-url", ""
    )
    try:
        url = lines[0].rsplit(" ", 1)[1]
        assert "API key:      old-key, new-key" in lines[1]
        statuses = [
            requests.post(
                url + "/api/users/anonymous", headers={"Authorization": key}, timeout=5
            ).status_code
            for key in ("old-key", "new-key", "other-key")
        ]
        assert statuses == [201, 201, 401]
    finally:
        stop(process)


def test_the_sandbox_runs_on_its_own_without_django() -> None:
    """``python -m django_biginterview.sandbox``: no settings module, its own defaults."""
    environment = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    process = subprocess.Popen(
        [sys.executable, "-m", "django_biginterview.sandbox", "--port", "0"],
        cwd=ROOT,
        env={**environment, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines = [process.stdout.readline().rstrip("\n") for _ in range(3)]
    try:
        assert lines[0].startswith("Big Interview sandbox running at http://127.0.0.1:"), lines
        url = lines[0].rsplit(" ", 1)[1]
        assert f"API key:      {DEFAULT_API_KEY}" in lines[1]
        assert "(disabled)" in lines[2]
        answer = requests.post(
            url + "/api/users/anonymous", headers={"Authorization": DEFAULT_API_KEY}, timeout=5
        )
        assert answer.status_code == 201
    finally:
        output = stop(process)
    assert process.returncode == 0, output
    assert "Sandbox stopped." in output
    assert "django" not in output.lower()


def test_the_standalone_sandbox_refuses_a_bad_port() -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "django_biginterview.sandbox", "--port", "99999"],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert completed.returncode == 2
    assert "--port must be between 0 and 65535" in completed.stderr
    assert "Traceback" not in completed.stderr
