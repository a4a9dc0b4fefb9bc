"""The drills' fault-injection app: wraps ``django_biginterview.mirror`` write functions
when the environment asks for it (see the package docstring)."""

from __future__ import annotations

import contextvars
import functools
import os
import signal
import time
from collections.abc import Callable
from typing import Any

from django.apps import AppConfig

Fault = Callable[[tuple[Any, ...]], None]

#: Set while a wrapped function runs, so a wrapped function calling another one (the
#: single-account upsert delegating to the batch upsert) injects its fault once.
_inside = contextvars.ContextVar("drill_fault_inside", default=False)


def _die() -> None:
    """What the OOM killer does to a worker process."""
    os.kill(os.getpid(), signal.SIGKILL)


def _single_titles(args: tuple[Any, ...]) -> list[str]:
    return [interview.title for interview in args[1]]


def _batch_titles(args: tuple[Any, ...]) -> list[str]:
    return [interview.title for _account, interviews in args[0] for interview in interviews]


def _interview_fault(
    titles: Callable[[tuple[Any, ...]], list[str]], poison: str, delay: float
) -> Fault:
    def fault(args: tuple[Any, ...]) -> None:
        written = titles(args)
        time.sleep(delay * len(written))
        if poison and poison in written:
            _die()

    return fault


def _with_fault(function: Callable[..., Any], fault: Fault) -> Callable[..., Any]:
    @functools.wraps(function)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if _inside.get():
            return function(*args, **kwargs)
        token = _inside.set(True)
        try:
            fault(args)
            return function(*args, **kwargs)
        finally:
            _inside.reset(token)

    return wrapper


class DrillFaultsConfig(AppConfig):
    name = "tests.drills.faults"
    label = "drill_faults"

    def ready(self) -> None:
        from django_biginterview import mirror

        poison_title = os.environ.get("BI_DRILL_POISON_TITLE", "")
        delay = float(os.environ.get("BI_DRILL_WRITE_DELAY") or 0)
        if poison_title or delay:
            # A webhook's interview is written by the single-account upsert or, for a
            # batch of events, by the batch upsert where the installed version has one.
            for name, titles in (
                ("upsert_interviews", _single_titles),
                ("upsert_interviews_of_accounts", _batch_titles),
            ):
                if hasattr(mirror, name):
                    fault = _interview_fault(titles, poison_title, delay)
                    setattr(mirror, name, _with_fault(getattr(mirror, name), fault))

        poison_partner_id = os.environ.get("BI_DRILL_POISON_PARTNER_ID", "")
        if poison_partner_id:

            def tracks_fault(args: tuple[Any, ...]) -> None:
                if args[0].partner_id == poison_partner_id:
                    _die()

            mirror.replace_tracks = _with_fault(mirror.replace_tracks, tracks_fault)
