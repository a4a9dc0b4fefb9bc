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

#: A webhook event ended ``failed`` with no automatic retry left: its processing raised
#: on its ``WEBHOOK_MAX_ATTEMPTS``-th attempt, or was started that many times without
#: finishing (the worker was lost each time). Sent once each time an event becomes
#: failed for good; a replay that fails again sends nothing. kwargs: ``event`` (the
#: ``WebhookEvent``, with ``attempts`` and ``last_error``).
webhook_event_failed = Signal()

#: A "sync all" run ended, once per run: every account was counted (``run.state`` is
#: ``"finished"``), or the run was closed as lost (``"lost"``: ``run.accounts_lost``
#: accounts never reported). kwargs: ``run`` (the ``SyncRun``, with its counts and
#: ``failures``) and ``ok``: ``False`` when an account failed or was lost, which is when
#: a host alerts. A report that arrives after a run was closed as lost still moves its
#: account from lost to its outcome on the row, without a second signal.
sync_run_finished = Signal()
