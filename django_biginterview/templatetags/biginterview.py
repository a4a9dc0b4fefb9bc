"""Template tags for host projects: ``{% load biginterview %}``."""

from __future__ import annotations

from django import template

register = template.Library()

# --- SSO: the "Practice interviews" link ------------------------------------------------


# --- Sync: the current user's track progress -------------------------------------------
