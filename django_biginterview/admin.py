"""Admin for the mirrored data: read-only, since it reflects Big Interview."""

from django.contrib import admin

from .models import Account, Interview, SyncRun, Track, TrackStep, WebhookEvent


class ReadOnlyAdmin(admin.ModelAdmin):
    """Every field read-only: the admin shows Big Interview, it does not edit it."""

    def has_add_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False

    def has_change_permission(self, request, obj=None):  # type: ignore[no-untyped-def]
        return False


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = ("partner_id", "user", "anonymous", "last_synced_at", "last_sync_error")
    search_fields = ("partner_id",)
    exclude = ("sso_token",)


admin.site.register(Track, ReadOnlyAdmin)
admin.site.register(TrackStep, ReadOnlyAdmin)
admin.site.register(Interview, ReadOnlyAdmin)
admin.site.register(WebhookEvent, ReadOnlyAdmin)
admin.site.register(SyncRun, ReadOnlyAdmin)
