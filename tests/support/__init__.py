"""Shared support of the test suite (no tests of its own), one module per job:

- ``paths``: where the repository and the example project are.
- ``services``: a real service the tests need is missing: fail under CI, skip elsewhere.
- ``polling``: wait until something is true.
- ``redis``: the shared Redis cleaned of coordination keys; a private ``redis-server``.
- ``workers``: real Celery worker processes, and which broker the producers use.
- ``procfile``: the example project's Procfile processes (``bench/procfile.py``) under pytest.
- ``signals``: receive a Django signal for the length of a ``with`` block.
- ``concurrency``: run one callable in several threads released at the same instant.
- ``messages``: Celery task messages recorded instead of sent.
- ``app_settings``: override keys of ``BIGINTERVIEW`` for one test.
- ``status``: the status page's and ``health/``'s setup: an own coordination store,
  staff with given permissions, a healthy state.
- ``sandbox``: clients, accounts and recorded calls of the Big Interview sandbox.
- ``web``: the site as a member sees it: the practice link, a logged-in client.
- ``webhooks``: deliveries as Big Interview sends them, two ways to POST them, the key
  contract.
"""
