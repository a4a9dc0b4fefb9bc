"""Celery task messages recorded instead of sent: what a task's ``apply_async`` (and so
``delay``) was asked to send, with no broker involved."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest


@dataclass(frozen=True)
class Message:
    """One message: the task's positional ``args``, and every other option it was sent
    with (``kwargs``, ``countdown``, ``retries``, ...)."""

    args: tuple[Any, ...]
    options: dict[str, Any] = field(default_factory=dict)


class Sent(list[Message]):
    """The messages recorded so far, in the order they were sent."""

    @property
    def args(self) -> list[tuple[Any, ...]]:
        """The positional arguments of each message."""
        return [message.args for message in self]


def record_messages(monkeypatch: pytest.MonkeyPatch, task: Any) -> Sent:
    """``task.apply_async`` records its messages in the returned list instead of sending
    them, for the rest of the test."""
    sent = Sent()

    def apply_async(args: Any = None, kwargs: Any = None, **options: Any) -> None:
        if kwargs is not None:
            options["kwargs"] = kwargs
        sent.append(Message(tuple(args or ()), options))

    monkeypatch.setattr(task, "apply_async", apply_async)
    return sent
