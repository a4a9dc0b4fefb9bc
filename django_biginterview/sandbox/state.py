"""The sandbox's in-memory world: users, tokens, tracks, interviews, member sessions.

Everything here is plain data behind one re-entrant lock, so the threaded HTTP server,
the member area and the tests' Python calls see one consistent state. Every change that
the real service announces (interview created/updated/deleted) is handed to ``notify``
*while the lock is held*, which is what keeps notifications in the order of the changes.

Nothing here knows about HTTP or about the app under test: the objects it renders are
built from the contract (``/work/shared/spec``), not from the app's client.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

PARTNER_ID_RE = re.compile(r"^[0-9A-Za-z_-]{1,64}$")
STATE_FILE_VERSION = 1
MAX_NAME_LENGTH = 255


def first_ids() -> tuple[int, int]:
    """Where a new sandbox starts numbering interviews and notifications: at random, so a
    sandbox restarted without ``--state-file`` is all but certain not to reissue ids the
    app under test has already stored (it would take new notifications for retries, and
    new interviews for old, possibly deleted, ones), and never uses the spec example's
    ``123456789``."""
    return 100_000 + secrets.randbelow(900_000_000), 10**15 + secrets.randbelow(9 * 10**15)


#: The default curriculum every new user gets: (track title, [(step title, chapter)]).
DEFAULT_TRACKS: tuple[tuple[str, tuple[tuple[str, int], ...]], ...] = (
    ("Fast Track", (("Tell me about yourself", 5),)),
    (
        "Mastery Track",
        (("Job Interview Fundamentals", 1), ("Why do you want to work here?", 6)),
    ),
)

#: Question sets the member area offers, with the id used in ``links.retake``.
QUESTION_SETS: dict[str, int] = {
    "Top 10 Questions": 52,
    "Behavioral Questions": 53,
    "Tell Me About Yourself": 54,
}
DEFAULT_INTERVIEWER = "Jordan"

Notifier = Callable[[dict[str, Any]], None]


class ValidationFailed(ValueError):
    """Invalid attributes; ``errors`` maps each field name to its message."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__(", ".join(f"{field} {message}" for field, message in errors.items()))
        self.errors = errors


class UnknownObject(LookupError):
    """No such user, interview, track or step in the sandbox."""


def utcnow() -> datetime:
    """Now, in UTC, truncated to milliseconds (the precision the service shows)."""
    return truncate_ms(datetime.now(UTC))


def truncate_ms(moment: datetime) -> datetime:
    return moment.replace(microsecond=moment.microsecond // 1000 * 1000)


def format_date(moment: datetime) -> str:
    """``2015-05-18T16:37:13.000Z``: UTC, milliseconds, ``Z``, as the service writes dates."""
    moment = moment.astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def parse_date(value: str | datetime) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware datetime")
        return truncate_ms(value.astimezone(UTC))
    return truncate_ms(datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC))


def is_valid_partner_id(partner_id: str) -> bool:
    return bool(PARTNER_ID_RE.fullmatch(partner_id))


def validate_profile(attributes: dict[str, Any]) -> dict[str, str]:
    """The profile needed to create a user, or ``ValidationFailed`` naming each bad field."""
    errors: dict[str, str] = {}
    profile: dict[str, str] = {}
    for field in ("first_name", "last_name", "email"):
        value = attributes.get(field)
        if value is None or (isinstance(value, str) and not value.strip()):
            errors[field] = "is required"
        elif not isinstance(value, str):
            errors[field] = "must be a string"
        elif len(value) > MAX_NAME_LENGTH:
            errors[field] = f"is too long (maximum is {MAX_NAME_LENGTH} characters)"
        elif field == "email" and not re.fullmatch(r"[^@\s]+@[^@\s]+", value.strip()):
            errors[field] = "is invalid"
        else:
            profile[field] = value.strip()
    if errors:
        raise ValidationFailed(errors)
    return profile


