"""HTTP in: translate requests into domain calls (``sso.py``, ``webhooks.py``,
``status.py``) and back.

No business rules live here.
"""

from __future__ import annotations

import hmac
import logging
from typing import Any

from django.conf import settings as django_settings
from django.contrib.auth.decorators import login_not_required
from django.contrib.auth.views import redirect_to_login
from django.db import DatabaseError, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.shortcuts import render
from django.utils.cache import add_never_cache_headers
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_variables
from django.views.decorators.http import require_safe
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework.exceptions import MethodNotAllowed
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import AllowAny
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from . import publisher, sso, status, webhooks
from .adapter import MissingProfileData, get_adapter
from .api.schema import webhook_schema
from .api_types import SSOToken
from .client import BigInterviewClient
from .conf import app_settings
from .exceptions import (
    APIError,
    AttributesRefused,
    AuthenticationError,
    Forbidden,
    InvalidSetting,
    LimitReached,
    WebhookValidationError,
)

# --- SSO (practice) ------------------------------------------------------------------

sso_logger = logging.getLogger("django_biginterview.sso")

#: Session key holding the pk of an anonymous visitor's ``Account``.
ANONYMOUS_ACCOUNT_SESSION_KEY = "biginterview_anonymous_account"

#: Session key set by :func:`offer_anonymous_practice`: this visitor saw one of the site's
#: own pages offer the practice link.
PRACTICE_OFFERED_SESSION_KEY = "biginterview_practice_offered"


def offer_anonymous_practice(request: HttpRequest) -> None:
    """Let this logged-out visitor's practice clicks get an anonymous account.

    Call it from the views of pages that show the practice link; the template tags
    ``biginterview_practice_link`` and ``biginterview_practice_url`` call it themselves
    (when ``request`` is in the context). It marks the visitor's session, creating the
    session if needed, so the click that follows comes with a session that existed
    before it. Nothing happens when ``ANONYMOUS_USERS`` is off, the visitor is logged in
    or has no session middleware, or the mark is already there (no write then).
    """
    if not app_settings.ANONYMOUS_USERS:
        return
    user = getattr(request, "user", None)
    session = getattr(request, "session", None)
    if session is None or (user is not None and user.is_authenticated):
        return
    if not session.get(PRACTICE_OFFERED_SESSION_KEY):
        session[PRACTICE_OFFERED_SESSION_KEY] = True


def _may_practise_anonymously(request: HttpRequest) -> bool:
    """Whether this logged-out click may get an anonymous account: its session existed
    before the click and was marked by :func:`offer_anonymous_practice`, and the browser
    does not call the request cross-site (``Sec-Fetch-Site``). So a request without a
    cookie (a bot, a cross-site ``<img>`` under ``SameSite=Lax``) or started by another
    site creates nothing, and nothing is written for it."""
    if request.headers.get("Sec-Fetch-Site") == "cross-site":
        return False
    return request.session.session_key is not None and bool(
        request.session.get(PRACTICE_OFFERED_SESSION_KEY)
    )


