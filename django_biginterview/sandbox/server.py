"""The sandbox's HTTP side: the partner API, SSO and the member area, on the stdlib server.

Routes (API calls need the raw API key in ``Authorization``):

- ``POST /api/users/anonymous`` · ``POST /api/users/{partner_id}`` (JSON or form body)
- ``GET /api/users/{partner_id}/tracks`` · ``GET /api/users/{partner_id}/interviews``
- ``GET /sso/login?token=…&redirect_to=…&return_url=…`` · ``GET|POST /sso/logout``
- ``/`` (landing page) and the member area under ``/members/`` (see ``pages.py``)
- ``GET|POST /_sandbox/faults`` — read or set fault injection (JSON, API key required)

Every API response is JSON; errors use the documented ``{"error": {"type", "message"}}``
body, except injected 5xx faults, which answer like a proxy would (an HTML page), because
a client must cope with that too.
"""

from __future__ import annotations

import hmac
import json
import logging
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from http.cookies import SimpleCookie
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, NamedTuple, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from . import pages
from .state import SandboxState, UnknownObject, ValidationFailed

logger = logging.getLogger("django_biginterview.sandbox")

MAX_BODY = 1024 * 1024
DEFAULT_LANDING = "/members/dashboard"
USER_PATH = re.compile(r"^/api/users/(?P<partner_id>[^/]+)$")
USER_LIST_PATH = re.compile(r"^/api/users/(?P<partner_id>[^/]+)/(?P<collection>tracks|interviews)$")


class CallRecord(NamedTuple):
    """One API call the sandbox answered (``path`` without the query string); ``time`` is
    when it arrived (``time.time()``), for rate measurements."""

    method: str
    path: str
    status: int
    time: float = 0.0


@dataclass
class Faults:
    """What goes wrong on API calls. ``rate_limit`` is ``True`` (every call) or a number
    of calls still to refuse; ``fail_next`` likewise forces ``error_status`` N times.
    ``error_retry_after`` adds a ``Retry-After`` to injected errors (a 503 during
    maintenance); by default they carry none, like most proxies' error pages."""

    latency: float = 0.0
    error_rate: float = 0.0
    error_status: int = 503
    rate_limit: bool | int = False
    retry_after: int = 1
    fail_next: int = 0
    error_retry_after: int | None = None
    _random: random.Random = field(default_factory=random.Random, repr=False)

    def as_dict(self) -> dict[str, Any]:
        return {
            "latency": self.latency,
            "error_rate": self.error_rate,
            "error_status": self.error_status,
            "rate_limit": self.rate_limit,
            "retry_after": self.retry_after,
            "fail_next": self.fail_next,
            "error_retry_after": self.error_retry_after,
        }


class SandboxBackend(Protocol):
    """What the HTTP side needs of the sandbox; ``service.Sandbox`` provides it. Declared
    here so this module never imports the service that starts it."""

    api_keys: list[str]
    anonymous_users: bool
    state: SandboxState

    def record_call(self, record: CallRecord) -> None: ...

    def take_fault(self) -> tuple[str, float, int, int | None] | None: ...

    @property
    def set_faults(self) -> Callable[..., None]:
        """``Sandbox.set_faults``, called with the fields of a ``/_sandbox/faults`` POST."""

    def faults(self) -> dict[str, Any]: ...


class SandboxHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], sandbox: SandboxBackend) -> None:
        self.sandbox = sandbox
        super().__init__(address, SandboxRequestHandler)


class ApiError(Exception):
    def __init__(self, status: int, error_type: str, message: str | dict[str, str]) -> None:
        super().__init__(error_type)
        self.status = status
        self.body = {"error": {"type": error_type, "message": message}}


