"""The documented ``partner_id`` rules, shared by the client and the models, and the
member-area rule for the SSO ``redirect_to``."""

from __future__ import annotations

import re
from typing import TypeGuard
from urllib.parse import urlsplit

from .exceptions import InvalidPartnerId

#: Only ``0-9``, ``a-z``, ``A-Z``, ``-`` and ``_``; 1 to 64 characters. ``\Z``, not ``$``,
#: which would also match before a trailing newline.
PARTNER_ID_PATTERN = r"^[0-9A-Za-z_-]{1,64}\Z"
_PARTNER_ID_RE = re.compile(r"[0-9A-Za-z_-]{1,64}")


def is_valid_partner_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` is a string that follows the documented ``partner_id`` rules."""
    return isinstance(value, str) and _PARTNER_ID_RE.fullmatch(value) is not None


def validate_partner_id(value: object) -> str:
    """Return ``value`` if it is a valid ``partner_id``, else raise ``InvalidPartnerId``."""
    if is_valid_partner_id(value):
        return value
    raise InvalidPartnerId("partner_id must be 1 to 64 characters from 0-9, a-z, A-Z, '-' and '_'.")


#: Where Big Interview's documented member pages live (dashboard, curriculum, interviews).
MEMBER_AREA = "/members"


def is_member_area_path(value: str) -> bool:
    """Whether the path of ``value`` is ``/members`` or below, with no ``.`` or ``..``
    segment that a browser would resolve to somewhere else.

    ``redirect_to`` may only land on a member page: Big Interview's other paths include
    ``/sso/logout?return_url=...``, which would log the user out and send them to any
    site, whatever ``RETURN_URL`` says. Check every decoded form too (``%2e%2e``).
    """
    path = urlsplit(value).path
    if path != MEMBER_AREA and not path.startswith(MEMBER_AREA + "/"):
        return False
    segments = path.split("/")
    return "." not in segments and ".." not in segments
