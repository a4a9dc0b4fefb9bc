"""The app's configuration: its label, and what it connects when Django starts."""

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import pre_delete
from django.utils.translation import gettext_lazy as _


class BigInterviewConfig(AppConfig):
    name = "django_biginterview"
    label = "biginterview"
    verbose_name = _("Big Interview")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
        from .erasure import erase_deleted_user

        # A deleted user leaves nothing behind (see erasure.py for why a receiver).
        pre_delete.connect(
            erase_deleted_user,
            sender=settings.AUTH_USER_MODEL,
            dispatch_uid="biginterview_erase_deleted_user",
        )