class SandboxRequestHandler(BaseHTTPRequestHandler):
    server: SandboxHTTPServer
    server_version = "BigInterviewSandbox/1.0"
    protocol_version = "HTTP/1.1"
    # Headers and body leave in two writes; with Nagle on, keep-alive clients wait ~40 ms
    # for a delayed ACK on every response.
    disable_nagle_algorithm = True
    # A client that stops sending (a short body, an idle keep-alive connection) is cut
    # off after this many seconds instead of holding a thread forever.
    timeout = 30
    #: (method, path, arrival time) of the API call being answered, recorded on reply.
    _pending_call: tuple[str, str, float] | None = None

    # -- plumbing ------------------------------------------------------------------------

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # The path only: query strings carry SSO tokens, which never go to a log.
        route = urlsplit(self.path).path if isinstance(self.path, str) else "?"
        logger.debug("sandbox %s %s -> %s", self.command, route, code)

    def log_message(self, format: str, *args: Any) -> None:
        # Only the first argument (a status code for protocol errors): the others can
        # quote the raw request line, token included.
        logger.debug("sandbox protocol message: %s", args[0] if args else "")

    @property
    def sandbox(self) -> SandboxBackend:
        return self.server.sandbox

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_PATCH(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def do_HEAD(self) -> None:
        self._dispatch()

    def do_OPTIONS(self) -> None:
        self._dispatch()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Protocol errors (an unknown method, a malformed request line) in the error
        shape of the contract, not ``http.server``'s HTML page."""
        if code == HTTPStatus.NOT_IMPLEMENTED:  # a method no handler exists for
            code, error_type = HTTPStatus.METHOD_NOT_ALLOWED, "method_not_allowed"
        else:
            error_type = "invalid_request"
        self.close_connection = True
        body = json.dumps({"error": {"type": error_type, "message": HTTPStatus(code).phrase}})
        self.send_response(code)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD" and code >= 200 and code not in (204, 304):
            self.wfile.write(body.encode())

    def _dispatch(self) -> None:
        self._pending_call = None
        parts = urlsplit(self.path)
        self.route = parts.path
        self.query = {
            key: values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()
        }
        try:
            self.body = self._read_body()
        except ApiError as error:
            self.close_connection = True
            self._send_json(error.status, error.body)
            return
        if self.route.startswith("/api/") or self.route.startswith("/_sandbox/"):
            self._handle_api()
        else:
            self._handle_pages()

    def _read_body(self) -> bytes:
        try:
            if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
                return self._read_chunked_body()
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise ApiError(400, "invalid_request", "Invalid Content-Length") from None
            if length < 0:
                raise ApiError(400, "invalid_request", "Invalid Content-Length")
            if length > MAX_BODY:
                raise ApiError(413, "invalid_request", "Request body too large")
            body = self.rfile.read(length) if length > 0 else b""
        except TimeoutError:
            raise ApiError(408, "invalid_request", "The request body did not arrive") from None
        if len(body) < length:
            raise ApiError(400, "invalid_request", "The body is shorter than Content-Length")
        return body

    def _read_chunked_body(self) -> bytes:
        """A ``Transfer-Encoding: chunked`` body (HTTP/1.1, section 7.1 of RFC 9112)."""
        body = bytearray()
        while True:
            line = self.rfile.readline(1024)
            try:
                size = int(line.split(b";", 1)[0].strip(), 16)
            except ValueError:
                raise ApiError(400, "invalid_request", "Malformed chunked body") from None
            if size == 0:
                while self.rfile.readline(1024).strip():  # trailer fields, ignored
                    pass
                return bytes(body)
            if len(body) + size > MAX_BODY:
                raise ApiError(413, "invalid_request", "Request body too large")
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.read(2) != b"\r\n":
                raise ApiError(400, "invalid_request", "Malformed chunked body")
            body += chunk

    def _send(
        self, status: int, body: bytes, content_type: str, headers: dict[str, str] | None = None
    ) -> None:
        if self._pending_call is not None:
            # Record before answering: a client that got its response must find its call
            # in ``api_calls()`` already.
            method, route, arrived = self._pending_call
            self._pending_call = None
            self.sandbox.record_call(CallRecord(method, route, status, arrived))
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        body = json.dumps(payload).encode("utf-8")
        self._send(status, body, "application/json; charset=utf-8", headers)

    def _send_html(self, status: int, html: str, headers: dict[str, str] | None = None) -> None:
        self._send(status, html.encode("utf-8"), "text/html; charset=utf-8", headers)

    def _redirect(
        self, location: str, status: int = 302, headers: dict[str, str] | None = None
    ) -> None:
        self._send(
            status, b"", "text/plain; charset=utf-8", {"Location": location, **(headers or {})}
        )

    # -- API -----------------------------------------------------------------------------

    def _handle_api(self) -> None:
        if self.route.startswith("/api/"):  # the sandbox's own controls are not API calls
            self._pending_call = (self.command, self.route, time.time())
        try:
            self._api_response()
        except Exception:
            logger.exception("sandbox API handler crashed")
            self._send_json(500, {"error": {"type": "server_error", "message": "sandbox crashed"}})

    def _api_response(self) -> int:
        """Answer one API call; returns the status sent."""
        try:
            self._check_key()
            # Faults hit the partner API only, so /_sandbox/faults can always clear them.
            fault = self._injected_fault() if self.route.startswith("/api/") else None
            if fault is not None:
                return fault
            status, payload = self._route_api()
        except ApiError as error:
            self._send_json(error.status, error.body)
            return error.status
        self._send_json(status, payload)
        return status

    def _check_key(self) -> None:
        # Whitespace around a field value is not part of it (RFC 9110, section 5.5).
        supplied = (self.headers.get("Authorization") or "").strip(" \t")
        if not supplied:
            raise ApiError(
                401,
                "authentication_error",
                "Missing API key: send it raw in the Authorization header",
            )
        accepted = [
            key
            for key in self.sandbox.api_keys
            if hmac.compare_digest(supplied.encode(), key.encode())
        ]
        if not accepted:
            hint = (
                " (send the raw key, without 'Bearer')"
                if supplied.lower().startswith("bearer ")
                else ""
            )
            raise ApiError(401, "authentication_error", "Invalid API key" + hint)

    def _injected_fault(self) -> int | None:
        faults = self.sandbox.take_fault()
        if faults is None:
            return None
        kind, latency, status, retry_after = faults
        if latency:
            time.sleep(latency)
        if kind == "rate_limit":
            self._send_json(
                429,
                {"error": {"type": "rate_limit_error", "message": "Too many requests"}},
                {"Retry-After": str(retry_after)},
            )
            return 429
        if kind == "error":
            reason = (
                HTTPStatus(status).phrase if status in HTTPStatus._value2member_map_ else "Error"
            )
            headers = None if retry_after is None else {"Retry-After": str(retry_after)}
            self._send_html(
                status, f"<html><body><h1>{status} {reason}</h1></body></html>", headers
            )
            return status
        return None

    def _route_api(self) -> tuple[int, Any]:
        if self.route == "/_sandbox/faults":
            if self.command == "POST":
                self.sandbox.set_faults(**self._faults_arguments())
            elif self.command != "GET":
                raise ApiError(405, "method_not_allowed", "Use GET or POST")
            return 200, {"faults": self.sandbox.faults()}
        if self.route == "/api/users/anonymous":
            self._require_method("POST")
            if not self.sandbox.anonymous_users:
                raise ApiError(
                    403, "forbidden", "Anonymous users are not enabled for this organisation"
                )
            return 201, {"user": self.sandbox.state.create_anonymous()}
        match = USER_PATH.fullmatch(self.route)
        if match:
            self._require_method("POST")
            partner_id = unquote(match["partner_id"])
            try:
                user, created = self.sandbox.state.upsert_user(partner_id, self._parameters())
            except ValidationFailed as failure:
                raise ApiError(422, "validation_error", failure.errors) from None
            return (201 if created else 200), {"user": user}
        match = USER_LIST_PATH.fullmatch(self.route)
        if match:
            self._require_method("GET")
            partner_id = unquote(match["partner_id"])
            reader = (
                self.sandbox.state.tracks
                if match["collection"] == "tracks"
                else self.sandbox.state.interviews
            )
            try:
                return 200, {match["collection"]: reader(partner_id)}
            except UnknownObject:
                raise ApiError(404, "not_found", f"User {partner_id} not found") from None
        raise ApiError(404, "not_found", f"No API endpoint at {self.route}")

    def _require_method(self, method: str) -> None:
        if self.command != method:
            raise ApiError(405, "method_not_allowed", f"Use {method} for {self.route}")

    def _parameters(self) -> dict[str, Any]:
        """Parameters from a JSON body or form fields (the query string counts too)."""
        parameters: dict[str, Any] = dict(self.query)
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if not self.body:
            return parameters
        if not content_type and self.body.lstrip()[:1] == b"{":
            content_type = "application/json"  # a JSON body sent without its header
        if content_type == "application/json" or content_type.endswith("+json"):
            try:
                data = json.loads(self.body)
            except (ValueError, RecursionError):
                raise ApiError(400, "invalid_request", "The body is not valid JSON") from None
            if not isinstance(data, dict):
                raise ApiError(400, "invalid_request", "The JSON body must be an object")
            # Rails-style nesting ({"user": {...}}) is accepted like the flat form.
            if isinstance(data.get("user"), dict):
                data = {**data, **data["user"]}
            parameters.update(data)
        elif content_type in ("application/x-www-form-urlencoded", ""):
            form = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
            for key, values in form.items():
                match = re.fullmatch(r"user\[(\w+)\]", key)
                parameters[match[1] if match else key] = values[-1]
        else:
            raise ApiError(415, "invalid_request", f"Unsupported Content-Type {content_type!r}")
        return parameters

    def _faults_arguments(self) -> dict[str, Any]:
        try:
            data = json.loads(self.body or b"{}")
        except (ValueError, RecursionError):
            raise ApiError(400, "invalid_request", "The body is not valid JSON") from None
        allowed = {
            "latency",
            "error_rate",
            "error_status",
            "rate_limit",
            "retry_after",
            "fail_next",
            "error_retry_after",
        }
        if not isinstance(data, dict) or set(data) - allowed:
            raise ApiError(
                422, "validation_error", {"faults": f"allowed keys: {', '.join(sorted(allowed))}"}
            )
        return data

    # -- SSO and member area -------------------------------------------------------------

    @property
    def cookie_name(self) -> str:
        # Cookies ignore ports: two sandboxes on one host must not share a session.
        return f"bi_sandbox_session_{self.server.server_address[1]}"

    def _session_id(self) -> str | None:
        cookie = SimpleCookie(self.headers.get("Cookie") or "")
        morsel = cookie.get(self.cookie_name)
        return morsel.value if morsel else None

    def _form(self) -> dict[str, str]:
        form = parse_qs(self.body.decode("utf-8", "replace"), keep_blank_values=True)
        return {key: values[-1] for key, values in form.items()}

    def _handle_pages(self) -> None:
        try:
            self._page_response()
        except Exception:
            logger.exception("sandbox page handler crashed")
            self._send_html(
                500, pages.error_page("Sandbox error", "The sandbox failed on this page.")
            )

    def _page_response(self) -> None:
        route = self.route
        if route == "/":
            self._send_html(200, pages.landing_page())
        elif route == "/sso/login" and self.command == "GET":
            self._sso_login()
        elif route == "/sso/logout" and self.command in ("GET", "POST"):
            self._sso_logout()
        elif route.startswith("/members"):
            self._member_area()
        elif route == "/favicon.ico":
            self._send(404, b"", "text/plain")
        else:
            self._send_html(404, pages.error_page("Not found", f"Nothing at {route}."))

    def _sso_login(self) -> None:
        token = self.query.get("token", "")
        if not token:
            self._send_html(
                401, pages.error_page("Login failed", "This login link has no token.", "sso-error")
            )
            return
        partner_id, reason = self.sandbox.state.user_for_token(token)
        if partner_id is None:
            message = (
                "This login link has expired. Ask the site that sent you here for a new one."
                if reason == "expired"
                else "This login link is invalid."
            )
            self._send_html(401, pages.error_page("Login failed", message, "sso-error"))
            return
        redirect_to = self.query.get("redirect_to") or DEFAULT_LANDING
        if not is_local_path(redirect_to):
            self._send_html(
                400,
                pages.error_page(
                    "Bad redirect_to",
                    "redirect_to must be a path inside Big Interview.",
                    "sso-error",
                ),
            )
            return
        return_url = self.query.get("return_url") or None
        if return_url and urlsplit(return_url).scheme not in ("http", "https"):
            return_url = None
        session_id = self.sandbox.state.open_session(partner_id, return_url)
        cookie = f"{self.cookie_name}={session_id}; Path=/; HttpOnly; SameSite=Lax"
        self._redirect(redirect_to, headers={"Set-Cookie": cookie})

    def _sso_logout(self) -> None:
        session = self.sandbox.state.close_session(self._session_id())
        expired = f"{self.cookie_name}=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax"
        target = (session or {}).get("return_url") or "/"
        self._redirect(
            target, status=303 if self.command == "POST" else 302, headers={"Set-Cookie": expired}
        )

    def _member_area(self) -> None:
        session = self.sandbox.state.session(self._session_id())
        if session is None:
            self._send_html(401, pages.not_logged_in_page())
            return
        partner_id = session["partner_id"]
        state = self.sandbox.state
        route = self.route
        if self.command == "GET":
            # The header links back to the partner site the member came from.
            member = {**state.profile(partner_id), "return_url": session["return_url"]}
            if route in ("/members", "/members/", "/members/dashboard"):
                self._send_html(
                    200,
                    pages.dashboard_page(
                        member,
                        state.tracks(partner_id),
                        state.interviews(partner_id),
                        state.question_titles(),
                    ),
                )
                return
            if route == "/members/curriculum":
                chapter = self.query.get("chapter", "")
                self._send_html(
                    200,
                    pages.curriculum_page(member, state.tracks(partner_id), chapter),
                )
                return
            match = re.fullmatch(r"/members/mock_interviews/(\d+)(?:/review)?", route)
            if match:
                try:
                    interview = state.interview(partner_id, int(match[1]))
                except UnknownObject:
                    self._send_html(404, pages.error_page("Not found", "No such interview."))
                    return
                self._send_html(200, pages.interview_page(member, interview))
                return
            match = re.fullmatch(r"/members/mock_interviews/interview_info/(\d+)", route)
            if match:
                title = state.title_for_question_set(int(match[1]))
                if title is None:
                    self._send_html(404, pages.error_page("Not found", "No such question set."))
                    return
                self._send_html(200, pages.retake_page(member, title))
                return
        elif self.command == "POST":
            form = self._form()
            try:
                target = self._member_action(partner_id, route, form)
            except (UnknownObject, ValueError):
                self._send_html(
                    404, pages.error_page("Not found", "That item does not exist (any more).")
                )
                return
            if target is not None:
                self._redirect(target, status=303)
                return
        self._send_html(404, pages.error_page("Not found", f"Nothing at {route}."))

    def _member_action(self, partner_id: str, route: str, form: dict[str, str]) -> str | None:
        """Apply a member-area form; returns where to go next (``None``: no such action)."""
        state = self.sandbox.state
        back = form.get("next") if is_local_path(form.get("next", "")) else DEFAULT_LANDING
        if route == "/members/tracks/complete-step":
            completed = form.get("completed", "1") not in ("0", "false", "")
            state.complete_step(
                partner_id, form.get("track", ""), int(form.get("step", "0")), completed
            )
            return back
        if route == "/members/mock_interviews/start":
            interview = state.start_interview(partner_id, form.get("title") or "Top 10 Questions")
            return (
                back if form.get("next") else f"/members/mock_interviews/{interview['id']}/review"
            )
        match = re.fullmatch(r"/members/mock_interviews/(\d+)/(complete|delete)", route)
        if match:
            interview_id = int(match[1])
            if match[2] == "complete":
                state.update_interview(partner_id, interview_id, completed=True)
                return (
                    back if form.get("next") else f"/members/mock_interviews/{interview_id}/review"
                )
            state.delete_interview(partner_id, interview_id)
            return DEFAULT_LANDING
        return None


def is_local_path(value: str) -> bool:
    """A path on this host: starts with one ``/``, no scheme, no host, no backslash tricks."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return False
    parts = urlsplit(value)
    return not parts.scheme and not parts.netloc


def serve(
    sandbox: SandboxBackend, host: str, port: int
) -> tuple[SandboxHTTPServer, threading.Thread]:
    """Bind and serve in a daemon thread; the caller shuts the server down."""
    server = SandboxHTTPServer((host, port), sandbox)
    # shutdown() waits for the next poll: a short one lets test suites stop sandboxes fast.
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
    )
    thread.name = f"biginterview-sandbox-{server.server_address[1]}"
    thread.start()
    return server, thread
