"""The receiver's PostgreSQL ``INSERT ... ON CONFLICT`` writes every column of
``WebhookEvent``, each with its field's default unless the delivery gives the value.

The statement is built from the model's fields, so these tests read it without running
it and hold on every database; only PostgreSQL runs it (``test_webhook_receiver``), and
the last test compares a stored row with the model's defaults on whichever database the
suite uses.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from django.db import connection
from django.utils import timezone

from django_biginterview import webhooks
from django_biginterview.models import WebhookEvent

BODY = {
    "webhook": {
        "id": "insert-1",
        "event_name": "interview.deleted",
        "partner_id": "abc123",
        "api_type": "Interview",
        "api_id": "95607",
        "api_object": None,
    }
}


def delivery() -> webhooks.Delivery:
    return webhooks.parse_delivery(json.dumps(BODY).encode())


def stored_columns() -> list[str]:
    """Every column an insert writes: all but the generated key."""
    meta = WebhookEvent._meta
    return [f.column for f in meta.concrete_fields if f is not meta.auto_field]


def statement() -> tuple[list[str], list[str], list[Any]]:
    """The insert's columns, its ``VALUES`` items and its parameters."""
    sql, params = webhooks._postgresql_insert(connection.alias, delivery(), timezone.now())
    match = re.fullmatch(r'INSERT INTO "\w+" \((.+?)\) VALUES \((.+?)\) ON CONFLICT .+', sql)
    assert match, sql
    columns = [name.strip().strip('"') for name in match.group(1).split(",")]
    values = [value.strip() for value in match.group(2).split(",")]
    return columns, values, params


def test_the_insert_writes_every_column_of_the_model_once() -> None:
    columns, values, params = statement()

    assert sorted(columns) == sorted(stored_columns())
    assert len(values) == len(columns)
    assert sum(value.startswith("%s") for value in values) == len(params)


def test_columns_the_delivery_does_not_fill_get_their_fields_defaults() -> None:
    columns, _, params = statement()
    given = dict(zip(columns, params, strict=True))
    defaults = WebhookEvent()

    for name in ("status", "reason", "attempts", "last_error", "next_attempt_at", "processed_at"):
        assert given[WebhookEvent._meta.get_field(name).column] == getattr(defaults, name), name
    assert given["status"] == WebhookEvent.Status.PENDING
    assert given["payload"] == json.dumps(BODY)  # the body's text, as received


@pytest.mark.django_db
def test_a_stored_delivery_has_the_models_default_in_every_other_field() -> None:
    stored = webhooks.store_delivery(delivery())

    row = WebhookEvent.objects.get(pk=stored.event_id)
    expected = WebhookEvent(
        pk=row.pk,
        remote_id="insert-1",
        event_name="interview.deleted",
        partner_id="abc123",
        api_type="Interview",
        api_id="95607",
        payload=BODY,
        received_at=row.received_at,
    )
    meta = WebhookEvent._meta
    assert {f.attname: getattr(row, f.attname) for f in meta.concrete_fields} == {
        f.attname: getattr(expected, f.attname) for f in meta.concrete_fields
    }
