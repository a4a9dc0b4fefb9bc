"""OpenAPI descriptions the views cannot infer: the webhook receiver, whose body no
serializer handles (it validates the raw body itself, ``webhooks.parse_delivery``), the
API root's answer (its keys depend on the reader), and the error answers of the REST API.
These serializers only tell the schema (``api/schema/``) what is sent and answered.
``schema_urlpatterns`` limits the schema to this app's own URLs.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from django.urls import URLResolver, get_script_prefix, include, path, reverse
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers

#: The app's URLconf, as the host project includes it.
APP_URLCONF = "django_biginterview.urls"


def _text(max_length: int, description: str) -> dict[str, Any]:
    """A required string that is not blank (``parse_delivery`` refuses blank ones)."""
    return {
        "type": "string",
        "minLength": 1,
        "maxLength": max_length,
        "pattern": r"\S",
        "description": description,
    }


_OPTIONAL_TEXT = {"type": "string", "nullable": True}

#: The delivery as ``webhooks.parse_delivery`` accepts it (a raw schema: ``api_id`` may be
#: an integer or a string, which no serializer field expresses).
WEBHOOK_DELIVERY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["webhook"],
    "properties": {
        "webhook": {
            "type": "object",
            "required": ["id", "event_name", "partner_id"],
            "properties": {
                "id": _text(255, "Unique id of this notification (retries repeat it)."),
                "event_name": _text(
                    100,
                    "interview.created, interview.updated (api_object required) or "
                    "interview.deleted (api_id required); other events are stored and ignored.",
                ),
                "partner_id": _text(64, "The user the event is about."),
                "api_id": {
                    "oneOf": [
                        {"type": "integer"},
                        {"type": "string", "maxLength": 100},
                    ],
                    "nullable": True,
                    "description": "Id of the object (documented as an integer, sent as a string).",
                },
                "api_type": {**_OPTIONAL_TEXT, "maxLength": 100},
                "api_object": {
                    "type": "object",
                    "nullable": True,
                    "description": "The interview (null for deletes): id, title, "
                    "interviewer_name, category, completed, created_at, updated_at, links.",
                    "properties": {
                        "id": {"type": "integer", "minimum": 0},
                        "title": _OPTIONAL_TEXT,
                        "completed": {"type": "boolean", "nullable": True},
                        "created_at": {**_OPTIONAL_TEXT, "format": "date-time"},
                        "updated_at": {**_OPTIONAL_TEXT, "format": "date-time"},
                    },
                },
            },
        }
    },
}


class WebhookAnswerSerializer(serializers.Serializer[dict]):
    status = serializers.ChoiceField(
        choices=["stored", "duplicate"],
        help_text="duplicate: this notification id was stored before (a retry).",
    )


class ErrorDetailSerializer(serializers.Serializer[dict]):
    type = serializers.CharField()
    message = serializers.CharField()


class ErrorSerializer(serializers.Serializer[dict]):
    error = ErrorDetailSerializer()


def _error(description: str) -> OpenApiResponse:
    return OpenApiResponse(ErrorSerializer, description=description)


class DetailSerializer(serializers.Serializer[dict]):
    """DRF's error body."""

    detail = serializers.CharField()


class PageSizeErrorSerializer(serializers.Serializer[dict]):
    page_size = serializers.ListField(child=serializers.CharField())


def api_responses(
    ok: Any,
    *,
    not_found: str | None,
    forbidden: str = "Not signed in (session).",
    paginated: bool = True,
) -> dict[int, Any]:
    """The answers of a REST API view: ``ok`` (200) and the errors DRF gives; a 404 only
    where there is something not to find (``not_found`` says what)."""
    invalid = {
        400: OpenApiResponse(
            PageSizeErrorSerializer, description="page_size is not a positive integer."
        )
    }
    return {
        200: ok,
        **(invalid if paginated else {}),
        401: OpenApiResponse(
            DetailSerializer,
            description="Not signed in, when the project's first authentication class asks "
            "for credentials (Basic, token); with session authentication first, 403.",
        ),
        403: OpenApiResponse(DetailSerializer, description=forbidden),
        **({404: OpenApiResponse(DetailSerializer, description=not_found)} if not_found else {}),
    }


def api_root_schema(keys: Sequence[str], *, always: Collection[str]) -> dict[str, Any]:
    """The API root's answer: the absolute URL of each endpoint under its key. Only the
    ``always`` keys are there for every reader; the others only for those the endpoint
    lets in."""
    return {
        "type": "object",
        "properties": {key: {"type": "string", "format": "uri"} for key in keys},
        "required": [key for key in keys if key in always],
        "additionalProperties": False,
    }


webhook_schema = extend_schema(
    operation_id="biginterview_webhook_receive",
    summary="Receive a Big Interview notification",
    description=(
        "Big Interview POSTs each notification here with the verification key raw in "
        "`Authorization`. A valid delivery is stored once and answered 200 at once; it is "
        "processed in the background. A repeated notification id is answered 200 again "
        "and not stored twice."
    ),
    tags=["webhooks"],
    auth=[],
    request={"application/json": WEBHOOK_DELIVERY_SCHEMA},
    responses={
        200: OpenApiResponse(WebhookAnswerSerializer, description="Stored, or stored before."),
        400: _error("Malformed JSON or a missing or mistyped field (the message names it)."),
        401: _error("Missing or wrong key."),
        405: _error("Not a POST."),
        411: _error("A chunked body this server cannot read."),
        413: _error("Body over WEBHOOK_MAX_BODY_SIZE."),
        415: _error("Not application/json in UTF-8."),
        503: _error("No key configured, or the database is unavailable: retry later."),
    },
    examples=[
        OpenApiExample(
            "interview.created",
            request_only=True,
            value={
                "webhook": {
                    "id": "123456789",
                    "event_name": "interview.created",
                    "partner_id": "abc123",
                    "api_id": "95607",
                    "api_type": "Interview",
                    "api_object": {
                        "id": 95607,
                        "title": "Top 10 Questions",
                        "completed": True,
                        "updated_at": "2015-05-18T16:37:13.000Z",
                    },
                }
            },
        )
    ],
)


def schema_urlpatterns() -> list[URLResolver]:
    """This app's URLs mounted where the host project mounts them, and nothing else.

    The schema describes this app only: generated from the host's whole URLconf it would
    show its readers every other API of the project. The mount point comes from
    ``reverse`` (without the script prefix, like the paths drf-spectacular writes).
    """
    script_prefix = get_script_prefix()
    mounted = reverse("biginterview:webhook").removeprefix(script_prefix)
    own = reverse("webhook", urlconf=APP_URLCONF).removeprefix(script_prefix)
    return [path(mounted.removesuffix(own), include(APP_URLCONF))]
