"""Fault injection for the drills' worker processes (``tests.drills.worker_settings``).

Nothing changes unless the worker's environment asks for it:

- ``BI_DRILL_POISON_TITLE``: a process writing a webhook's interview with this title
  SIGKILLs itself, every time (a worker the OOM killer takes on one event's data).
- ``BI_DRILL_POISON_PARTNER_ID``: a process replacing this account's tracks (its sync)
  SIGKILLs itself, every time.
- ``BI_DRILL_WRITE_DELAY``: seconds each webhook interview write takes (a slow database),
  so a drill can kill processes while a batch is still being worked on.
"""
