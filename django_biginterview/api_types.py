"""The Partner API's results as types (frozen dataclasses with aware UTC datetimes and
progress as ``Decimal``, tokens as ``Secret``), and the parsers that build them from JSON,
refusing anything off the documented shape with ``UnexpectedResponse``.

The webhook receiver parses its deliveries with these too, ``clean_json`` included.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from .exceptions import JSONTooDeep, UnexpectedResponse
from .validators import is_valid_partner_id

#: Deepest nesting of objects and arrays accepted in JSON, from the API or a webhook. Big
#: Interview's documents nest four levels; the cap keeps every consumer safe: recursive
#: Python (the recursion limit is 1000 frames), SQLite's JSON functions (1000 levels) and
#: PostgreSQL's jsonb. ``clean_json`` enforces it.
MAX_JSON_DEPTH = 500

#: Dates in these years are refused: arithmetic a day away from Python's limits (a token's
#: refresh margin, an anonymous account's 24 hours, a local-time display) would overflow.
FIRST_YEAR = 2
LAST_YEAR = 9998


def parse_datetime(value: Any, name: str | None = None) -> datetime | None:
    """Parse the API's ISO 8601 timestamps (``2015-05-18T16:37:13.000Z``) as aware UTC.

    ``None`` or ``""`` give ``None``; anything else that is not a date raises
    :class:`UnexpectedResponse`, as does a date outside the years ``FIRST_YEAR`` to
    ``LAST_YEAR`` once in UTC (the message names the field ``name``, when given). A
    timestamp without an offset is taken as UTC.
    """
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise UnexpectedResponse(f"Expected an ISO 8601 date, got {type(value).__name__}.")
    try:
        parsed: datetime | None = datetime.fromisoformat(value)
    except ValueError:
        parsed = None
    if parsed is None:
        raise UnexpectedResponse("Invalid ISO 8601 date in response.")
    try:
        in_utc: datetime | None = parsed.astimezone(UTC) if parsed.tzinfo else parsed
    except OverflowError:  # 0001-01-01T00:00:00+01:00 falls in year 0 once in UTC
        in_utc = None
    if in_utc is None or not FIRST_YEAR <= in_utc.year <= LAST_YEAR:
        field_name = f"field {name!r}" if name else "date"
        raise UnexpectedResponse(f"Response {field_name} holds a date out of range.")
    return in_utc.replace(tzinfo=UTC)


def clean_json(value: Any) -> tuple[Any, list[str]]:
    """``value`` (freshly parsed JSON, changed in place) without NUL characters, and the
    paths (``interviews[0].title``) where it had them, keys and values alike.

    PostgreSQL stores no U+0000 in text or jsonb, so one NUL in a title would make every
    later write of that object fail; the character carries nothing, so it is dropped and
    the rest kept. A key that loses a NUL and then equals another key of its object keeps
    the later value, as a repeated key in JSON text does. Raises ``JSONTooDeep`` for
    nesting deeper than ``MAX_JSON_DEPTH``. The walk uses its own stack, never recursion.
    """
    if isinstance(value, str):
        return (value.replace("\x00", ""), ["(the whole body)"]) if "\x00" in value else (value, [])
    cleaned: list[str] = []
    # Where a node sits is kept as a chain of (parent's place, key or index) and spelled
    # out only for a NUL found: most bodies have none, and every key of them is walked.
    pending: list[tuple[Any, _Place, int]] = [(value, None, 1)]
    while pending:
        node, place, depth = pending.pop()
        if depth > MAX_JSON_DEPTH:
            raise JSONTooDeep(f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
        entries: Iterable[tuple[Any, Any]]
        if isinstance(node, dict):
            if any("\x00" in key for key in node):
                cleaned.extend(_spell((place, key)) for key in node if "\x00" in key)
                items = [(key.replace("\x00", ""), item) for key, item in node.items()]
                node.clear()
                node.update(items)
            entries = node.items()
        elif isinstance(node, list):
            entries = enumerate(node)
        else:
            continue  # a body that is a single number, boolean or null
        for key, item in entries:
            if isinstance(item, str):
                if "\x00" in item:
                    node[key] = item.replace("\x00", "")  # a value: the shape stays
                    cleaned.append(_spell((place, key)))
            elif isinstance(item, dict | list):
                pending.append((item, (place, key), depth + 1))
    return value, cleaned


#: Where a JSON node sits: ``None`` for the root, else (its parent's place, its key or
#: list index).
_Place = tuple[Any, str | int] | None


def _spell(place: _Place) -> str:
    """``interviews[0].title`` for a place."""
    steps: list[str | int] = []
    while place is not None:
        place, step = place
        steps.append(step)
    path = ""
    for step in reversed(steps):
        path = f"{path}[{step}]" if isinstance(step, int) else _path(path, step)
    return path


def _path(parent: str, key: str) -> str:
    # Keys come from outside and end up in a log line: short, and no control characters.
    key = "".join(char if char.isprintable() else "?" for char in key.replace("\x00", "")[:50])
    return f"{parent}.{key}" if parent else key


def describe_paths(paths: list[str], limit: int = 5) -> str:
    """The first ``limit`` of ``paths``, for a log line that must stay short."""
    shown = ", ".join(path[:200] for path in paths[:limit])
    return f"{shown} and {len(paths) - limit} more" if len(paths) > limit else shown


def require(obj: Any, key: str, kind: type | tuple[type, ...]) -> Any:
    """``obj[key]`` if ``obj`` is an object holding a value of ``kind`` there."""
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if not isinstance(obj, Mapping) or key not in obj:
        raise UnexpectedResponse(f"Response object has no {key!r}.")
    value = obj[key]
    # JSON true/false are Python bools, which are ints: never accept one for a number.
    if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
        raise UnexpectedResponse(f"Response field {key!r} has an unexpected type.")
    return value


def _optional_str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise UnexpectedResponse(f"Response field {key!r} has an unexpected type.")
    return str(value)


def _optional_bool(obj: Mapping[str, Any], key: str, default: bool = False) -> bool:
    """A JSON boolean; ``bool("false")`` would be True, so strings are refused."""
    value = obj.get(key)
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise UnexpectedResponse(f"Response field {key!r} is not a boolean.")


class Secret(str):
    """A string whose ``repr`` is ``'********'``: an SSO token, a login URL holding one,
    the API key.

    Error reports print a frame's locals and a query's parameters with ``repr`` (Django's
    ``ExceptionReporter``, even with ``DEBUG`` on, and Sentry's local variables), so a
    secret kept in this type shows masked there wherever it travels: into a model field,
    a dict, the ORM's SQL parameters. ``str()`` and every string operation still give the
    value, as they must: the database drivers, ``requests`` and Django's redirect checks
    all read it that way. So a message built with ``%s`` or an f-string shows the value:
    never log one.
    """

    __slots__ = ()

    def __repr__(self) -> str:
        return "'********'"


@dataclass(frozen=True)
class SSOToken:
    """A 48-hour SSO login token. Its repr hides the token itself, and the token is kept
    as a :class:`Secret` (wrapped on creation), so it stays masked wherever it is passed."""

    token: str = field(repr=False)
    expires_at: datetime

    def __post_init__(self) -> None:
        if not isinstance(self.token, Secret):
            object.__setattr__(self, "token", Secret(self.token))


@dataclass(frozen=True)
class UserResult:
    """A user as returned by the user endpoints.

    ``created`` is True when the call created the account (201), False when it already
    existed and only its token was refreshed (200). ``anonymous`` is the flag the service
    returned, never assumed from the endpoint.
    """

    partner_id: str
    anonymous: bool
    created_at: datetime | None
    token: SSOToken
    created: bool

    @classmethod
    def from_api(cls, body: Any, *, created: bool) -> UserResult:
        user = require(body, "user", Mapping)
        token = require(user, "token", Mapping)
        token_value = require(token, "token", str)
        if not token_value:
            raise UnexpectedResponse("Response has an empty SSO token.")
        expires_at = parse_datetime(require(token, "expires_at", str), "expires_at")
        if expires_at is None:
            raise UnexpectedResponse("Response has an empty token expiry.")
        partner_id = require(user, "partner_id", str)
        if not is_valid_partner_id(partner_id):
            raise UnexpectedResponse("Response has a partner_id that breaks the documented rules.")
        return cls(
            partner_id=partner_id,
            anonymous=_optional_bool(user, "anonymous"),
            created_at=parse_datetime(user.get("created_at"), "created_at"),
            token=SSOToken(token=token_value, expires_at=expires_at),
            created=created,
        )


@dataclass(frozen=True)
class TrackStep:
    """One step of a track; ``link`` is a Big Interview path usable as ``redirect_to``."""

    step: int
    title: str
    link: str
    completed: bool

    @classmethod
    def from_api(cls, obj: Any) -> TrackStep:
        return cls(
            step=require(obj, "step", int),
            title=require(obj, "title", str),
            link=_optional_str(obj, "link"),
            completed=_optional_bool(obj, "completed"),
        )


@dataclass(frozen=True)
class Track:
    """A learning track; the API calls the step list ``tracks``, we call it ``steps``.

    ``progress`` is a ``Decimal`` from 0 to 1 with four places (the model's precision).
    """

    title: str
    progress: Decimal
    steps: tuple[TrackStep, ...]

    @classmethod
    def from_api(cls, obj: Any) -> Track:
        title = require(obj, "title", str)
        raw_progress = require(obj, "progress", (int, float, str))
        try:
            progress: Decimal | None = Decimal(str(raw_progress)).quantize(Decimal("0.0001"))
        except InvalidOperation:
            progress = None
        if progress is None or not progress.is_finite():
            raise UnexpectedResponse("Track progress is not a number.")
        if not Decimal(0) <= progress <= Decimal(1):
            raise UnexpectedResponse("Track progress is outside 0..1.")
        steps = obj.get("tracks")
        if steps is None:
            steps = []
        if not isinstance(steps, list):
            raise UnexpectedResponse("Track steps are not a list.")
        return cls(
            title=title,
            progress=progress,
            steps=tuple(TrackStep.from_api(step) for step in steps),
        )


@dataclass(frozen=True)
class Interview:
    """A mock interview. ``raw`` keeps the API object exactly as received."""

    id: int
    title: str
    interviewer_name: str
    category: str
    completed: bool
    created_at: datetime | None
    updated_at: datetime | None
    review_path: str
    retake_path: str
    raw: dict[str, Any] = field(repr=False, compare=False)

    @classmethod
    def from_api(cls, obj: Any) -> Interview:
        """Parse an interview object (from the list endpoint or a webhook ``api_object``)."""
        remote_id = require(obj, "id", (int, str))
        if isinstance(remote_id, str):
            if not remote_id.isascii() or not remote_id.isdigit():
                raise UnexpectedResponse("Interview id is not an integer.")
            remote_id = int(remote_id)
        if not 0 <= remote_id < 2**63:  # what a database's 64-bit integer holds
            raise UnexpectedResponse("Interview id is out of range.")
        links = obj.get("links")
        if links is None:
            links = {}
        if not isinstance(links, Mapping):
            raise UnexpectedResponse("Interview links are not an object.")
        return cls(
            id=remote_id,
            title=_optional_str(obj, "title"),
            interviewer_name=_optional_str(obj, "interviewer_name"),
            category=_optional_str(obj, "category"),
            completed=_optional_bool(obj, "completed"),
            created_at=parse_datetime(obj.get("created_at"), "created_at"),
            updated_at=parse_datetime(obj.get("updated_at"), "updated_at"),
            review_path=_optional_str(links, "review"),
            retake_path=_optional_str(links, "retake"),
            raw=dict(obj),
        )