class _LoginRedirect(HttpResponseRedirect):
    """The redirect into Big Interview. Its ``Location`` logs the visitor in, so its repr
    (shown for the ``response`` of middleware frames in error reports) leaves it out."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} status_code={self.status_code}>"


@login_not_required
@transaction.non_atomic_requests
@sensitive_variables()
def practice(request: HttpRequest) -> HttpResponse:
    """Send the visitor to Big Interview, logged into their own account.

    Marked ``login_not_required`` so ``LoginRequiredMiddleware`` lets anonymous visitors
    through when ``ANONYMOUS_USERS`` is on; otherwise it sends them to ``LOGIN_URL``
    itself, as it does a logged-out visitor whose click may not get an anonymous account
    (:func:`_may_practise_anonymously`). Not wrapped in ``ATOMIC_REQUESTS``: the account
    row lock must be released as soon as the token is stored, not at the end of the
    request. Every API call of the click shares one ``SSO_TIME_BUDGET``, so a slow Big
    Interview ends in the "unavailable" page before a proxy's gateway timeout.

    ``sensitive_variables()``: with ``DEBUG`` off, error reports show no local variable
    of this view or of anything it calls (the ORM's SQL parameters and fetched rows, the
    client's response bodies), as any of them may hold a token or the API key.
    """
    anonymous = not request.user.is_authenticated
    if anonymous and not (app_settings.ANONYMOUS_USERS and _may_practise_anonymously(request)):
        return redirect_to_login(request.get_full_path(), django_settings.LOGIN_URL)

    redirect_to = sso.clean_redirect_to(request.GET.get("redirect_to"))
    client = sso.sso_client()
    try:
        with client.deadline(app_settings.SSO_TIME_BUDGET):
            if anonymous:
                token = _anonymous_token(request, client)
            else:
                token = sso.practice_token_for_user(request.user, client)
    except MissingProfileData as exc:
        # 409: the request is fine, the user's profile is not (yet) usable.
        return render(
            request, "biginterview/missing_profile.html", {"missing": exc.missing}, status=409
        )
    except AttributesRefused as exc:
        sso_logger.warning("Big Interview refused the profile: %s", exc.field_errors or exc)
        return render(
            request,
            "biginterview/profile_refused.html",
            {"field_errors": exc.field_errors},
            status=409,
        )
    except APIError as exc:
        return _unavailable(request, exc)

    login_url = sso.build_login_url(
        token,
        redirect_to=redirect_to or sso.default_redirect_to(),
        return_url=_return_url(request),
    )
    response = _LoginRedirect(login_url)
    # The Location carries a login token: no cache may keep it.
    add_never_cache_headers(response)
    return response


def _anonymous_token(request: HttpRequest, client: BigInterviewClient) -> SSOToken:
    session_key = request.session.session_key
    assert session_key is not None  # _may_practise_anonymously
    visitor = sso.AnonymousVisitor.for_session(
        session_key, get_adapter().anonymous_rate_key(request)
    )
    previous = request.session.get(ANONYMOUS_ACCOUNT_SESSION_KEY)
    account, token = sso.get_anonymous_token(previous, client, visitor)
    if account.pk != previous:
        request.session[ANONYMOUS_ACCOUNT_SESSION_KEY] = account.pk
    return token


def _return_url(request: HttpRequest) -> str | None:
    """The configured ``RETURN_URL`` (made absolute if it is a path); never from the query."""
    value = app_settings.RETURN_URL
    if not value:
        return None
    value = str(value)
    return request.build_absolute_uri(value) if value.startswith("/") else value


def _unavailable(request: HttpRequest, exc: APIError) -> HttpResponse:
    if isinstance(exc, AuthenticationError):
        sso_logger.error(
            "Big Interview rejected the API key (HTTP %s); practice links fail until "
            "BIGINTERVIEW['API_KEY'] is fixed.",
            exc.status,
        )
    elif isinstance(exc, Forbidden):
        sso_logger.error(
            "Big Interview refused the request (HTTP 403). For anonymous visitors, Big "
            "Interview must enable anonymous users for the organisation (or turn "
            "BIGINTERVIEW['ANONYMOUS_USERS'] off)."
        )
    elif isinstance(exc, LimitReached):
        sso_logger.warning("Practice click refused by a limit of this site: %s", exc)
    else:
        sso_logger.warning("Big Interview is unavailable for SSO: %s", exc)
    response = render(request, "biginterview/unavailable.html", status=503)
    if exc.retry_after is not None:  # a 429, or a 503 announcing the end of maintenance
        response["Retry-After"] = str(int(exc.retry_after) + 1)
    add_never_cache_headers(response)
    # Logged above at the right level; stop django.request from adding an ERROR (and an
    # admin email) for every click during an outage. Django reads this flag itself.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response


# --- Webhook receiver ----------------------------------------------------------------


webhook_logger = logging.getLogger("django_biginterview.webhooks")

_WEBHOOK_ERROR_TYPES = {
    400: "invalid_request",
    401: "unauthorized",
    405: "method_not_allowed",
    411: "length_required",
    413: "payload_too_large",
    415: "unsupported_media_type",
    503: "unavailable",
}

# The two success bodies, encoded once rather than on every delivery.
_STORED = b'{"status": "stored"}'
_DUPLICATE = b'{"status": "duplicate"}'

#: Seconds a 503 asks the sender to wait (Big Interview itself retries every 10 minutes).
WEBHOOK_RETRY_AFTER = 60


def _webhook_error_body(status: int, message: str) -> dict[str, dict[str, str]]:
    """The spec's error shape: ``{"error": {"type": ..., "message": ...}}``."""
    return {"error": {"type": _WEBHOOK_ERROR_TYPES.get(status, "error"), "message": message}}


def _webhook_error(status: int, message: str) -> JsonResponse:
    response = JsonResponse(_webhook_error_body(status, message), status=status)
    if status == 503:
        response["Retry-After"] = str(WEBHOOK_RETRY_AFTER)
    return response


def _check_content_type(request: HttpRequest) -> None:
    """JSON only: ``application/json``, with or without ``charset`` (which must be UTF-8)."""
    if request.content_type != "application/json":
        raise WebhookValidationError("Content-Type must be application/json", status_code=415)
    charset = ((request.content_params or {}).get("charset") or "utf-8").strip("\"' ").lower()
    if charset not in ("utf-8", "utf8"):
        raise WebhookValidationError("JSON must be encoded as UTF-8", status_code=415)


def _read_body(request: HttpRequest, limit: int) -> bytes:
    """Read at most ``limit`` bytes: refuse a larger ``Content-Length`` before reading, and
    never read more than ``limit + 1`` bytes whatever the header says.

    A body without ``Content-Length`` (chunked) is read whole under ASGI, and under WSGI
    from the server's stream when the server says the stream ends with the body
    (``wsgi.input_terminated``: gunicorn, for one). Other WSGI servers cannot tell it from
    an empty body, so it gets a 411 (Big Interview retries) rather than a misleading 400.
    """
    declared = request.META.get("CONTENT_LENGTH")
    if declared:
        try:
            length = int(declared)
        except ValueError:
            raise WebhookValidationError("invalid Content-Length") from None
        if length > limit:
            raise WebhookValidationError(f"body larger than {limit} bytes", status_code=413)
        body = request.read(limit + 1)
    elif "wsgi.input" not in request.META:  # ASGI: the server has read the whole body
        body = request.read(limit + 1)
    elif request.META.get("wsgi.input_terminated"):
        body = request.META["wsgi.input"].read(limit + 1)
    elif "chunked" in request.META.get("HTTP_TRANSFER_ENCODING", "").lower():
        raise WebhookValidationError(
            "this server cannot read a chunked body: send Content-Length", status_code=411
        )
    else:
        body = b""  # no Content-Length and no chunks: no body
    if len(body) > limit:
        raise WebhookValidationError(f"body larger than {limit} bytes", status_code=413)
    return body


class _JSONOnly(BaseContentNegotiation):
    """The receiver reads raw JSON and answers JSON whatever ``Accept`` says (Big Interview
    sends ``*/*; q=0.5, application/xml``): skip DRF's per-request negotiation."""

    def select_parser(self, request: Request, parsers: Any) -> None:
        return None

    def select_renderer(
        self, request: Request, renderers: Any, format_suffix: str | None = None
    ) -> tuple[Any, str]:
        return renderers[0], renderers[0].media_type


@extend_schema_view(post=webhook_schema)
class WebhookView(APIView):
    """Receives Big Interview's notifications: check the key, store once, answer 200.

    Nothing else happens in the request: processing runs in a Celery task enqueued on
    commit with the event's primary key, so a slow mirror never times out the sender
    (which waits 30 s for the 200, then re-sends 10 minutes later). Exempt from CSRF
    (DRF's ``as_view``), from ``LoginRequiredMiddleware`` and from ``ATOMIC_REQUESTS`` (the
    200 must mean the row is committed, and the enqueue must see it). DRF's parsers and
    authentication are not used: the raw body is size-checked and validated by
    ``webhooks.parse_delivery``, and the key is checked by ``webhooks.authenticate``
    (constant time, several keys).

    Status codes: 200 stored or already stored; 400 malformed; 401 missing or wrong key;
    405 not POST; 411 a chunked body the server cannot read; 413 too large; 415 not JSON;
    503 no key configured or the database is unavailable (both make Big Interview retry
    later). Rejections are logged with their reason, never with the key. The event id is
    handed to ``publisher.enqueue_webhook_event`` (on commit, sent by a background
    publisher: see ``publisher.WebhookPublisher``).
    """

    authentication_classes = []
    permission_classes = [AllowAny]
    parser_classes = []
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _JSONOnly
    throttle_classes = []
    http_method_names = ["post"]

    @classmethod
    def as_view(cls, **initkwargs: Any) -> Any:
        view = super().as_view(**initkwargs)
        return login_not_required(transaction.non_atomic_requests(view))

    def handle_exception(self, exc: Exception) -> Response:
        """A 405 in the receiver's own error shape (DRF adds ``Allow: POST``)."""
        if isinstance(exc, MethodNotAllowed):
            body = _webhook_error_body(405, "deliveries are POSTed")
            return Response(body, status=405)
        return super().handle_exception(exc)

    def perform_authentication(self, request: Request) -> None:
        """No DRF authentication here (the webhook key is checked in ``post``): skip
        resolving ``request.user`` on every delivery."""

    def post(self, request: Request, *args: Any, **kwargs: Any) -> HttpResponse:
        http_request: HttpRequest = request._request
        try:
            webhooks.authenticate(http_request.META.get("HTTP_AUTHORIZATION"))
            _check_content_type(http_request)
            body = _read_body(http_request, app_settings.WEBHOOK_MAX_BODY_SIZE)
            delivery = webhooks.parse_delivery(body)
            stored = webhooks.store_delivery(delivery)
        except WebhookValidationError as exc:
            webhook_logger.log(
                logging.ERROR if exc.status_code >= 500 else logging.WARNING,
                "Webhook delivery rejected (%s): %s [from %s]",
                exc.status_code,
                exc.reason,
                http_request.META.get("REMOTE_ADDR") or "unknown address",
            )
            return _webhook_error(exc.status_code, exc.reason)
        except DatabaseError:
            webhook_logger.exception("Webhook delivery not stored: database unavailable")
            return _webhook_error(503, "temporarily unable to store the delivery")
        if stored.created:
            publisher.enqueue_webhook_event(stored.event_id)
        return HttpResponse(
            _STORED if stored.created else _DUPLICATE, content_type="application/json"
        )


@extend_schema(exclude=True)
class WebhookSlashlessView(WebhookView):
    """The receiver at ``webhook`` without the trailing slash (a destination URL registered
    that way); left out of the OpenAPI schema, which documents ``webhook/``."""


# --- Health (monitoring) --------------------------------------------------------------

health_logger = logging.getLogger("django_biginterview.health")


def _may_read_health(request: HttpRequest) -> bool:
    """``Authorization: Bearer <HEALTH_TOKEN>`` (compared in constant time), or a session
    of staff who may see the status page (``status.may_view``)."""
    try:
        token = app_settings.HEALTH_TOKEN
    except InvalidSetting:  # biginterview.E013 reports it; no token works meanwhile
        token = None
    scheme, _space, supplied = request.headers.get("Authorization", "").partition(" ")
    if (
        token
        and scheme.lower() == "bearer"
        and hmac.compare_digest(supplied.strip().encode(), token.encode())
    ):
        return True
    return hasattr(request, "user") and status.may_view(request)


def _health_document(snapshot: status.Snapshot) -> dict[str, Any]:
    """The snapshot as JSON: counts, times and codes, never a partner id or a key."""
    run = snapshot.last_run
    return {
        "status": "ok" if snapshot.healthy else "fail",
        "checked_at": snapshot.taken_at,
        "problems": [{"code": p.code, "message": p.message} for p in snapshot.problems],
        "configuration": [
            {"id": m.id, "level": m.level, "message": m.message, "hint": m.hint}
            for m in snapshot.configuration
        ],
        "webhooks": {
            "last_received_at": snapshot.last_webhook_at,
            "pending": snapshot.pending_events,
            "failed": snapshot.failed_events,
            "failed_without_retry_recently": snapshot.exhausted_events,
        },
        "sync": {
            "last_run": None
            if run is None
            else {
                "id": run.pk,
                "state": run.state,
                "started_at": run.started_at,
                "finished_at": run.finished_at,
                "duration_seconds": round(run.duration_seconds, 1),
                "accounts_total": run.total,
                "accounts_synced": run.synced,
                "accounts_failed": run.failed,
                "accounts_skipped": run.skipped,
                "accounts_lost": run.lost,
            }
        },
        "worker": {
            "last_seen_at": snapshot.worker_seen_at,
            "store_reachable": snapshot.store_reachable,
        },
    }


@login_not_required
@transaction.non_atomic_requests
@never_cache
@require_safe
def health(request: HttpRequest) -> JsonResponse:
    """The app's health for uptime monitors: ``status.take_snapshot`` as JSON, 200 when
    nothing needs a person, 503 (with the problems' codes) when something does, or when
    the database cannot be read.

    Only for ``Authorization: Bearer <HEALTH_TOKEN>`` or a staff session that may see the
    status page: 401 otherwise (403 for a signed-in user without that permission).
    ``login_not_required``, so a monitor gets through ``LoginRequiredMiddleware``; not
    wrapped in ``ATOMIC_REQUESTS``, as it only reads.
    """
    if not _may_read_health(request):
        signed_in = bool(getattr(getattr(request, "user", None), "is_authenticated", False))
        response = JsonResponse(
            {"error": "Send Authorization: Bearer <HEALTH_TOKEN>, or sign in as staff."},
            status=403 if signed_in else 401,
        )
        if not signed_in:
            response["WWW-Authenticate"] = 'Bearer realm="biginterview-health"'
        return response
    try:
        snapshot = status.take_snapshot()
    except DatabaseError:
        health_logger.exception("Health check: the database cannot be read")
        problem = {"code": "database_unavailable", "message": "The database cannot be read."}
        response = JsonResponse({"status": "fail", "problems": [problem]}, status=503)
    else:
        response = JsonResponse(_health_document(snapshot), status=200 if snapshot.healthy else 503)
    # A 503 here is the monitor's answer, not a server error: keep django.request from
    # logging an ERROR (and mailing the admins) on every poll while something is wrong.
    response._has_been_logged = True  # type: ignore[attr-defined]
    return response
