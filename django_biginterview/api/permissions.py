"""Who may read the REST API and its schema."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission, DjangoModelPermissions
from rest_framework.request import Request

from ..conf import app_settings


class ModelViewPermission(DjangoModelPermissions):
    """The model's ``view`` permission, as the admin asks for its changelist.

    DRF's ``DjangoModelPermissions`` lets any signed-in user read (``GET`` needs no
    permission there), so a staff user the admin refuses would still read every row
    through the API. Only reading methods are mapped: any other method is a 405.
    """

    perms_map = {
        "GET": ["%(app_label)s.view_%(model_name)s"],
        "HEAD": ["%(app_label)s.view_%(model_name)s"],
        "OPTIONS": ["%(app_label)s.view_%(model_name)s"],
    }


class SchemaAccess(BasePermission):
    """Who may read the OpenAPI schema and its docs page: ``API_SCHEMA_ACCESS`` (read on
    every request; the API root lists both only to these readers).

    A value it does not declare raises ``InvalidSetting`` rather than guess (``manage.py
    check`` reports it as ``biginterview.E014``).
    """

    def has_permission(self, request: Request, view: Any) -> bool:
        access = app_settings.API_SCHEMA_ACCESS
        if access == "public":
            return True
        user = request.user
        if not (user and user.is_authenticated):
            return False
        return access == "authenticated" or bool(user.is_staff)