class SandboxState:
    """All sandbox data. Public methods are thread-safe; they return fresh API-shaped dicts."""

    def __init__(
        self,
        *,
        token_lifetime: timedelta,
        anonymous_lifetime: timedelta = timedelta(hours=24),
        state_file: str | os.PathLike[str] | None = None,
        notify: Notifier | None = None,
    ) -> None:
        self.lock = threading.RLock()
        self.token_lifetime = token_lifetime
        self.anonymous_lifetime = anonymous_lifetime
        self.state_file = Path(state_file) if state_file else None
        self.notify: Notifier = notify or (lambda payload: None)
        self.users: dict[str, dict[str, Any]] = {}
        self.sessions: dict[str, dict[str, Any]] = {}
        self.next_interview_id, self.next_notification_id = first_ids()
        self.question_sets = dict(QUESTION_SETS)
        self._last_tick = utcnow()
        if self.state_file and self.state_file.exists():
            self._load()

    # -- users ---------------------------------------------------------------------------

    def upsert_user(
        self, partner_id: str, attributes: dict[str, Any]
    ) -> tuple[dict[str, Any], bool]:
        """Create the user (profile required) or refresh an existing user's token.

        Returns the API ``user`` object and whether it was created. An invalid
        ``partner_id`` or a missing attribute on creation raises ``ValidationFailed``.
        """
        if not isinstance(partner_id, str) or not is_valid_partner_id(partner_id):
            raise ValidationFailed({"partner_id": "is invalid"})
        with self.lock:
            user = self._live_user(partner_id)
            created = user is None
            if user is None:
                profile = validate_profile(attributes)
                user = self._new_user(partner_id, anonymous=False, **profile)
            self._issue_token(user)
            self._save()
            return self.user_object(user), created

    def create_anonymous(self) -> dict[str, Any]:
        with self.lock:
            partner_id = "anon_" + secrets.token_hex(6)
            while partner_id in self.users:
                partner_id = "anon_" + secrets.token_hex(6)
            user = self._new_user(partner_id, anonymous=True, first_name="", last_name="", email="")
            self._issue_token(user)
            self._save()
            return self.user_object(user)

    def get_user(self, partner_id: str) -> dict[str, Any] | None:
        """A flat view of the user (profile, ``token``, ``expires_at``) or ``None``."""
        with self.lock:
            user = self._live_user(partner_id)
            if user is None:
                return None
            return {
                "partner_id": user["partner_id"],
                "first_name": user["first_name"],
                "last_name": user["last_name"],
                "email": user["email"],
                "anonymous": user["anonymous"],
                "created_at": format_date(user["created_at"]),
                "token": user["token"],
                "expires_at": format_date(user["token_expires_at"]),
            }

    def expire_token(self, partner_id: str) -> None:
        with self.lock:
            user = self._require_user(partner_id)
            user["token_expires_at"] = utcnow() - timedelta(milliseconds=1)
            self._save()

    def user_for_token(self, token: str) -> tuple[str | None, str]:
        """``(partner_id, "")`` for a valid token, else ``(None, reason)``."""
        with self.lock:
            for user in list(self.users.values()):
                if user["token"] and secrets.compare_digest(user["token"], token):
                    if self._live_user(user["partner_id"]) is None:
                        return None, "expired"
                    if user["token_expires_at"] <= utcnow():
                        return None, "expired"
                    return user["partner_id"], ""
            return None, "invalid"

    def user_object(self, user: dict[str, Any]) -> dict[str, Any]:
        """The documented ``user`` object."""
        return {
            "partner_id": user["partner_id"],
            "anonymous": user["anonymous"],
            "created_at": format_date(user["created_at"]),
            "token": {"token": user["token"], "expires_at": format_date(user["token_expires_at"])},
        }

    def profile(self, partner_id: str) -> dict[str, Any]:
        with self.lock:
            user = self._require_user(partner_id)
            return {
                key: user[key] for key in ("partner_id", "first_name", "last_name", "anonymous")
            }

    def _new_user(self, partner_id: str, *, anonymous: bool, **profile: str) -> dict[str, Any]:
        user: dict[str, Any] = {
            "partner_id": partner_id,
            "anonymous": anonymous,
            "created_at": utcnow(),
            "token": "",
            "token_expires_at": utcnow(),
            "tracks": [
                {
                    "title": title,
                    "steps": [
                        {
                            "step": number,
                            "title": step_title,
                            "link": f"/members/curriculum?chapter={chapter}",
                            "completed": False,
                        }
                        for number, (step_title, chapter) in enumerate(steps, start=1)
                    ],
                }
                for title, steps in DEFAULT_TRACKS
            ],
            "interviews": {},
            **profile,
        }
        self.users[partner_id] = user
        return user

    def _issue_token(self, user: dict[str, Any]) -> None:
        # Only the newest token logs in: a refresh replaces the previous one, so an app
        # that keeps using a stale token finds out here rather than in production.
        # Every token says 48 hours, as documented, anonymous ones too: the account behind
        # an anonymous token is deleted after 24 hours all the same (``_live_user``).
        # A new user's first token is issued at the instant the account was created.
        issued_at = user["created_at"] if not user["token"] else utcnow()
        user["token"] = secrets.token_hex(32)
        user["token_expires_at"] = truncate_ms(issued_at + self.token_lifetime)

    def _live_user(self, partner_id: str) -> dict[str, Any] | None:
        user = self.users.get(partner_id)
        if user and user["anonymous"] and user["created_at"] + self.anonymous_lifetime <= utcnow():
            # Anonymous accounts may be deleted any time after their 24 hours.
            del self.users[partner_id]
            self._save()
            return None
        return user

    def _require_user(self, partner_id: str) -> dict[str, Any]:
        user = self._live_user(partner_id)
        if user is None:
            raise UnknownObject(f"no sandbox user with partner_id {partner_id!r}")
        return user

    # -- tracks --------------------------------------------------------------------------

    def tracks(self, partner_id: str) -> list[dict[str, Any]]:
        """The user's tracks in the API shape; ``UnknownObject`` for an unknown user."""
        with self.lock:
            return [self._track_object(track) for track in self._require_user(partner_id)["tracks"]]

    def complete_step(
        self, partner_id: str, track_title: str, step: int, completed: bool = True
    ) -> dict[str, Any]:
        with self.lock:
            user = self._require_user(partner_id)
            track = next((t for t in user["tracks"] if t["title"] == track_title), None)
            if track is None:
                raise UnknownObject(f"no track titled {track_title!r}")
            entry = next((s for s in track["steps"] if s["step"] == int(step)), None)
            if entry is None:
                raise UnknownObject(f"track {track_title!r} has no step {step!r}")
            entry["completed"] = bool(completed)
            self._save()
            return self._track_object(track)

    @staticmethod
    def _track_object(track: dict[str, Any]) -> dict[str, Any]:
        steps = track["steps"]
        done = sum(1 for step in steps if step["completed"])
        return {
            "title": track["title"],
            "progress": round(done / len(steps), 2) if steps else 0.0,
            "tracks": [dict(step) for step in steps],
        }

    # -- interviews ----------------------------------------------------------------------

    def interviews(self, partner_id: str) -> list[dict[str, Any]]:
        """The user's interviews in the API shape, most recently updated first."""
        with self.lock:
            user = self._require_user(partner_id)
            ordered = sorted(
                user["interviews"].values(),
                key=lambda item: (item["updated_at"], item["id"]),
                reverse=True,
            )
            return [self._interview_object(item) for item in ordered]

    def interview(self, partner_id: str, interview_id: int) -> dict[str, Any]:
        with self.lock:
            return self._interview_object(self._require_interview(partner_id, interview_id))

    def start_interview(self, partner_id: str, title: str = "Top 10 Questions") -> dict[str, Any]:
        with self.lock:
            user = self._require_user(partner_id)
            if not title or not isinstance(title, str):
                raise ValueError("an interview needs a title")
            if title not in self.question_sets:
                self.question_sets[title] = max(self.question_sets.values(), default=51) + 1
            interview_id = self.next_interview_id
            self.next_interview_id += 1
            now = self._tick()
            same_title = sum(1 for item in user["interviews"].values() if item["title"] == title)
            item = {
                "id": interview_id,
                "title": title,
                "interviewer_name": DEFAULT_INTERVIEWER,
                "category": f"{title}: {same_title + 1}",
                "completed": False,
                "created_at": now,
                "updated_at": now,
                "question_set": self.question_sets[title],
            }
            user["interviews"][interview_id] = item
            self._announce("interview.created", partner_id, item)
            self._save()
            return self._interview_object(item)

    def update_interview(self, partner_id: str, interview_id: int, **fields: Any) -> dict[str, Any]:
        """Change fields (``title``, ``interviewer_name``, ``category``, ``completed``,
        ``created_at``, ``updated_at``); ``updated_at`` moves forward unless given."""
        allowed = {"title", "interviewer_name", "category", "completed", "created_at", "updated_at"}
        unknown = set(fields) - allowed
        if unknown:
            raise TypeError(f"interviews have no field(s) {', '.join(sorted(unknown))}")
        with self.lock:
            item = self._require_interview(partner_id, interview_id)
            for name in ("title", "interviewer_name", "category"):
                if name in fields:
                    item[name] = str(fields[name])
            if "completed" in fields:
                item["completed"] = bool(fields["completed"])
            if "created_at" in fields:
                item["created_at"] = parse_date(fields["created_at"])
            if "updated_at" in fields:
                item["updated_at"] = parse_date(fields["updated_at"])
            else:
                item["updated_at"] = max(
                    self._tick(), item["updated_at"] + timedelta(milliseconds=1)
                )
            self._announce("interview.updated", partner_id, item)
            self._save()
            return self._interview_object(item)

    def delete_interview(self, partner_id: str, interview_id: int) -> None:
        with self.lock:
            self._require_interview(partner_id, interview_id)
            item = self.users[partner_id]["interviews"].pop(int(interview_id))
            self._announce("interview.deleted", partner_id, item, with_object=False)
            self._save()

    def _tick(self) -> datetime:
        """Now, but strictly after the previous tick: two changes within one millisecond
        still get ordered timestamps, so "most recently updated" is never a tie."""
        self._last_tick = max(utcnow(), self._last_tick + timedelta(milliseconds=1))
        return self._last_tick

    def _require_interview(self, partner_id: str, interview_id: int) -> dict[str, Any]:
        user = self._require_user(partner_id)
        try:
            return user["interviews"][int(interview_id)]
        except (KeyError, ValueError, TypeError):
            raise UnknownObject(f"user {partner_id!r} has no interview {interview_id!r}") from None

    @staticmethod
    def _interview_object(item: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": item["id"],
            "title": item["title"],
            "interviewer_name": item["interviewer_name"],
            "category": item["category"],
            "completed": item["completed"],
            "created_at": format_date(item["created_at"]),
            "updated_at": format_date(item["updated_at"]),
            "links": {
                "review": f"/members/mock_interviews/{item['id']}/review",
                "retake": f"/members/mock_interviews/interview_info/{item['question_set']}",
            },
        }

    def question_titles(self) -> list[str]:
        with self.lock:
            return list(self.question_sets)

    def title_for_question_set(self, set_id: int) -> str | None:
        with self.lock:
            return next(
                (title for title, number in self.question_sets.items() if number == set_id), None
            )

    def _announce(
        self, event_name: str, partner_id: str, item: dict[str, Any], with_object: bool = True
    ) -> None:
        notification_id = str(self.next_notification_id)
        self.next_notification_id += 1
        payload = {
            "webhook": {
                "id": notification_id,
                "event_name": event_name,
                "partner_id": partner_id,
                "api_id": str(item["id"]),
                "api_type": "Interview",
                "api_object": self._interview_object(item) if with_object else None,
            }
        }
        self.notify(payload)

    # -- member sessions -----------------------------------------------------------------

    def open_session(self, partner_id: str, return_url: str | None) -> str:
        with self.lock:
            session_id = secrets.token_urlsafe(24)
            self.sessions[session_id] = {"partner_id": partner_id, "return_url": return_url}
            self._save()
            return session_id

    def session(self, session_id: str | None) -> dict[str, Any] | None:
        if not session_id:
            return None
        with self.lock:
            session = self.sessions.get(session_id)
            if session is None or self._live_user(session["partner_id"]) is None:
                return None
            return dict(session)

    def close_session(self, session_id: str | None) -> dict[str, Any] | None:
        if not session_id:
            return None
        with self.lock:
            session = self.sessions.pop(session_id, None)
            self._save()
            return session

    # -- persistence ---------------------------------------------------------------------

    def _save(self) -> None:
        if self.state_file is None:
            return
        data = {
            "version": STATE_FILE_VERSION,
            "next_interview_id": self.next_interview_id,
            "next_notification_id": self.next_notification_id,
            "question_sets": self.question_sets,
            "sessions": self.sessions,
            "users": [_dump_user(user) for user in self.users.values()],
        }
        # Write then rename: a crash mid-write never leaves half a file behind.
        temporary = self.state_file.with_name(self.state_file.name + ".tmp")
        temporary.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(temporary, self.state_file)

    def _load(self) -> None:
        assert self.state_file is not None
        try:
            data = json.loads(self.state_file.read_text(encoding="utf-8"))
            if data.get("version") != STATE_FILE_VERSION:
                raise ValueError(f"unsupported version {data.get('version')!r}")
            self.next_interview_id = int(data["next_interview_id"])
            self.next_notification_id = int(data["next_notification_id"])
            self.question_sets = {str(k): int(v) for k, v in data["question_sets"].items()}
            self.sessions = dict(data["sessions"])
            self.users = {user["partner_id"]: _load_user(user) for user in data["users"]}
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ValueError(
                f"cannot read the sandbox state file {self.state_file}: {exc}"
            ) from exc


def _dump_user(user: dict[str, Any]) -> dict[str, Any]:
    dumped = dict(user)
    for key in ("created_at", "token_expires_at"):
        dumped[key] = format_date(user[key])
    dumped["interviews"] = [
        {
            **item,
            "created_at": format_date(item["created_at"]),
            "updated_at": format_date(item["updated_at"]),
        }
        for item in user["interviews"].values()
    ]
    return dumped


def _load_user(data: dict[str, Any]) -> dict[str, Any]:
    user = dict(data)
    for key in ("created_at", "token_expires_at"):
        user[key] = parse_date(data[key])
    interviews: Iterable[dict[str, Any]] = data["interviews"]
    user["interviews"] = {
        int(item["id"]): {
            **item,
            "created_at": parse_date(item["created_at"]),
            "updated_at": parse_date(item["updated_at"]),
        }
        for item in interviews
    }
    return user
