"""Template tags for host projects: ``{% load biginterview %}``."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import template
from django.urls import reverse
from django.utils.translation import gettext

from .. import tasks
from ..models import Account, Interview, Track
from ..views import offer_anonymous_practice

register = template.Library()

# --- SSO: the "Practice interviews" link ------------------------------------------------


def _practice_url(redirect_to: str | None = None) -> str:
    url = reverse("biginterview:practice")
    if redirect_to:
        url = f"{url}?{urlencode({'redirect_to': redirect_to})}"
    return url


def _offer_practice(context: template.Context) -> None:
    """A page showing the link lets its logged-out visitor's click get an anonymous
    account (``views.offer_anonymous_practice``; only with ``ANONYMOUS_USERS`` on)."""
    request = context.get("request")
    if request is not None:
        offer_anonymous_practice(request)


@register.simple_tag(takes_context=True)
def biginterview_practice_url(context: template.Context, redirect_to: str | None = None) -> str:
    """URL of the practice view, e.g. ``{% biginterview_practice_url redirect_to=step.link %}``.

    ``redirect_to`` is a path inside Big Interview; the view drops it unless it is safe.
    With ``ANONYMOUS_USERS`` on and ``request`` in the context, it also marks a logged-out
    visitor's session (see ``views.offer_anonymous_practice``).
    """
    _offer_practice(context)
    return _practice_url(redirect_to)


@register.inclusion_tag("biginterview/practice_link.html", takes_context=True)
def biginterview_practice_link(
    context: template.Context,
    redirect_to: str | None = None,
    label: str | None = None,
    css_class: str = "",
) -> dict[str, str]:
    """The "Practice interviews" link: one line in the partner's navigation.

    ``{% biginterview_practice_link %}`` or
    ``{% biginterview_practice_link redirect_to="/members/curriculum?chapter=6" label="..." %}``.
    Override ``biginterview/practice_link.html`` to change the markup. With
    ``ANONYMOUS_USERS`` on and ``request`` in the context, it also marks a logged-out
    visitor's session (see ``views.offer_anonymous_practice``).
    """
    _offer_practice(context)
    return {
        "url": _practice_url(redirect_to),
        "label": label or gettext("Practice interviews"),
        "css_class": css_class,
    }


# --- Sync: the current user's track progress -------------------------------------------


def _current_account(context: template.Context) -> Account | None:
    request = context.get("request")
    user = getattr(request, "user", None) or context.get("user")
    if user is None or not user.is_authenticated:
        return None
    return Account.objects.filter(user=user).first()


@register.inclusion_tag("biginterview/progress.html", takes_context=True)
def biginterview_progress(context: template.Context) -> dict[str, Any]:
    """The signed-in user's track progress: one bar per track, each step a link that logs
    the user in to Big Interview on that step (through the practice view's
    ``redirect_to``). ``{% biginterview_progress %}``; needs ``request`` in the context.
    Override ``biginterview/progress.html`` to change the markup. Two queries. Progress
    older than ``PROGRESS_MAX_AGE`` is shown as stored, and a sync is asked for in the
    background (``tasks.refresh_stale_progress``)."""
    account = _current_account(context)
    tasks.refresh_stale_progress(account)
    tracks: list[dict[str, Any]] = []
    if account is not None:
        for track in Track.objects.filter(account=account).in_order().with_steps():
            tracks.append(
                {
                    "title": track.title,
                    "percent": track.percent,
                    "steps": [
                        {
                            "step": step.step,
                            "title": step.title,
                            "completed": step.completed,
                            "url": _practice_url(step.link or None),
                        }
                        for step in track.steps.all()
                    ],
                }
            )
    return {"account": account, "tracks": tracks, "practice_url": _practice_url()}


@register.inclusion_tag("biginterview/recent_interviews.html", takes_context=True)
def biginterview_recent_interviews(context: template.Context, limit: int = 5) -> dict[str, Any]:
    """The signed-in user's most recently updated interviews, each linking to its review
    (through the practice view). ``{% biginterview_recent_interviews limit=5 %}``."""
    account = _current_account(context)
    interviews: list[dict[str, Any]] = []
    if account is not None:
        recent = Interview.objects.live().filter(account=account).newest_first()
        rows = recent[: max(0, int(limit))]
        interviews = [
            {
                "title": str(row),
                "category": row.category,
                "completed": row.completed,
                "updated_at": row.remote_updated_at,
                "url": _practice_url(row.review_path or None),
            }
            for row in rows
        ]
    return {"account": account, "interviews": interviews}
