"""Big Interview webhooks, the request side, as plain functions: check, parse, store once.

The flow a delivery takes:

1. :func:`authenticate` compares the raw ``Authorization`` header with every configured
   key in constant time (several keys, for rotation).
2. :func:`parse_delivery` turns the body into a :class:`Delivery` or raises
   :class:`~django_biginterview.exceptions.WebhookValidationError` naming the problem.
3. :func:`store_delivery` inserts it once, tolerating the race of simultaneous retries
   (the notification ``id`` is unique in the database). Only a new row is announced.

This runs on every delivery, in the web process, so it stays lean. What happens to a
stored event later, in a worker, is ``webhook_processing.py``.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import DataError, IntegrityError, connections, router, transaction
from django.db.models import Field
from django.utils import timezone

from . import api_types as api
from .conf import SETTINGS_NAME, app_settings
from .exceptions import JSONTooDeep, UnexpectedResponse, WebhookValidationError
from .models import WebhookEvent
from .signals import webhook_received

logger = logging.getLogger(__name__)

Status = WebhookEvent.Status

INTERVIEW_CREATED = "interview.created"
INTERVIEW_UPDATED = "interview.updated"
INTERVIEW_DELETED = "interview.deleted"
KNOWN_EVENTS = frozenset({INTERVIEW_CREATED, INTERVIEW_UPDATED, INTERVIEW_DELETED})

#: Longest stored error text; enough for a message, short enough for the admin list.
MAX_ERROR_LENGTH = 2000
_INTEGER_ID = re.compile(r"[0-9]{1,18}")


# --- Authentication --------------------------------------------------------------------


def authenticate(authorization: str | None, keys: Iterable[str] | None = None) -> None:
    """Accept the delivery only if ``authorization`` equals one of the webhook keys.

    Big Interview sends its verification key raw in ``Authorization``. Every key is
    compared (no early exit) with :func:`hmac.compare_digest`, so timing tells nothing
    about which key or how much of it matched. Raises ``WebhookValidationError`` with
    status 503 when no key is configured (Big Interview retries later: nothing is lost
    while an operator fixes the settings) and 401 for a missing or wrong key. The
    messages never contain the key.
    """
    configured = app_settings.WEBHOOK_KEYS if keys is None else [k for k in keys if k]
    if not configured:
        raise WebhookValidationError(
            f"{SETTINGS_NAME}['WEBHOOK_KEYS'] is empty: cannot verify deliveries",
            status_code=503,
        )
    if not authorization:
        raise WebhookValidationError("missing webhook key", status_code=401)
    provided = authorization.encode("utf-8", "surrogateescape")
    matched = False
    for key in configured:
        matched |= hmac.compare_digest(provided, key.encode("utf-8"))
    if not matched:
        raise WebhookValidationError("wrong webhook key", status_code=401)


# --- Parsing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Delivery:
    """A delivery that passed validation. ``text`` is the body as received (JSON), or the
    payload serialised again when NUL characters had to be removed from it."""

    remote_id: str
    event_name: str
    partner_id: str
    api_type: str
    api_id: str
    payload: dict[str, Any] = field(repr=False)
    text: str = field(repr=False)


def _reject_constant(name: str) -> None:
    # Python's json accepts NaN and Infinity; JSON (and PostgreSQL's jsonb) does not.
    raise ValueError(f"invalid JSON constant {name}")


def _finite_float(text: str) -> float:
    # 1e400 is valid JSON but becomes inf, which no database stores as JSON.
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number {text[:40]} out of range")
    return value


def _required_string(webhook: Mapping[str, Any], name: str, max_length: int) -> str:
    if name not in webhook or webhook[name] is None:
        raise WebhookValidationError(f"webhook.{name} is required")
    value = webhook[name]
    if not isinstance(value, str):
        raise WebhookValidationError(f"webhook.{name} must be a string")
    if not value.strip():
        raise WebhookValidationError(f"webhook.{name} must not be blank")
    if len(value) > max_length:
        raise WebhookValidationError(f"webhook.{name} is longer than {max_length} characters")
    return value


def _api_id(webhook: Mapping[str, Any]) -> str:
    """``api_id`` is documented as an integer but sent as a string: accept both."""
    value = webhook.get("api_id")
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if isinstance(value, str) and len(value) <= 100:
        return value
    raise WebhookValidationError("webhook.api_id must be an integer or a string")


def parse_delivery(body: bytes) -> Delivery:
    """Validate one delivery body; raise ``WebhookValidationError`` (400) naming the fault.

    Checks what is needed to store and route the event: the ``webhook`` object, the
    notification ``id`` (a string, as documented), ``event_name`` and ``partner_id``, the
    types of ``api_id``/``api_type``/``api_object``, and for interview events the id or
    object they act on. An unknown ``event_name`` is *valid* here: it is stored and then
    ignored, so a new event type never makes Big Interview retry for an hour.

    A NUL character (which PostgreSQL cannot store) is removed wherever it is, and the
    removal logged with its place (never the value): refusing it would only make Big
    Interview retry until the event is lost. JSON nested more than
    ``client.MAX_JSON_DEPTH`` levels deep is refused, on every database alike.
    """
    if not body:
        raise WebhookValidationError("empty body")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise WebhookValidationError("body is not UTF-8") from None
    try:
        payload = json.loads(text, parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise WebhookValidationError("malformed JSON: nested too deeply") from None
    except ValueError as exc:
        raise WebhookValidationError(f"malformed JSON: {exc}") from None
    try:
        payload, nul_paths = api.clean_json(payload)
    except JSONTooDeep:
        raise WebhookValidationError(
            f"malformed JSON: nested too deeply (more than {api.MAX_JSON_DEPTH} levels)"
        ) from None
    if nul_paths:
        # Stored as text on PostgreSQL: the text must lose the NULs as the payload did.
        text = json.dumps(payload)
    if not isinstance(payload, dict):
        raise WebhookValidationError("body must be a JSON object")
    webhook = payload.get("webhook")
    if not isinstance(webhook, dict):
        raise WebhookValidationError("missing 'webhook' object")

    remote_id = _required_string(webhook, "id", 255)
    event_name = _required_string(webhook, "event_name", 100)
    partner_id = _required_string(webhook, "partner_id", 64)
    api_id = _api_id(webhook)
    api_type = webhook.get("api_type")
    if api_type is None:
        api_type = ""
    elif not isinstance(api_type, str) or len(api_type) > 100:
        raise WebhookValidationError("webhook.api_type must be a string or null")
    api_object = webhook.get("api_object")
    if api_object is not None and not isinstance(api_object, dict):
        raise WebhookValidationError("webhook.api_object must be an object or null")

    if event_name in (INTERVIEW_CREATED, INTERVIEW_UPDATED):
        if api_object is None:
            raise WebhookValidationError(f"webhook.api_object is required for {event_name}")
        # Parsed now as processing will parse it: a delivery it cannot use is refused
        # here (Big Interview sees the 400) rather than stored to fail on every retry.
        try:
            api.Interview.from_api(api_object)
        except UnexpectedResponse as exc:
            raise WebhookValidationError(f"webhook.api_object: {exc.description}") from None
    if event_name == INTERVIEW_DELETED and not _INTEGER_ID.fullmatch(api_id):
        raise WebhookValidationError(f"webhook.api_id must be an integer id for {event_name}")
    if nul_paths:
        logger.warning(
            "Removed NUL characters (U+0000) from webhook delivery %s at %s",
            remote_id,
            api.describe_paths(nul_paths),
        )

    return Delivery(
        remote_id=remote_id,
        event_name=event_name,
        partner_id=partner_id,
        api_type=api_type,
        api_id=api_id,
        payload=payload,
        text=text,
    )


# --- Storing ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StoredDelivery:
    """Where a delivery landed: ``created`` is False for a repeated notification id."""

    event_id: int
    created: bool


def _column(name: str) -> str:
    field = WebhookEvent._meta.get_field(name)
    assert isinstance(field, Field) and field.column
    return field.column


def _new_event(delivery: Delivery, received_at: datetime) -> WebhookEvent:
    """The event a delivery becomes, unsaved: the model fills in every other field."""
    return WebhookEvent(
        remote_id=delivery.remote_id,
        event_name=delivery.event_name,
        partner_id=delivery.partner_id,
        api_type=delivery.api_type,
        api_id=delivery.api_id,
        payload=delivery.payload,
        received_at=received_at,
    )


@functools.cache
def _postgresql_insert_sql(alias: str) -> tuple[str, tuple[Field[Any, Any], ...]]:
    """The ``INSERT`` storing one event on PostgreSQL, and the fields whose values its
    parameters are, in order.

    The columns are the model's: every concrete field but the generated key (and any
    generated column), so a field added to ``WebhookEvent`` is written here too, with the
    value an unsaved instance gets (its default), or with ``DEFAULT`` when the field
    only has a ``db_default``.
    """
    meta = WebhookEvent._meta
    quote = connections[alias].ops.quote_name
    columns: list[str] = []
    values: list[str] = []
    fields: list[Field[Any, Any]] = []
    for model_field in meta.concrete_fields:
        if model_field.generated or model_field is meta.auto_field:
            continue
        columns.append(quote(_column(model_field.name)))
        if model_field.has_db_default() and not model_field.has_default():
            values.append("DEFAULT")
            continue
        # The payload is passed as the delivery's JSON text (see _postgresql_insert).
        values.append("%s::jsonb" if model_field.name == "payload" else "%s")
        fields.append(model_field)
    sql = (
        f"INSERT INTO {quote(meta.db_table)} ({', '.join(columns)}) "  # noqa: S608 - model identifiers
        f"VALUES ({', '.join(values)}) "
        f"ON CONFLICT ({quote(_column('remote_id'))}) DO NOTHING "
        f"RETURNING {quote(_column('id'))}"
    )
    return sql, tuple(fields)


def _postgresql_insert(
    alias: str, delivery: Delivery, received_at: datetime
) -> tuple[str, list[Any]]:
    """The statement and parameters storing ``delivery``: each field's value as a save
    would prepare it, but the payload: the body's text (NULs removed), parsed by
    PostgreSQL's ``::jsonb`` cast rather than serialised again by Python."""
    sql, fields = _postgresql_insert_sql(alias)
    connection = connections[alias]
    event = _new_event(delivery, received_at)
    params = [
        delivery.text
        if model_field.name == "payload"
        else model_field.get_db_prep_save(model_field.pre_save(event, add=True), connection)
        for model_field in fields
    ]
    return sql, params


