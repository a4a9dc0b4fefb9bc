from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class BigInterviewConfig(AppConfig):
    name = "django_biginterview"
    label = "biginterview"
    verbose_name = _("Big Interview")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from . import checks  # noqa: F401  (registers the system checks)
