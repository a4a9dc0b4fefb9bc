"""The app's pages extend ``biginterview/base.html``, so one override puts them all in the
host's layout."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
from django.template.loader import render_to_string

PAGES = ["missing_profile.html", "profile_refused.html", "unavailable.html"]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_renders_in_the_base_layout(page: str) -> None:
    html = render_to_string(f"biginterview/{page}", {"missing": ["email"], "field_errors": {}})
    assert html.startswith("<!doctype html>")
    assert html.count("<title>") == 1 and "<h1>" in html


@pytest.mark.parametrize("page", PAGES)
def test_a_host_base_template_frames_every_page(settings: Any, tmp_path: Path, page: str) -> None:
    (tmp_path / "biginterview").mkdir()
    (tmp_path / "biginterview" / "base.html").write_text(
        '<div id="portal-layout">{% block content %}{% endblock %}</div>'
    )
    templates = copy.deepcopy(settings.TEMPLATES)
    templates[0]["DIRS"] = [tmp_path, *templates[0]["DIRS"]]
    settings.TEMPLATES = templates

    html = render_to_string(f"biginterview/{page}", {"missing": ["email"], "field_errors": {}})
    assert html.startswith('<div id="portal-layout">') and "<h1>" in html
