"""The sandbox's SSO login/logout and member area, over real HTTP with a cookie session."""

from __future__ import annotations

import re
from collections.abc import Iterator
from urllib.parse import quote

import pytest
import requests

from django_biginterview.sandbox import Sandbox


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    sandbox = Sandbox().start()
    sandbox.create_user("abc123", first_name="Ada", last_name="Lovelace")
    yield sandbox
    sandbox.stop()


def login(sb: Sandbox, browser: requests.Session, **params: str) -> requests.Response:
    return browser.get(sb.sso_url("abc123", **params), allow_redirects=False, timeout=5)


def interview_ids(html: str) -> list[int]:
    return [int(value) for value in re.findall(r'data-interview-id="(\d+)"', html)]


def test_valid_token_logs_in_and_lands_on_the_dashboard(sb: Sandbox) -> None:
    browser = requests.Session()

    response = login(sb, browser)

    assert response.status_code == 302
    assert response.headers["Location"] == "/members/dashboard"
    assert "HttpOnly" in response.headers["Set-Cookie"]
    dashboard = browser.get(sb.url + "/members/dashboard", timeout=5)
    assert dashboard.status_code == 200
    assert '<strong id="member-partner-id">abc123</strong>' in dashboard.text
    assert '<span id="member-name">Ada Lovelace</span>' in dashboard.text
    assert 'id="start-interview"' in dashboard.text


def test_redirect_to_lands_on_that_path(sb: Sandbox) -> None:
    browser = requests.Session()
    token = sb.get_user("abc123")["token"]
    # Encoded exactly as in the spec's example.
    redirect_to = quote("/members/curriculum?chapter=6", safe="")
    assert redirect_to == "%2Fmembers%2Fcurriculum%3Fchapter%3D6"
    url = f"{sb.url}/sso/login?token={token}&redirect_to={redirect_to}"

    response = browser.get(url, allow_redirects=False, timeout=5)

    assert response.headers["Location"] == "/members/curriculum?chapter=6"
    page = browser.get(sb.url + response.headers["Location"], timeout=5)
    assert page.status_code == 200
    assert "Why do you want to work here?" in page.text


@pytest.mark.parametrize(
    "target", ["https://evil.example/", "//evil.example/x", "members/dashboard"]
)
def test_redirect_to_outside_the_sandbox_is_refused(sb: Sandbox, target: str) -> None:
    response = login(sb, requests.Session(), redirect_to=target)

    assert response.status_code == 400
    assert "Set-Cookie" not in response.headers
    assert "redirect_to must be a path" in response.text


def test_bad_missing_and_expired_tokens_show_an_error_page(sb: Sandbox) -> None:
    browser = requests.Session()
    bad = browser.get(sb.url + "/sso/login?token=" + "0" * 64, allow_redirects=False, timeout=5)
    missing = browser.get(sb.url + "/sso/login", allow_redirects=False, timeout=5)
    sb.expire_token("abc123")
    expired = login(sb, browser)

    for response in (bad, missing, expired):
        assert response.status_code == 401
        assert 'id="sso-error"' in response.text
        assert "Set-Cookie" not in response.headers
    assert "invalid" in bad.text
    assert "has expired" in expired.text
    assert browser.get(sb.url + "/members/dashboard", timeout=5).status_code == 401


def test_a_refreshed_token_replaces_the_previous_one(sb: Sandbox) -> None:
    old = sb.get_user("abc123")["token"]
    sb.create_user("abc123")

    response = requests.get(f"{sb.url}/sso/login?token={old}", allow_redirects=False, timeout=5)

    assert response.status_code == 401


def test_member_pages_need_a_session(sb: Sandbox) -> None:
    response = requests.get(sb.url + "/members/dashboard", timeout=5)

    assert response.status_code == 401
    assert 'id="not-logged-in"' in response.text


def test_logout_goes_to_return_url_and_ends_the_session(sb: Sandbox) -> None:
    browser = requests.Session()
    login(sb, browser, return_url="https://partner.example/portal?x=1")

    response = browser.post(sb.url + "/sso/logout", allow_redirects=False, timeout=5)

    assert response.status_code == 303
    assert response.headers["Location"] == "https://partner.example/portal?x=1"
    assert browser.get(sb.url + "/members/dashboard", timeout=5).status_code == 401


