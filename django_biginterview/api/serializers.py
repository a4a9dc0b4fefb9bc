"""Serializers of the REST API. Read-only; no SSO token or key in any of them."""

from __future__ import annotations

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from ..models import Account, Interview, Track, TrackStep


class TrackStepSerializer(serializers.ModelSerializer[TrackStep]):
    class Meta:
        model = TrackStep
        fields: tuple[str, ...] = ("step", "title", "link", "completed")
        read_only_fields: tuple[str, ...] = fields


class TrackSerializer(serializers.ModelSerializer[Track]):
    progress = serializers.DecimalField(
        max_digits=5, decimal_places=4, coerce_to_string=False, read_only=True
    )
    percent = serializers.IntegerField(read_only=True)
    steps = TrackStepSerializer(many=True, read_only=True)

    class Meta:
        model = Track
        fields: tuple[str, ...] = (
            "title",
            "progress",
            "percent",
            "position",
            "updated_at",
            "steps",
        )
        read_only_fields: tuple[str, ...] = fields


class StaffTrackSerializer(TrackSerializer):
    partner_id = serializers.CharField(source="account.partner_id", read_only=True)

    class Meta(TrackSerializer.Meta):
        fields = ("partner_id", *TrackSerializer.Meta.fields)
        read_only_fields: tuple[str, ...] = fields


class InterviewSerializer(serializers.ModelSerializer[Interview]):
    """An interview in the API's own words: ``id`` is Big Interview's id, ``links`` are
    paths inside Big Interview (open them through the practice view's ``redirect_to``)."""

    id = serializers.IntegerField(source="remote_id", read_only=True)
    created_at = serializers.DateTimeField(source="remote_created_at", read_only=True)
    updated_at = serializers.DateTimeField(source="remote_updated_at", read_only=True)
    links = serializers.SerializerMethodField()

    class Meta:
        model = Interview
        fields: tuple[str, ...] = (
            "id",
            "title",
            "interviewer_name",
            "category",
            "completed",
            "created_at",
            "updated_at",
            "links",
        )
        read_only_fields: tuple[str, ...] = fields

    @extend_schema_field(
        {
            "type": "object",
            "properties": {"review": {"type": "string"}, "retake": {"type": "string"}},
        }
    )
    def get_links(self, obj: Interview) -> dict[str, str]:
        return {"review": obj.review_path, "retake": obj.retake_path}


class StaffInterviewSerializer(InterviewSerializer):
    partner_id = serializers.CharField(source="account.partner_id", read_only=True)

    class Meta(InterviewSerializer.Meta):
        fields = ("partner_id", *InterviewSerializer.Meta.fields, "deleted_at")
        read_only_fields: tuple[str, ...] = fields


class AccountSummarySerializer(serializers.ModelSerializer[Account]):
    """The signed-in user's own account: progress and sync state."""

    remote_missing = serializers.SerializerMethodField()
    interview_count = serializers.SerializerMethodField()
    tracks = TrackSerializer(many=True, read_only=True)

    class Meta:
        model = Account
        fields: tuple[str, ...] = (
            "partner_id",
            "anonymous",
            "last_synced_at",
            "remote_missing",
            "interview_count",
            "tracks",
        )
        read_only_fields: tuple[str, ...] = fields

    @extend_schema_field(OpenApiTypes.BOOL)
    def get_remote_missing(self, obj: Account) -> bool:
        return obj.remote_missing_at is not None

    @extend_schema_field(OpenApiTypes.INT)
    def get_interview_count(self, obj: Any) -> int:
        return int(getattr(obj, "interview_count", 0))


class StaffAccountSerializer(AccountSummarySerializer):
    user = serializers.SerializerMethodField()

    class Meta(AccountSummarySerializer.Meta):
        fields = (
            "id",
            "partner_id",
            "user",
            "anonymous",
            "created_at",
            "last_synced_at",
            "last_sync_error",
            "last_sync_error_at",
            "remote_missing",
            "remote_missing_at",
            "interview_count",
            "tracks",
        )
        read_only_fields: tuple[str, ...] = fields

    @extend_schema_field(OpenApiTypes.STR)
    def get_user(self, obj: Account) -> str | None:
        """The local user's primary key as a string (integer or UUID)."""
        return None if obj.user_id is None else str(obj.user_id)
