"""What a demo audience sees in the sandbox's member area, over real HTTP with a cookie
session: percentages, readable dates, the member's name, the way back to the partner site,
help instead of a dead end without a session, and the interview list's columns."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
import requests

from django_biginterview.sandbox import Sandbox

PARTNER_SITE = "https://partner.example/portal?x=1&y=2"


@pytest.fixture
def sb(biginterview_sandbox: Sandbox) -> Sandbox:
    biginterview_sandbox.create_user("abc123", first_name="Ada", last_name="Lovelace")
    return biginterview_sandbox


def member(sb: Sandbox, partner_id: str = "abc123", **params: str) -> requests.Session:
    """A browser logged into the member area through the SSO link."""
    browser = requests.Session()
    response = browser.get(sb.sso_url(partner_id, **params), allow_redirects=False, timeout=5)
    assert response.status_code == 302, response.text
    return browser


def page(sb: Sandbox, browser: requests.Session, path: str) -> str:
    response = browser.get(sb.url + path, timeout=5)
    assert response.status_code == 200, response.text
    return response.text


def text(html: str) -> str:
    """What the reader sees: the markup without its tags."""
    return re.sub(r"<[^>]+>", "", html)


def by_class(html: str, name: str) -> list[str]:
    """The visible text of each element whose class is exactly ``name``."""
    return [text(inner) for inner in re.findall(rf'class="{name}">(.*?)</', html, re.DOTALL)]


def header(html: str) -> str:
    match = re.search(r"<header>(.*?)</header>", html, re.DOTALL)
    assert match, html
    return match[1]


def interview_rows(html: str) -> list[list[tuple[str, str]]]:
    """Each row of the dashboard's interview table as its cells' (class, visible text)."""
    rows = re.findall(r'<tr class="interview" data-interview-id="\d+">(.*?)</tr>', html, re.DOTALL)
    return [
        [
            (css, text(inner))
            for css, inner in re.findall(r'<td(?: class="([^"]*)")?>(.*?)</td>', row)
        ]
        for row in rows
    ]


def test_track_progress_shows_as_a_percentage(sb: Sandbox) -> None:
    sb.complete_step("abc123", "Mastery Track", 1)

    html = page(sb, member(sb), "/members/dashboard")

    assert by_class(html, "track-progress") == ["0%", "50%"]
    assert '<progress max="100" value="50">50%</progress>' in html
    assert "(0 of 1 step done)" in html
    assert "(1 of 2 steps done)" in html


def test_interview_dates_are_human_readable(sb: Sandbox) -> None:
    interview = sb.start_interview("abc123", "Behavioral Questions")
    sb.update_interview(
        "abc123",
        interview["id"],
        created_at=datetime(2015, 5, 8, 9, 5, 13, tzinfo=UTC),
        updated_at="2015-05-18T16:37:13.000Z",
    )
    browser = member(sb)

    dashboard = page(sb, browser, "/members/dashboard")
    review = page(sb, browser, interview["links"]["review"])

    for html in (dashboard, review):
        assert by_class(html, "interview-started") == ["8 May 2015, 09:05 UTC"]
        assert by_class(html, "interview-updated") == ["18 May 2015, 16:37 UTC"]
        # The exact value stays machine-readable, never shown as text.
        assert '<time datetime="2015-05-18T16:37:13.000Z">' in html
        assert "2015-05-18T" not in text(html)


def test_the_header_names_the_member_before_the_partner_id(sb: Sandbox) -> None:
    shown = header(page(sb, member(sb), "/members/dashboard"))

    assert '<span id="member-name">Ada Lovelace</span>' in shown
    assert '<strong id="member-partner-id">abc123</strong>' in shown
    assert shown.index("Ada Lovelace") < shown.index("abc123")


def test_an_anonymous_member_is_named_as_such(sb: Sandbox) -> None:
    anonymous = sb.state.create_anonymous()["partner_id"]

    shown = header(page(sb, member(sb, anonymous), "/members/dashboard"))

    assert '<span id="member-name">Anonymous visitor</span>' in shown


def test_every_member_page_links_back_to_the_return_url(sb: Sandbox) -> None:
    interview = sb.start_interview("abc123")
    browser = member(sb, return_url=PARTNER_SITE)
    link = '<a id="return-link" href="https://partner.example/portal?x=1&amp;y=2">'

    for path in (
        "/members/dashboard",
        "/members/curriculum?chapter=6",
        interview["links"]["review"],
        interview["links"]["retake"],
    ):
        assert link in header(page(sb, browser, path)), path


@pytest.mark.parametrize("return_url", [None, "javascript:alert(1)"])
def test_no_return_link_without_a_usable_return_url(sb: Sandbox, return_url: str | None) -> None:
    params = {"return_url": return_url} if return_url else {}

    html = page(sb, member(sb, **params), "/members/dashboard")

    assert 'id="return-link"' not in html
    assert "javascript:" not in html


@pytest.mark.parametrize("cookie", [None, "a-session-the-sandbox-no-longer-knows"])
def test_without_a_session_a_page_says_how_to_log_in_again(sb: Sandbox, cookie: str | None) -> None:
    # No cookie: the browser was restarted. An unknown one: the sandbox was.
    browser = requests.Session()
    if cookie:
        browser.cookies.set(f"bi_sandbox_session_{sb.port}", cookie)

    response = browser.get(sb.url + "/members/dashboard", timeout=5)

    assert response.status_code == 401
    assert 'id="not-logged-in"' in response.text
    shown = text(response.text)
    assert "You are not logged in" in shown
    assert "go back there and click its Practice interviews link" in shown
    assert "<header>" not in response.text  # no member, no logout button


def test_retake_is_offered_only_once_an_interview_is_finished(sb: Sandbox) -> None:
    interview = sb.start_interview("abc123", "Top 10 Questions")
    browser = member(sb)

    unfinished = [
        page(sb, browser, "/members/dashboard"),
        page(sb, browser, interview["links"]["review"]),
    ]
    completed = browser.post(
        f"{sb.url}/members/mock_interviews/{interview['id']}/complete", timeout=5
    ).text
    finished = [page(sb, browser, "/members/dashboard"), completed]

    retake = '<a class="retake-interview" href="/members/mock_interviews/interview_info/52">'
    for html in unfinished:
        assert "Retake" not in text(html)
        assert 'class="complete-interview"' in html
    for html in finished:
        assert retake + "Retake</a>" in html
        assert 'class="complete-interview"' not in html
    assert 'id="start-interview"' in page(sb, browser, interview["links"]["retake"])


def test_the_interview_list_shows_title_category_and_status_apart(sb: Sandbox) -> None:
    first = sb.start_interview("abc123", "Behavioral Questions")
    sb.complete_interview("abc123", first["id"])
    sb.start_interview("abc123", "Behavioral Questions")

    html = page(sb, member(sb), "/members/dashboard")

    assert re.search(
        r'<table id="interviews"><thead><tr><th>Interview</th><th>Category</th>'
        r"<th>Status</th>",
        html,
    )
    rows = [cells[:3] for cells in interview_rows(html)]
    assert rows == [
        [
            ("interview-title", "Behavioral Questions"),
            ("interview-category", "Behavioral Questions: 2"),
            ("interview-status", "in progress"),
        ],
        [
            ("interview-title", "Behavioral Questions"),
            ("interview-category", "Behavioral Questions: 1"),
            ("interview-status", "completed"),
        ],
    ]


def test_an_empty_interview_list_says_so(sb: Sandbox) -> None:
    html = page(sb, member(sb), "/members/dashboard")

    assert interview_rows(html) == []
    assert '<tbody><tr><td colspan="6" class="muted">No interviews yet.</td></tr></tbody>' in html


def test_partner_supplied_strings_are_escaped_everywhere(sb: Sandbox) -> None:
    script = "<script>alert(1)</script>"
    sb.create_user("evil", first_name=script, last_name='"><img src=x onerror=alert(2)>')
    interview = sb.start_interview("evil", script)
    sb.update_interview("evil", interview["id"], category=script, interviewer_name=script)
    browser = member(sb, "evil", return_url='https://partner.example/"><script>x</script>')

    for path in ("/members/dashboard", interview["links"]["review"], interview["links"]["retake"]):
        html = page(sb, browser, path)
        assert "<script>" not in html, path
        assert "<img" not in html, path
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html, path
    assert 'href="https://partner.example/&quot;&gt;&lt;script&gt;x&lt;/script&gt;"' in html