def test_logout_without_return_url_goes_to_the_landing_page(sb: Sandbox) -> None:
    browser = requests.Session()
    login(sb, browser)

    response = browser.get(sb.url + "/sso/logout", timeout=5)

    assert response.status_code == 200
    assert response.url == sb.url + "/"
    assert 'id="landing"' in response.text


def test_sessions_of_two_sandboxes_on_one_host_do_not_mix(sb: Sandbox) -> None:
    with Sandbox() as other:
        browser = requests.Session()
        login(sb, browser)
        assert browser.get(other.url + "/members/dashboard", timeout=5).status_code == 401


def test_member_starts_completes_and_deletes_an_interview(sb: Sandbox) -> None:
    browser = requests.Session()
    login(sb, browser)

    started = browser.post(
        sb.url + "/members/mock_interviews/start", data={"title": "Behavioral Questions"}, timeout=5
    )
    assert started.status_code == 200
    [interview] = sb.interviews("abc123")
    assert started.url == f"{sb.url}/members/mock_interviews/{interview['id']}/review"
    assert interview["title"] == "Behavioral Questions"
    assert interview["completed"] is False
    assert 'class="complete-interview"' in started.text

    completed = browser.post(
        f"{sb.url}/members/mock_interviews/{interview['id']}/complete", timeout=5
    )
    assert completed.status_code == 200
    assert '<span id="interview-status" class="interview-status">completed</span>' in completed.text
    assert sb.interviews("abc123")[0]["completed"] is True
    assert 'class="complete-interview"' not in completed.text

    dashboard = browser.get(sb.url + "/members/dashboard", timeout=5)
    assert interview_ids(dashboard.text) == [interview["id"]]
    deleted = browser.post(f"{sb.url}/members/mock_interviews/{interview['id']}/delete", timeout=5)
    assert deleted.url == sb.url + "/members/dashboard"
    assert interview_ids(deleted.text) == []
    assert sb.interviews("abc123") == []
    assert [p["webhook"]["event_name"] for p in sb.notifications] == [
        "interview.created",
        "interview.updated",
        "interview.deleted",
    ]


def test_member_marks_a_step_done_and_progress_moves(sb: Sandbox) -> None:
    browser = requests.Session()
    login(sb, browser)

    response = browser.post(
        sb.url + "/members/tracks/complete-step",
        data={"track": "Mastery Track", "step": "1", "next": "/members/dashboard"},
        timeout=5,
    )

    assert response.status_code == 200
    assert re.search(
        r'data-title="Mastery Track">.*?class="track-progress">50%<', response.text, re.DOTALL
    )
    assert sb.tracks("abc123")[1]["progress"] == 0.5
    assert sb.tracks("abc123")[1]["tracks"][0]["completed"] is True


def test_member_actions_on_someone_elses_interview_are_refused(sb: Sandbox) -> None:
    sb.create_user("other")
    theirs = sb.start_interview("other")
    browser = requests.Session()
    login(sb, browser)

    response = browser.post(f"{sb.url}/members/mock_interviews/{theirs['id']}/delete", timeout=5)

    assert response.status_code == 404
    assert sb.interviews("other")[0]["id"] == theirs["id"]


def test_retake_link_starts_the_same_question_set(sb: Sandbox) -> None:
    first = sb.start_interview("abc123", "Tell Me About Yourself")
    browser = requests.Session()
    login(sb, browser, redirect_to=first["links"]["retake"])
    page = browser.get(sb.url + first["links"]["retake"], timeout=5)
    assert 'id="start-interview"' in page.text

    browser.post(
        sb.url + "/members/mock_interviews/start",
        data={"title": "Tell Me About Yourself"},
        timeout=5,
    )

    newest = sb.interviews("abc123")[0]
    assert newest["id"] != first["id"]
    assert newest["category"] == "Tell Me About Yourself: 2"
    assert newest["links"]["retake"] == first["links"]["retake"]