def _insert_postgresql(alias: str, delivery: Delivery, received_at: datetime) -> int | None:
    """One statement, safe under any concurrency: ``None`` if the id was already stored."""
    sql, params = _postgresql_insert(alias, delivery, received_at)
    with connections[alias].cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return None if row is None else int(row[0])


def _insert_portable(alias: str, delivery: Delivery, received_at: datetime) -> tuple[int, bool]:
    """Any other database: insert, and answer a unique violation with the existing row."""
    try:
        with transaction.atomic(using=alias):
            event = _new_event(delivery, received_at)
            event.save(using=alias, force_insert=True)
    except IntegrityError:
        existing = (
            WebhookEvent.objects.using(alias)
            .filter(remote_id=delivery.remote_id)
            .values_list("pk", flat=True)
            .first()
        )
        if existing is None:
            raise
        return existing, False
    return event.pk, True


def store_delivery(delivery: Delivery) -> StoredDelivery:
    """Store ``delivery`` unless its notification id is already stored.

    Simultaneous retries of one notification all succeed: exactly one of them inserts.
    On a new row, ``webhook_received`` is sent once the insert has committed. Raises
    ``WebhookValidationError`` (400) when the database refuses the values themselves.
    """
    alias = router.db_for_write(WebhookEvent)
    connection = connections[alias]
    received_at = timezone.now()
    try:
        if connection.vendor == "postgresql":
            if connection.in_atomic_block:
                # A failed statement must not break the caller's transaction.
                with transaction.atomic(using=alias):
                    event_id = _insert_postgresql(alias, delivery, received_at)
            else:
                event_id = _insert_postgresql(alias, delivery, received_at)
            created = event_id is not None
            if event_id is None:
                event_id = (
                    WebhookEvent.objects.using(alias)
                    .filter(remote_id=delivery.remote_id)
                    .values_list("pk", flat=True)
                    .get()
                )
        else:
            event_id, created = _insert_portable(alias, delivery, received_at)
    except DataError as exc:
        raise WebhookValidationError(
            f"payload cannot be stored: {str(exc).splitlines()[0][:200]}"
        ) from None

    if created and webhook_received.has_listeners(WebhookEvent):
        event = _new_event(delivery, received_at)
        event.pk = event_id
        event._state.adding = False
        event._state.db = alias
        transaction.on_commit(
            lambda: webhook_received.send(sender=WebhookEvent, event=event), using=alias
        )
    return StoredDelivery(event_id=event_id, created=created)
