"""``Sandbox``: a running fake Big Interview (state + HTTP server + webhook sender)."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Sequence
from datetime import timedelta
from typing import Any

from .delivery import DeliveryRecord, WebhookSender
from .server import CallRecord, Faults, SandboxHTTPServer, serve
from .state import SandboxState

DEFAULT_API_KEY = "sandbox-api-key-0000000000000000"
DEFAULT_WEBHOOK_KEY = "sandbox-webhook-key-000000000000"
DEFAULT_RETRY_DELAYS = (600.0, 600.0, 600.0, 600.0, 600.0)


class Sandbox:
    """A local stand-in for one Big Interview organisation, on a real HTTP server.

    Build it, ``start()`` it, point the app's ``BASE_URL`` at ``sb.url``. The Python
    methods change the same state the HTTP API and the member area use, and send the
    same webhooks, so a test can play "the user did something on Big Interview".
    """

    def __init__(
        self,
        api_keys: Iterable[str] | str = (DEFAULT_API_KEY,),
        webhook_url: str | None = None,
        webhook_key: str | None = None,
        token_lifetime: timedelta | float = timedelta(hours=48),
        webhook_retry_delays: Sequence[float] = DEFAULT_RETRY_DELAYS,
        state_file: str | os.PathLike[str] | None = None,
        *,
        webhook_timeout: float = 30.0,
        anonymous_users: bool = True,
        anonymous_lifetime: timedelta = timedelta(hours=24),
    ) -> None:
        self.api_keys = (
            [api_keys] if isinstance(api_keys, str) else [key for key in api_keys if key]
        )
        if not self.api_keys:
            raise ValueError("the sandbox needs at least one API key")
        self.webhook_url = webhook_url
        # A URL without a key still gets the sandbox's default key: the real service
        # never sends an unauthenticated notification.
        self.webhook_key = webhook_key
        self.anonymous_users = anonymous_users
        if not isinstance(token_lifetime, timedelta):
            token_lifetime = timedelta(seconds=float(token_lifetime))
        self._sender = WebhookSender(self._webhook_target, webhook_retry_delays, webhook_timeout)
        self._notifications: list[dict[str, Any]] = []
        self.state = SandboxState(
            token_lifetime=token_lifetime,
            anonymous_lifetime=anonymous_lifetime,
            state_file=state_file,
            notify=self._notify,
        )
        self._calls: list[CallRecord] = []
        self._calls_lock = threading.Lock()
        self._faults = Faults()
        self._faults_lock = threading.Lock()
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        where = self.url if self._server else "not started"
        return f"<Sandbox {where}>"

    # -- lifecycle -----------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> Sandbox:
        """Serve on ``host:port`` (``0``: a free port) in background threads; returns self."""
        if self._server is not None:
            raise RuntimeError("this sandbox is already running")
        self._sender.start()
        self._server, self._thread = serve(self, host, port)
        return self

    def stop(self) -> None:
        """Stop serving and sending. Safe to call twice."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self._sender.stop()

    def __enter__(self) -> Sandbox:
        return self if self._server else self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the sandbox is not started")
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The origin to use as ``BASE_URL``, e.g. ``http://127.0.0.1:54321``."""
        if self._server is None:
            raise RuntimeError("the sandbox is not started")
        host = str(self._server.server_address[0])
        if host in ("0.0.0.0", "::", ""):  # noqa: S104 - naming the wildcard, not binding it
            host = "127.0.0.1"
        if ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}"

    @property
    def api_key(self) -> str:
        return self.api_keys[0]

    def sso_url(self, partner_id: str, **params: str) -> str:
        """A login URL for the user's current token (``redirect_to``, ``return_url``)."""
        from urllib.parse import urlencode

        user = self.get_user(partner_id)
        if user is None:
            raise LookupError(f"no sandbox user with partner_id {partner_id!r}")
        return f"{self.url}/sso/login?" + urlencode({"token": user["token"], **params})

    # -- state ---------------------------------------------------------------------------

    def create_user(
        self,
        partner_id: str,
        first_name: str = "Ada",
        last_name: str = "Lovelace",
        email: str = "ada@example.com",
    ) -> dict[str, Any]:
        """Create the user like the API does (an existing user only gets a new token)."""
        self.state.upsert_user(
            partner_id, {"first_name": first_name, "last_name": last_name, "email": email}
        )
        user = self.state.get_user(partner_id)
        assert user is not None
        return user

    def get_user(self, partner_id: str) -> dict[str, Any] | None:
        return self.state.get_user(partner_id)

    def expire_token(self, partner_id: str) -> None:
        self.state.expire_token(partner_id)

    def start_interview(self, partner_id: str, title: str = "Top 10 Questions") -> dict[str, Any]:
        return self.state.start_interview(partner_id, title)

    def complete_interview(self, partner_id: str, interview_id: int) -> dict[str, Any]:
        return self.state.update_interview(partner_id, interview_id, completed=True)

    def update_interview(self, partner_id: str, interview_id: int, **fields: Any) -> dict[str, Any]:
        return self.state.update_interview(partner_id, interview_id, **fields)

    def delete_interview(self, partner_id: str, interview_id: int) -> None:
        self.state.delete_interview(partner_id, interview_id)

    def complete_step(self, partner_id: str, track_title: str, step: int) -> dict[str, Any]:
        return self.state.complete_step(partner_id, track_title, step)

    def interviews(self, partner_id: str) -> list[dict[str, Any]]:
        return self.state.interviews(partner_id)

    def tracks(self, partner_id: str) -> list[dict[str, Any]]:
        return self.state.tracks(partner_id)

    # -- observation ---------------------------------------------------------------------

    def record_call(self, record: CallRecord) -> None:
        """Remember an API call the HTTP side answered (see :meth:`api_calls`)."""
        with self._calls_lock:
            self._calls.append(record)

    def api_calls(
        self, method: str | None = None, path_prefix: str | None = None
    ) -> list[CallRecord]:
        """API calls answered so far (faulted ones included), oldest first."""
        with self._calls_lock:
            return [
                call
                for call in self._calls
                if (method is None or call.method == method.upper())
                and (path_prefix is None or call.path.startswith(path_prefix))
            ]

    def reset_calls(self) -> None:
        with self._calls_lock:
            self._calls.clear()

    @property
    def deliveries(self) -> list[DeliveryRecord]:
        """Every webhook delivery attempt so far, in the order they were made."""
        return self._sender.snapshot()

    @property
    def notifications(self) -> list[dict[str, Any]]:
        """Every notification generated (``{"webhook": {...}}``), in event order."""
        with self.state.lock:
            return list(self._notifications)

    def wait_for_deliveries(
        self, count: int, timeout: float = 10.0, *, succeeded: bool = False
    ) -> bool:
        """Wait until ``count`` delivery attempts (or successful deliveries) are recorded."""
        if succeeded:
            return self._sender.wait_for(
                lambda records: sum(r.succeeded for r in records) >= count, timeout
            )
        return self._sender.wait_for(lambda records: len(records) >= count, timeout)

    def redeliver(self, notification_id: str) -> None:
        """Send a past notification again, as a fresh first attempt (duplicate testing)."""
        with self.state.lock:
            payload = next(
                (p for p in self._notifications if p["webhook"]["id"] == notification_id), None
            )
        if payload is None:
            raise LookupError(f"no notification {notification_id!r}")
        if self.webhook_url:
            self._sender.enqueue(payload)

    def _notify(self, payload: dict[str, Any]) -> None:
        # Called under the state lock, so notifications queue in the order of the changes.
        self._notifications.append(payload)
        if self.webhook_url:
            self._sender.enqueue(payload)

    def _webhook_target(self) -> tuple[str | None, str | None]:
        return self.webhook_url, self.webhook_key or DEFAULT_WEBHOOK_KEY

    # -- faults --------------------------------------------------------------------------

    def set_faults(
        self,
        latency: float = 0.0,
        error_rate: float = 0.0,
        error_status: int = 503,
        rate_limit: bool | int = False,
        retry_after: int = 1,
        fail_next: int = 0,
        error_retry_after: int | None = None,
    ) -> None:
        """Make API calls slow (``latency`` s), fail (``error_rate`` share, or the next
        ``fail_next`` calls, with ``error_status`` and, if ``error_retry_after`` is given,
        that ``Retry-After``), or answer 429 with ``Retry-After`` (``rate_limit=True`` for
        every call, or a number of calls)."""
        if not 0.0 <= float(error_rate) <= 1.0:
            raise ValueError("error_rate is a share between 0 and 1")
        if (
            float(latency) < 0
            or int(retry_after) < 0
            or int(fail_next) < 0
            or (error_retry_after is not None and int(error_retry_after) < 0)
        ):
            raise ValueError(
                "latency, retry_after, fail_next and error_retry_after cannot be negative"
            )
        if not 400 <= int(error_status) <= 599:
            raise ValueError("error_status must be an HTTP error status")
        with self._faults_lock:
            self._faults = Faults(
                latency=float(latency),
                error_rate=float(error_rate),
                error_status=int(error_status),
                rate_limit=rate_limit if isinstance(rate_limit, bool) else int(rate_limit),
                retry_after=int(retry_after),
                fail_next=int(fail_next),
                error_retry_after=None if error_retry_after is None else int(error_retry_after),
            )

    def clear_faults(self) -> None:
        with self._faults_lock:
            self._faults = Faults()

    def faults(self) -> dict[str, Any]:
        with self._faults_lock:
            return self._faults.as_dict()

    def take_fault(self) -> tuple[str, float, int, int | None] | None:
        """Decide the fault (if any) for one API call: (kind, latency, status, retry_after),
        where ``retry_after`` is the ``Retry-After`` to send (``None``: no header)."""
        with self._faults_lock:
            faults = self._faults
            kind = ""
            if faults.rate_limit is True:
                kind = "rate_limit"
            elif faults.rate_limit and not isinstance(faults.rate_limit, bool):
                faults.rate_limit -= 1
                kind = "rate_limit"
            elif faults.fail_next:
                faults.fail_next -= 1
                kind = "error"
            elif faults.error_rate and faults._random.random() < faults.error_rate:
                kind = "error"
            if not kind and not faults.latency:
                return None
            retry_after = faults.error_retry_after if kind == "error" else faults.retry_after
            return kind, faults.latency, faults.error_status, retry_after
