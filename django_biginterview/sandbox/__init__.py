"""A local stand-in for Big Interview, shipped with the package (like stripe-mock).

Partners use it for development and demos (``manage.py biginterview_sandbox``), tests use
it through the pytest fixtures in ``django_biginterview.testing.pytest_plugin``::

    from django_biginterview.sandbox import Sandbox

    with Sandbox(api_keys=["my-test-key"]) as sb:
        requests.post(f"{sb.url}/api/users/abc123", headers={"Authorization": sb.api_key}, ...)

It follows the contract in the spec, not the app's code: it imports nothing from the
client, the domain or the models, so it catches the app misreading the contract. The
member area's HTML hooks for browser tests are listed in ``sandbox.pages``.
"""

from .delivery import DeliveryRecord
from .server import CallRecord
from .service import DEFAULT_API_KEY, DEFAULT_RETRY_DELAYS, DEFAULT_WEBHOOK_KEY, Sandbox
from .state import UnknownObject, ValidationFailed

__all__ = [
    "DEFAULT_API_KEY",
    "DEFAULT_RETRY_DELAYS",
    "DEFAULT_WEBHOOK_KEY",
    "CallRecord",
    "DeliveryRecord",
    "Sandbox",
    "UnknownObject",
    "ValidationFailed",
]
