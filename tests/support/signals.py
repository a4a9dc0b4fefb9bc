"""Receiving a Django signal for the length of a ``with`` block, and never after it."""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Iterator
from typing import Any

from django.dispatch import Signal

_uids = itertools.count()


@contextlib.contextmanager
def connected(
    signal: Signal, receiver: Callable[..., Any], *, sender: Any = None
) -> Iterator[None]:
    """``receiver`` is connected to ``signal`` (from ``sender`` only, if given) inside the
    block, and disconnected when it ends, however it ends."""
    uid = f"tests.support.signals:{next(_uids)}"
    signal.connect(receiver, sender=sender, weak=False, dispatch_uid=uid)
    try:
        yield
    finally:
        signal.disconnect(sender=sender, dispatch_uid=uid)


@contextlib.contextmanager
def capture(signal: Signal, *, sender: Any = None) -> Iterator[list[dict[str, Any]]]:
    """The keyword arguments of each send of ``signal`` inside the block, in order
    (``sender`` and the signal's own arguments: ``event``, ``change``, ...)::

        with capture(account_created) as received:
            ...
        assert received[0]["user"] == user
    """
    received: list[dict[str, Any]] = []
    with connected(signal, lambda **kwargs: received.append(kwargs), sender=sender):
        yield received
