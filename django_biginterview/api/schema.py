"""OpenAPI descriptions the views cannot infer: the webhook receiver, whose body no
serializer handles (it validates the raw body itself, ``webhooks.parse_delivery``), and
the error answers of the REST API. These serializers only tell the schema
(``api/schema/``) what is sent and answered.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import serializers


class WebhookObjectSerializer(serializers.Serializer[dict]):
    id = serializers.CharField(max_length=255, help_text="Unique id of this notification.")
    event_name = serializers.CharField(
        max_length=100,
        help_text="interview.created, interview.updated or interview.deleted; others are "
        "stored and ignored.",
    )
    partner_id = serializers.CharField(max_length=64, help_text="The user the event is about.")
    api_id = serializers.CharField(
        required=False, allow_null=True, help_text="Id of the object (integer or string)."
    )
    api_type = serializers.CharField(required=False, allow_null=True)
    api_object = serializers.JSONField(
        required=False, allow_null=True, help_text="The interview; null for deletes."
    )


class WebhookDeliverySerializer(serializers.Serializer[dict]):
    webhook = WebhookObjectSerializer()


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


def api_responses(ok: Any, *, not_found: str) -> dict[int, Any]:
    """The answers of a REST API view: ``ok`` (200) and the errors DRF gives."""
    return {
        200: ok,
        401: OpenApiResponse(
            DetailSerializer,
            description="Not signed in, when the project's first authentication class asks "
            "for credentials (Basic, token); with session authentication first, 403.",
        ),
        403: OpenApiResponse(
            DetailSerializer, description="Not signed in (session), or not allowed."
        ),
        404: OpenApiResponse(DetailSerializer, description=not_found),
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
    request={"application/json": WebhookDeliverySerializer},
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
