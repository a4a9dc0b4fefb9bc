"""The sandbox's command line, shared by ``python -m django_biginterview.sandbox`` (no
Django needed) and ``manage.py biginterview_sandbox`` (defaults from the settings)."""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable, Mapping, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from .service import DEFAULT_API_KEY, DEFAULT_WEBHOOK_KEY, Sandbox

DEFAULT_PORT = 8765


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options both entry points take; key, URL and port default to ``None`` so each
    entry point fills in its own defaults."""
    parser.add_argument("--host", default="127.0.0.1", help="Interface to bind.")
    parser.add_argument("--port", type=int, default=None, help="Port to listen on.")
    parser.add_argument(
        "--api-key",
        action="append",
        default=None,
        help="Accepted API key; repeat it to accept several at once (key rotation).",
    )
    parser.add_argument(
        "--webhook-url", default=None, help="Where to POST webhooks; '' disables them."
    )
    parser.add_argument("--webhook-key", default=None, help="Key sent in Authorization.")
    parser.add_argument(
        "--state-file", default=None, help="Keep the state in this JSON file across restarts."
    )
    parser.add_argument(
        "--token-lifetime",
        type=float,
        default=48 * 3600,
        help="SSO token lifetime in seconds (default 48 h).",
    )
    parser.add_argument(
        "--webhook-retry-delay",
        type=float,
        default=600.0,
        help="Seconds between webhook attempts (default 600).",
    )
    parser.add_argument(
        "--webhook-attempts", type=int, default=6, help="Attempts per webhook (default 6)."
    )
    parser.add_argument("--latency", type=float, default=0.0, help="Seconds added to every call.")
    parser.add_argument(
        "--error-rate", type=float, default=0.0, help="Share of API calls that fail (0-1)."
    )
    parser.add_argument(
        "--error-status", type=int, default=503, help="Status of failed calls (default 503)."
    )
    parser.add_argument(
        "--rate-limit", action="store_true", help="Answer every API call 429 (Retry-After)."
    )
    parser.add_argument(
        "--retry-after", type=int, default=1, help="Retry-After seconds of a 429 (default 1)."
    )


def build_sandbox(
    options: Mapping[str, Any], *, api_keys: Sequence[str], webhook_key: str, webhook_url: str
) -> Sandbox:
    """A configured, not yet started sandbox; ``ValueError`` names a bad option."""
    port = options.get("port")
    if port is not None and not 0 <= port <= 65535:
        raise ValueError("--port must be between 0 and 65535")
    if webhook_url:
        parts = urlsplit(webhook_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("--webhook-url must be an http(s) URL, or '' to disable webhooks")
    if options["webhook_attempts"] < 1:
        raise ValueError("--webhook-attempts must be at least 1")
    if not all(api_keys):
        raise ValueError("--api-key cannot be empty")
    sandbox = Sandbox(
        api_keys=list(api_keys),
        webhook_url=webhook_url or None,
        webhook_key=webhook_key,
        token_lifetime=timedelta(seconds=options["token_lifetime"]),
        webhook_retry_delays=(options["webhook_retry_delay"],) * (options["webhook_attempts"] - 1),
        state_file=options["state_file"],
    )
    sandbox.set_faults(
        latency=options["latency"],
        error_rate=options["error_rate"],
        error_status=options["error_status"],
        rate_limit=options["rate_limit"],
        retry_after=options["retry_after"],
    )
    return sandbox


def describe(
    sandbox: Sandbox,
    *,
    api_keys: Sequence[str],
    webhook_url: str,
    webhook_key: str,
    state_file: str | None,
    shown: Callable[[str], str] = lambda key: key,
) -> list[str]:
    """The banner printed once the sandbox listens (keys through ``shown``)."""
    lines = [
        f"Big Interview sandbox running at {sandbox.url}",
        f"  API key:      {', '.join(shown(key) for key in api_keys)}",
        f"  webhooks to:  {webhook_url or '(disabled)'}",
    ]
    if webhook_url:
        lines.append(f"  webhook key:  {shown(webhook_key)}")
    if state_file:
        lines.append(f"  state file:   {state_file}")
    faults = {name: value for name, value in sandbox.faults().items() if value}
    if set(faults) - {"error_status", "retry_after"}:
        lines.append(f"  faults:       {faults}")
    lines.append("Press Ctrl-C to stop.")
    return lines


def serve_until_interrupted(sandbox: Sandbox) -> None:
    """Block until Ctrl-C or SIGTERM, then stop the sandbox."""
    stop = threading.Event()
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        sandbox.stop()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m django_biginterview.sandbox``: the sandbox on its own, with its default
    keys and no webhooks unless ``--webhook-url`` is given."""
    parser = argparse.ArgumentParser(
        prog="python -m django_biginterview.sandbox",
        description="Run the Big Interview sandbox (a local fake of the partner API, SSO "
        "and webhooks).",
    )
    add_arguments(parser)
    options = vars(parser.parse_args(argv))
    api_keys = options["api_key"] or [DEFAULT_API_KEY]
    webhook_key = options["webhook_key"] or DEFAULT_WEBHOOK_KEY
    webhook_url = options["webhook_url"] or ""
    try:
        sandbox = build_sandbox(
            options, api_keys=api_keys, webhook_key=webhook_key, webhook_url=webhook_url
        )
        port = DEFAULT_PORT if options["port"] is None else options["port"]
        sandbox.start(host=options["host"], port=port)
    except (ValueError, OSError) as exc:
        parser.error(str(exc))
    lines = describe(
        sandbox,
        api_keys=api_keys,
        webhook_url=webhook_url,
        webhook_key=webhook_key,
        state_file=options["state_file"],
    )
    print("\n".join(lines), flush=True)
    serve_until_interrupted(sandbox)
    print("Sandbox stopped.")
    return 0
