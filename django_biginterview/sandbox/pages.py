"""Server-rendered HTML of the sandbox's member area (no JavaScript, forms POST).

Every value that came from a request or from the API (names, titles, categories, links,
``return_url``) goes through ``escape``: the partner sends these strings, and the sandbox
must not let one of them run as script in a demo.

Stable hooks for browser tests (Playwright) — keep them when changing the markup:

=====================================  ==================================================
``#landing``                           the landing page (after logout without return_url)
``#sso-error``                         an SSO login failure (bad/expired/missing token)
``#not-logged-in``                     a member page opened without a session (how to
                                       log in again through the partner site)
``#member-name``                       the logged-in user's first and last name
                                       ("Anonymous visitor" for an anonymous user)
``#member-partner-id``                 the logged-in user's partner_id
``#return-link``                       the link back to the partner site (the
                                       ``return_url`` given at login; absent without one)
``#logout``                            the logout button (POST ``/sso/logout``)
``#tracks`` / ``.track``               the tracks; each ``.track`` has ``data-title``
``.track-progress``                    a track's progress as a percentage, e.g. ``50%``
``.track-step`` / ``.complete-step``   a step (``data-step``) and its "mark done" button
``#interview-title``                   the question-set select of the start form
``#start-interview``                   starts an interview (lands on its review page)
``#interviews`` / ``.interview``       the list (a table); each ``.interview`` row has
                                       ``data-interview-id``, and the cells
                                       ``.interview-title``, ``.interview-category``,
                                       ``.interview-status``, ``.interview-started``,
                                       ``.interview-updated``
``.interview-status``                  ``completed`` or ``in progress``
``.complete-interview``                completes that interview (``interview.updated``)
``.delete-interview``                  deletes that interview (``interview.deleted``)
``.retake-interview``                  the "Retake" link, on completed interviews only
``#interview`` / ``#interview-status``  the review page of one interview
=====================================  ==================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from html import escape
from typing import Any

from .state import parse_date

STYLE = (
    "body{font-family:sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}"
    "header{display:flex;flex-wrap:wrap;gap:.5rem 1.5rem;justify-content:space-between;"
    "align-items:center;border-bottom:1px solid #ccc}"
    "#member-name{font-weight:bold}"
    "li{margin:.4rem 0}form{display:inline}.done{color:#2a7}.muted{color:#777}"
    "table{border-collapse:collapse;width:100%;margin:1rem 0}"
    "th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #ddd}"
    "time,.interview-status{white-space:nowrap}.actions{margin:1rem 0;white-space:nowrap}"
    "dl{display:grid;grid-template-columns:max-content auto;gap:.3rem 1rem}dd{margin:0}"
)

#: Month names, not ``strftime("%b")``, so a page never depends on the process's locale.
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

#: How a member gets in: Big Interview has no login form of its own, only the partner's
#: single sign-on link.
LOGIN_HELP = (
    "<p>Members log in through their organisation's site: go back there and click its "
    "<strong>Practice interviews</strong> link, which logs you in here and opens your "
    "dashboard.</p>"
)

EMPTY_INTERVIEWS = '<tr><td colspan="6" class="muted">No interviews yet.</td></tr>'


def _page(title: str, body: str, member: dict[str, Any] | None = None) -> str:
    header = ""
    if member is not None:
        name = f"{member['first_name']} {member['last_name']}".strip() or "Anonymous visitor"
        return_url = member.get("return_url")
        back = (
            f'<a id="return-link" href="{escape(return_url)}">'
            "← Back to your organisation's site</a> "
            if return_url
            else ""
        )
        header = (
            '<header><p><span class="muted">Big Interview sandbox</span> · '
            f'<span id="member-name">{escape(name)}</span> '
            '<small class="muted">partner_id '
            f'<strong id="member-partner-id">{escape(member["partner_id"])}</strong></small></p>'
            f'<nav>{back}<a href="/members/dashboard">Dashboard</a> '
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
        "organisation's single sign-on link.</p>" + LOGIN_HELP,
    )


def error_page(title: str, message: str, element_id: str = "error") -> str:
    return _page(title, f'<p id="{escape(element_id)}" class="error">{escape(message)}</p>')


def not_logged_in_page() -> str:
    """A member page opened without a session, typically after a browser restart (the
    session cookie lives until the browser closes). Without a session the sandbox does
    not know the partner site, so it says how to get back there instead of linking."""
    return _page(
        "You are not logged in",
        '<div id="not-logged-in"><p>This browser has no Big Interview session: it ends when '
        "you log out or close the browser.</p>"
        + LOGIN_HELP
        + '<p class="muted">A sandbox restarted without <code>--state-file</code> forgets '
        "every session too.</p></div>",
    )


def _date(value: str) -> str:
    """An API date (``2015-05-18T16:37:13.000Z``) as ``18 May 2015, 16:37 UTC``, in a
    ``<time>`` element that keeps the exact value."""
    moment = parse_date(value)
    shown = f"{moment.day} {MONTHS[moment.month - 1]} {moment.year}, {moment:%H:%M} UTC"
    return f'<time datetime="{escape(value)}">{shown}</time>'


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
        done = sum(1 for step in track["tracks"] if step["completed"])
        total = len(track["tracks"])
        unit = "step" if total == 1 else "steps"
        percent = round(track["progress"] * 100)
        sections.append(
            f'<section class="track" data-title="{escape(track["title"])}">'
            f"<h3>{escape(track['title'])}</h3>"
            f'<p><progress max="100" value="{percent}">{percent}%</progress> '
            f'<span class="track-progress">{percent}%</span> '
            f'<span class="muted">({done} of {total} {unit} done)</span></p>'
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
    """Complete while in progress, Retake once completed (a retake is a new attempt at
    a finished interview; an unfinished one is still there to finish), then Delete."""
    if interview["completed"]:
        first = (
            f'<a class="retake-interview" href="{escape(interview["links"]["retake"])}">Retake</a> '
        )
    else:
        next_field = (
            f'<input type="hidden" name="next" value="{escape(next_path)}">' if next_path else ""
        )
        first = (
            '<form method="post" '
            f'action="/members/mock_interviews/{interview["id"]}/complete">{next_field}'
            '<button class="complete-interview" type="submit">Complete</button></form> '
        )
    delete = (
        f'<form method="post" action="/members/mock_interviews/{interview["id"]}/delete">'
        '<button class="delete-interview" type="submit">Delete</button></form>'
    )
    return first + delete


def _status(interview: dict[str, Any]) -> str:
    return "completed" if interview["completed"] else "in progress"


def dashboard_page(
    member: dict[str, Any],
    tracks: list[dict[str, Any]],
    interviews: list[dict[str, Any]],
    titles: list[str],
) -> str:
    rows = "".join(
        f'<tr class="interview" data-interview-id="{item["id"]}">'
        f'<td class="interview-title"><a href="{escape(item["links"]["review"])}">'
        f"{escape(item['title'])}</a></td>"
        f'<td class="interview-category">{escape(item["category"])}</td>'
        f'<td class="interview-status">{_status(item)}</td>'
        f'<td class="interview-started">{_date(item["created_at"])}</td>'
        f'<td class="interview-updated">{_date(item["updated_at"])}</td>'
        f'<td class="actions">{_interview_actions(item, "/members/dashboard")}</td></tr>'
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
    table = (
        '<table id="interviews"><thead><tr><th>Interview</th><th>Category</th>'
        "<th>Status</th><th>Started</th><th>Last updated</th><th></th></tr></thead>"
        f"<tbody>{rows or EMPTY_INTERVIEWS}</tbody></table>"
    )
    body = (
        "<h2>Tracks</h2>"
        + _tracks_html(tracks, "/members/dashboard")
        + "<h2>Mock interviews</h2>"
        + start_form
        + table
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
        f'<div id="interview" class="interview" data-interview-id="{interview["id"]}"><dl>'
        f'<dt>Category</dt><dd class="interview-category">{escape(interview["category"])}</dd>'
        f"<dt>Interviewer</dt><dd>{escape(interview['interviewer_name'])}</dd>"
        "<dt>Status</dt><dd>"
        f'<span id="interview-status" class="interview-status">{_status(interview)}</span></dd>'
        f'<dt>Started</dt><dd class="interview-started">{_date(interview["created_at"])}</dd>'
        "<dt>Last updated</dt>"
        f'<dd class="interview-updated">{_date(interview["updated_at"])}</dd></dl>'
        f'<div class="actions">{_interview_actions(interview, None)}</div></div>'
    )
    return _page(interview["title"], body, member)


def retake_page(member: dict[str, Any], title: str) -> str:
    body = (
        '<form method="post" action="/members/mock_interviews/start">'
        f'<input type="hidden" name="title" value="{escape(title)}">'
        '<button id="start-interview" type="submit">Start this interview again</button></form>'
    )
    return _page(title, body, member)
