"""Models used only by the test suite (a UUID-keyed custom user for ``settings_uuid_user``)."""

import uuid

from django.contrib.auth.models import AbstractUser
from django.db import models


class UUIDUser(AbstractUser):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
