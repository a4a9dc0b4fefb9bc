"""Signals announce what happened; they never decide anything (that is the adapter's job).

Every signal is sent after the database transaction that made the change has committed,
so a receiver never sees a change that is later rolled back.
"""

from django.dispatch import Signal

#: An ``Account`` was created locally. kwargs: ``account``, ``user`` (``None`` if anonymous).
account_created = Signal()

#: A new SSO token was fetched and cached. kwargs: ``account``, ``created_remotely``.
token_refreshed = Signal()

#: A webhook delivery was stored (first delivery of that notification id). kwargs: ``event``.
webhook_received = Signal()

#: A mirrored interview changed locally. kwargs: ``interview``, ``change`` (``"created"``,
#: ``"updated"``, ``"deleted"``, or ``"restored"`` when a sync lists again an interview an
#: earlier sync had taken for deleted) and ``source`` (``"webhook"`` or ``"sync"``).
interview_changed = Signal()

#: An account's tracks or steps changed during a sync. kwargs: ``account``.
tracks_changed = Signal()
