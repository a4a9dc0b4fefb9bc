"""Server-rendered HTML of the sandbox's member area (no JavaScript, forms POST).

Stable hooks for browser tests (Playwright) — keep them when changing the markup:

=====================================  ==================================================
``#landing``                           the landing page (after logout without return_url)
``#sso-error``                         an SSO login failure (bad/expired/missing token)
``#not-logged-in``                     a member page opened without a session
``#member-partner-id``                 the logged-in user's partner_id ("Logged in as …")
``#member-name``                       the logged-in user's first and last name
``#logout``                            the logout button (POST ``/sso/logout``)
``#tracks`` / ``.track``               the tracks; each ``.track`` has ``data-title``
``.track-progress``                    a track's progress, e.g. ``0.5``
``.track-step`` / ``.complete-step``   a step (``data-step``) and its "mark done" button
``#interview-title``                   the question-set select of the start form
``#start-interview``                   starts an interview (lands on its review page)
``#interviews`` / ``.interview``       the list; each ``.interview`` has ``data-interview-id``
``.interview-status``                  ``completed`` or ``in progress``
``.complete-interview``                completes that interview (``interview.updated``)
``.delete-interview``                  deletes that interview (``interview.deleted``)
``#interview`` / ``#interview-status``  the review page of one interview
=====================================  ==================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any

STYLE = (
    "body{font-family:sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "header{display:flex;justify-content:space-between;align-items:center;"
    "border-bottom:1px solid #ccc}"
    "li{margin:.4rem 0}form{display:inline}.done{color:#2a7}.muted{color:#777}"
)


EMPTY_INTERVIEWS = '<li class="muted">No interviews yet.</li>'


def _page(title: str, body: str, member: dict[str, Any] | None = None) -> str:
    header = ""
    if member is not None:
        name = f"{member['first_name']} {member['last_name']}".strip()
        header = (
            "<header><p>Logged in as "
            f'<strong id="member-partner-id">{escape(member["partner_id"])}</strong> '
            f'(<span id="member-name">{escape(name)}</span>)</p>'
            '<nav><a href="/members/dashboard">Dashboard</a> '
            '<form method="post" action="/sso/logout">'
            '<button id="logout" type="submit">Log out</button></form>'
            "</nav></header>"
        )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f"<title>{escape(title)} · Big Interview sandbox</title><style>{STYLE}</style></head>"
        f"<body>{header}<main><h1>{escape(title)}</h1>{body}</main></body></html>"
    )


def landing_page() -> str:
    return _page(
        "Big Interview sandbox",
        '<p id="landing">A local stand-in for Big Interview. Members arrive through their '
        "organisation's single sign-on link.</p>",
    )


def error_page(title: str, message: str, element_id: str = "error") -> str:
    return _page(title, f'<p id="{escape(element_id)}" class="error">{escape(message)}</p>')


def _tracks_html(tracks: Iterable[dict[str, Any]], next_path: str) -> str:
    sections = []
    for track in tracks:
        steps = []
        for step in track["tracks"]:
            state = (
                '<span class="done">done</span>'
                if step["completed"]
                else _complete_step_form(track, step, next_path)
            )
            steps.append(
                f'<li class="track-step" data-step="{step["step"]}" '
                f'data-completed="{str(step["completed"]).lower()}">{step["step"]}. '
                f'<a href="{escape(step["link"])}">{escape(step["title"])}</a> {state}</li>'
            )
        sections.append(
            f'<section class="track" data-title="{escape(track["title"])}">'
            f"<h3>{escape(track['title'])} — progress "
            f'<span class="track-progress">{track["progress"]}</span></h3>'
            f"<ul>{''.join(steps)}</ul></section>"
        )
    return f'<div id="tracks">{"".join(sections)}</div>'


def _complete_step_form(track: dict[str, Any], step: dict[str, Any], next_path: str) -> str:
    return (
        '<form method="post" action="/members/tracks/complete-step">'
        f'<input type="hidden" name="track" value="{escape(track["title"])}">'
        f'<input type="hidden" name="step" value="{step["step"]}">'
        f'<input type="hidden" name="next" value="{escape(next_path)}">'
        '<button class="complete-step" type="submit">Mark done</button></form>'
    )


def _interview_actions(interview: dict[str, Any], next_path: str | None) -> str:
    next_field = (
        f'<input type="hidden" name="next" value="{escape(next_path)}">' if next_path else ""
    )
    complete = ""
    if not interview["completed"]:
        complete = (
            '<form method="post" '
            f'action="/members/mock_interviews/{interview["id"]}/complete">{next_field}'
            '<button class="complete-interview" type="submit">Complete</button></form> '
        )
    delete = (
        f'<form method="post" action="/members/mock_interviews/{interview["id"]}/delete">'
        '<button class="delete-interview" type="submit">Delete</button></form>'
    )
    return complete + delete


def _status(interview: dict[str, Any]) -> str:
    return "completed" if interview["completed"] else "in progress"


def dashboard_page(
    member: dict[str, Any],
    tracks: list[dict[str, Any]],
    interviews: list[dict[str, Any]],
    titles: list[str],
) -> str:
    rows = "".join(
        f'<li class="interview" data-interview-id="{item["id"]}">'
        f'<a class="interview-title" href="{escape(item["links"]["review"])}">'
        f"{escape(item['title'])}</a> "
        f'<span class="interview-category muted">{escape(item["category"])}</span> '
        f'<span class="interview-status">{_status(item)}</span> '
        f"{_interview_actions(item, '/members/dashboard')}</li>"
        for item in interviews
    )
    options = "".join(
        f'<option value="{escape(title)}">{escape(title)}</option>' for title in titles
    )
    start_form = (
        '<form method="post" action="/members/mock_interviews/start">'
        f'<select id="interview-title" name="title">{options}</select> '
        '<button id="start-interview" type="submit">Start an interview</button></form>'
    )
    body = (
        "<h2>Tracks</h2>"
        + _tracks_html(tracks, "/members/dashboard")
        + "<h2>Mock interviews</h2>"
        + start_form
        + f'<ul id="interviews">{rows or EMPTY_INTERVIEWS}</ul>'
    )
    return _page("Dashboard", body, member)


def curriculum_page(member: dict[str, Any], tracks: list[dict[str, Any]], chapter: str) -> str:
    link = f"/members/curriculum?chapter={chapter}"
    matching = [
        {**track, "tracks": [step for step in track["tracks"] if step["link"] == link]}
        for track in tracks
    ]
    matching = [track for track in matching if track["tracks"]]
    body = f'<p id="chapter" data-chapter="{escape(chapter)}">Chapter {escape(chapter)}</p>' + (
        _tracks_html(matching, link)
        if matching
        else '<p class="muted">No track step links here.</p>'
    )
    return _page("Curriculum", body, member)


def interview_page(member: dict[str, Any], interview: dict[str, Any]) -> str:
    body = (
        f'<div id="interview" class="interview" data-interview-id="{interview["id"]}">'
        f'<p><strong class="interview-title">{escape(interview["title"])}</strong> with '
        f"{escape(interview['interviewer_name'])} — "
        f'<span id="interview-status" class="interview-status">{_status(interview)}</span></p>'
        f'<p class="muted">Updated {escape(interview["updated_at"])}</p>'
        f"{_interview_actions(interview, None)} "
        f'<a href="{escape(interview["links"]["retake"])}">Retake</a></div>'
    )
    return _page(interview["title"], body, member)


def retake_page(member: dict[str, Any], title: str) -> str:
    body = (
        '<form method="post" action="/members/mock_interviews/start">'
        f'<input type="hidden" name="title" value="{escape(title)}">'
        '<button id="start-interview" type="submit">Start this interview again</button></form>'
    )
    return _page(title, body, member)
