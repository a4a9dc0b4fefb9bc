"""``manage.py biginterview_sandbox``: run the local fake Big Interview until Ctrl-C.

Every option defaults to what ``settings.BIGINTERVIEW`` implies, so in a project set up
for the sandbox a bare ``manage.py biginterview_sandbox`` just works: the port comes from
``BASE_URL``, the API key is ``API_KEY``, the webhook key the first of ``WEBHOOK_KEYS``,
and webhooks go to ``http://127.0.0.1:8000`` + the app's webhook URL.
"""

from __future__ import annotations

import signal
import threading
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import NoReverseMatch, reverse

from django_biginterview.sandbox import DEFAULT_API_KEY, DEFAULT_WEBHOOK_KEY, Sandbox

DEFAULT_PORT = 8765
DEFAULT_APP_ORIGIN = "http://127.0.0.1:8000"
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1", "0.0.0.0"}  # noqa: S104 - names, not a bind


def _config() -> dict[str, Any]:
    return dict(getattr(settings, "BIGINTERVIEW", None) or {})


def base_url_is_local(config: dict[str, Any]) -> bool:
    host = urlsplit(str(config.get("BASE_URL") or "")).hostname
    return host in LOCAL_HOSTS


def default_port(config: dict[str, Any]) -> int:
    """The port of a local ``BASE_URL`` (the app will call it there), else 8765."""
    if base_url_is_local(config):
        port = urlsplit(str(config["BASE_URL"])).port
        if port:
            return port
    return DEFAULT_PORT


def default_webhook_key(config: dict[str, Any]) -> str:
    keys = config.get("WEBHOOK_KEYS") or []
    if isinstance(keys, str):
        keys = [keys]
    return next((key for key in keys if key), DEFAULT_WEBHOOK_KEY)


def default_webhook_url() -> str | None:
    try:
        return DEFAULT_APP_ORIGIN + reverse("biginterview:webhook")
    except NoReverseMatch:
        return None


def mask(key: str) -> str:
    return "****" + key[-4:] if len(key) > 8 else "****"


class Command(BaseCommand):
    help = "Run the Big Interview sandbox (a local fake of the partner API, SSO and webhooks)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Interface to bind.")
        parser.add_argument(
            "--port", type=int, default=None, help="Port (default: BASE_URL's, else 8765)."
        )
        parser.add_argument("--api-key", default=None, help="Accepted API key (default: API_KEY).")
        parser.add_argument(
            "--webhook-url",
            default=None,
            help="Where to POST webhooks; '' disables (default: the app's webhook on :8000).",
        )
        parser.add_argument(
            "--webhook-key", default=None, help="Webhook key (default: first of WEBHOOK_KEYS)."
        )
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
        parser.add_argument(
            "--latency", type=float, default=0.0, help="Seconds added to every API call."
        )
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

    def handle(self, *args: Any, **options: Any) -> None:
        config = _config()
        local = base_url_is_local(config) or not config.get("BASE_URL")
        webhook_keys = config.get("WEBHOOK_KEYS") or []
        if isinstance(webhook_keys, str):
            webhook_keys = [webhook_keys]
        configured_keys = {config.get("API_KEY"), *webhook_keys}
        api_key = options["api_key"] or config.get("API_KEY") or DEFAULT_API_KEY
        webhook_key = options["webhook_key"] or default_webhook_key(config)
        webhook_url = options["webhook_url"]
        if webhook_url is None:
            webhook_url = default_webhook_url()
        if options["webhook_attempts"] < 1:
            raise CommandError("--webhook-attempts must be at least 1")
        delays = (options["webhook_retry_delay"],) * (options["webhook_attempts"] - 1)
        try:
            sandbox = Sandbox(
                api_keys=[api_key],
                webhook_url=webhook_url or None,
                webhook_key=webhook_key,
                token_lifetime=timedelta(seconds=options["token_lifetime"]),
                webhook_retry_delays=delays,
                state_file=options["state_file"],
            )
            sandbox.set_faults(
                latency=options["latency"],
                error_rate=options["error_rate"],
                error_status=options["error_status"],
                rate_limit=options["rate_limit"],
                retry_after=options["retry_after"],
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        port = options["port"] if options["port"] is not None else default_port(config)
        try:
            sandbox.start(host=options["host"], port=port)
        except OSError as exc:
            raise CommandError(f"cannot listen on {options['host']}:{port}: {exc}") from exc

        def shown(key: str) -> str:
            # The host project's own keys stay hidden unless it points at a local sandbox.
            return key if local or key not in configured_keys else mask(key)

        self.stdout.write(f"Big Interview sandbox running at {sandbox.url}")
        self.stdout.write(f"  API key:      {shown(api_key)}")
        self.stdout.write(f"  webhooks to:  {webhook_url or '(disabled)'}")
        if webhook_url:
            self.stdout.write(f"  webhook key:  {shown(webhook_key)}")
        if options["state_file"]:
            self.stdout.write(f"  state file:   {options['state_file']}")
        faults = {name: value for name, value in sandbox.faults().items() if value}
        if set(faults) - {"error_status", "retry_after"}:
            self.stdout.write(f"  faults:       {faults}")
        self.stdout.write("Press Ctrl-C to stop.")
        self.stdout.flush()
        self._serve_until_interrupted(sandbox)
        self.stdout.write("Sandbox stopped.")

    def _serve_until_interrupted(self, sandbox: Sandbox) -> None:
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
