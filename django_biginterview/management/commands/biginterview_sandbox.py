"""``manage.py biginterview_sandbox``: run the local fake Big Interview until Ctrl-C.

Every option defaults to what ``settings.BIGINTERVIEW`` implies, so in a project set up
for the sandbox a bare ``manage.py biginterview_sandbox`` just works: the port comes from
``BASE_URL``, the API key is ``API_KEY``, the webhook key the first of ``WEBHOOK_KEYS``,
and webhooks go to ``http://127.0.0.1:8000`` + the app's webhook URL.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import NoReverseMatch, reverse

from django_biginterview.sandbox import DEFAULT_API_KEY, DEFAULT_WEBHOOK_KEY, cli
from django_biginterview.sandbox.cli import DEFAULT_PORT

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
        cli.add_arguments(parser)

    def handle(self, *args: Any, **options: Any) -> None:
        config = _config()
        local = base_url_is_local(config) or not config.get("BASE_URL")
        webhook_keys = config.get("WEBHOOK_KEYS") or []
        if isinstance(webhook_keys, str):
            webhook_keys = [webhook_keys]
        configured_keys = {config.get("API_KEY"), *webhook_keys}
        api_keys = options["api_key"] or [config.get("API_KEY") or DEFAULT_API_KEY]
        webhook_key = options["webhook_key"] or default_webhook_key(config)
        webhook_url = options["webhook_url"]
        if webhook_url is None:
            webhook_url = default_webhook_url() or ""
        port = options["port"] if options["port"] is not None else default_port(config)
        try:
            sandbox = cli.build_sandbox(
                {**options, "port": port},
                api_keys=api_keys,
                webhook_key=webhook_key,
                webhook_url=webhook_url,
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        try:
            sandbox.start(host=options["host"], port=port)
        except OSError as exc:
            raise CommandError(f"cannot listen on {options['host']}:{port}: {exc}") from exc

        def shown(key: str) -> str:
            # The host project's own keys stay hidden unless it points at a local sandbox.
            return key if local or key not in configured_keys else mask(key)

        banner = cli.describe(
            sandbox,
            api_keys=api_keys,
            webhook_url=webhook_url,
            webhook_key=webhook_key,
            state_file=options["state_file"],
            shown=shown,
        )
        self.stdout.write("\n".join(banner))
        self.stdout.flush()
        cli.serve_until_interrupted(sandbox)
        self.stdout.write("Sandbox stopped.")
