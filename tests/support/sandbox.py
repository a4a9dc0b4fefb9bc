"""The Big Interview sandbox as the tests use it: a client for it, accounts whose users
exist in it, and the calls it recorded."""

from __future__ import annotations

from typing import Any, cast

from django_biginterview.client import BigInterviewClient
from django_biginterview.models import Account
from django_biginterview.sandbox import Sandbox
from django_biginterview.testing.factories import AccountFactory


def sandbox_client(sandbox: Sandbox, **options: Any) -> BigInterviewClient:
    """A client for the sandbox (fast retries, as in the test settings)."""
    options.setdefault("max_retries", 2)
    options.setdefault("backoff", 0.01)
    options.setdefault("backoff_max", 0.2)
    return BigInterviewClient(base_url=sandbox.url, api_key=sandbox.api_key, **options)


def remote_account(sandbox: Sandbox, partner_id: str, interviews: int = 0, **kw: Any) -> Account:
    """A local account whose user exists in the sandbox with ``interviews`` interviews."""
    sandbox.create_user(partner_id)
    for n in range(interviews):
        sandbox.start_interview(partner_id, title=f"Interview {n}")
    return cast(Account, AccountFactory(partner_id=partner_id, **kw))


def user_calls(sandbox: Sandbox, partner_id: str | None = None) -> list[Any]:
    """The sandbox's ``POST /api/users/{partner_id}`` calls (create or refresh a member;
    of any member without ``partner_id``), never ``/api/users/anonymous``."""
    prefix = f"/api/users/{partner_id}" if partner_id else "/api/users/"
    return [
        call
        for call in sandbox.api_calls(method="POST", path_prefix=prefix)
        if call.path != "/api/users/anonymous"
    ]
