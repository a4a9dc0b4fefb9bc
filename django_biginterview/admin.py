"""Admin for the mirrored data: read-only, since it reflects Big Interview.

No SSO token or key is ever shown.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from .models import Account, Interview, SyncRun, Track, TrackStep, WebhookEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """Every field read-only: the admin shows Big Interview, it does not edit it."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


# --- Accounts, tracks, interviews, sync runs (sync) -----------------------------------


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("partner_id", "user", "anonymous", "last_synced_at", "last_sync_error")
    search_fields = ("partner_id",)
    exclude = ("sso_token",)


admin.site.register(Track, ReadOnlyAdmin)
admin.site.register(TrackStep, ReadOnlyAdmin)
admin.site.register(Interview, ReadOnlyAdmin)
admin.site.register(SyncRun, ReadOnlyAdmin)


# --- Webhook events (webhooks) --------------------------------------------------------

admin.site.register(WebhookEvent, ReadOnlyAdmin)
