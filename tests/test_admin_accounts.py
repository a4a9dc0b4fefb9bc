"""The accounts list and the account page as an operator reads them: who each account
is, in a few narrow columns, and each track's title once."""

from __future__ import annotations

import hashlib
import html as html_module
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.contrib.staticfiles import finders
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from django_biginterview.models import Account
from django_biginterview.testing.factories import (
    AccountFactory,
    AnonymousAccountFactory,
    InterviewFactory,
    TrackFactory,
    TrackStepFactory,
    UserFactory,
)
from tests.support.services import require_service

pytestmark = pytest.mark.django_db

ACCOUNTS = reverse("admin:biginterview_account_changelist")
CHROMIUM = "/usr/bin/chromium"


@pytest.fixture
def admin_client_() -> Client:
    client = Client()
    client.force_login(UserFactory(username="root", is_staff=True, is_superuser=True))
    return client


def columns(html: str) -> list[str]:
    """The classes of the list's header cells, checkbox column included."""
    head = re.search(r"<thead>.*?</thead>", html, re.S)
    assert head, "no list"
    return re.findall(r'<th scope="col" class="([^"]*)"', head.group(0))


def row_of(html: str, partner_id: str) -> str:
    for row in re.findall(r"<tr>.*?</tr>", html, re.S):
        if partner_id in row:
            return str(row)
    raise AssertionError(f"no row for {partner_id}")


def test_the_list_has_four_columns_and_the_stylesheet_that_keeps_them_narrow(
    admin_client_: Client,
) -> None:
    AccountFactory()
    html = admin_client_.get(ACCOUNTS).content.decode()
    assert [c.split()[0] for c in columns(html)] == [
        "action-checkbox-column",
        "column-account",
        "column-track_progress",
        "column-interview_count",
        "sortable",  # the last sync, ordered by last_synced_at (an index serves it)
    ]
    assert "column-sync_state" in columns(html)[-1]
    assert "biginterview/admin.css" in html


def test_each_account_shows_the_users_name_email_and_partner_id(admin_client_: Client) -> None:
    ada = AccountFactory(
        partner_id="p-ada",
        user=UserFactory(username="ada", first_name="Ada", last_name="<Lovelace>",
                         email="ada@example.test"),
    )  # fmt: skip
    AccountFactory(
        partner_id="p-nameless",
        user=UserFactory(username="nameless", first_name="", last_name="", email=""),
    )
    AnonymousAccountFactory(partner_id="anon_visitor")

    html = admin_client_.get(ACCOUNTS).content.decode()

    row = row_of(html, "p-ada")
    link = reverse("admin:biginterview_account_change", args=[ada.pk])
    assert f'<a href="{link}">' in row
    assert '<span class="bi-line" title="Ada &lt;Lovelace&gt;">Ada &lt;Lovelace&gt;</span>' in row
    assert ">ada@example.test</span>" in row
    assert '<code class="bi-line bi-quiet" title="p-ada">p-ada</code>' in row
    assert '<span class="bi-line" title="nameless">nameless</span>' in row_of(html, "p-nameless")
    assert ">anonymous visitor</span>" in row_of(html, "anon_visitor")


def test_the_last_sync_column_holds_the_time_the_error_and_missing(admin_client_: Client) -> None:
    error = "NotFound: Big Interview refused list_tracks: User p-gone not found (HTTP 404)"
    AccountFactory(
        partner_id="p-gone",
        last_synced_at=timezone.now(),
        last_sync_error=error,
        remote_missing_at=timezone.now(),
    )
    AccountFactory(partner_id="p-new")

    html = admin_client_.get(ACCOUNTS).content.decode()

    gone = row_of(html, "p-gone")
    assert ">missing on Big Interview</span>" in gone
    assert f'<span class="bi-line bi-bad" title="{error}">{error}</span>' in gone
    assert '<td class="field-sync_state"><span class="bi-line">never</span></td>' in row_of(
        html, "p-new"
    )


def test_the_list_names_each_track_once_in_its_bars_tooltip(admin_client_: Client) -> None:
    account = AccountFactory(partner_id="p-tracks")
    TrackFactory(account=account, title="Mastery <Track>", progress="0.25", position=0)
    TrackFactory(account=account, title="Resume Writing", progress="1", position=1)

    row = row_of(admin_client_.get(ACCOUNTS).content.decode(), "p-tracks")

    assert row.count("Mastery &lt;Track&gt;") == 1
    assert (
        '<span class="bi-track" title="Mastery &lt;Track&gt;">'
        '<progress max="100" value="25">25%</progress> 25%</span>'
    ) in row
    assert row.count("Resume Writing") == 1


def test_the_account_page_shows_each_track_title_once(admin_client_: Client) -> None:
    account = AccountFactory()
    track = TrackFactory(account=account, title="Mastery <Track>", progress="0.5")
    TrackStepFactory(track=track, step=1, title="Fundamentals", completed=True)
    InterviewFactory(account=account, title="Tell me about yourself")

    html = admin_client_.get(
        reverse("admin:biginterview_account_change", args=[account.pk])
    ).content.decode()

    assert html.count("Mastery &lt;Track&gt;") == 1
    assert '<progress max="100" value="50">50%</progress> 50%' in html
    assert "Fundamentals" in html
    assert html.count("Tell me about yourself") == 1


def test_the_track_list_shows_each_title_once(admin_client_: Client) -> None:
    TrackFactory(title="Resume Writing", account=AccountFactory(partner_id="p-resume"))
    html = admin_client_.get(reverse("admin:biginterview_track_changelist")).content.decode()
    assert row_of(html, "p-resume").count("Resume Writing") == 1


@pytest.mark.parametrize(
    "term", ["p-find", "finder", "FINDER@Example.TEST"], ids=["partner", "username", "email"]
)
def test_a_search_by_partner_id_username_or_email_finds_the_account(
    admin_client_: Client, term: str
) -> None:
    AccountFactory(
        partner_id="p-find", user=UserFactory(username="finder", email="finder@example.test")
    )
    AccountFactory(partner_id="p-other")

    response: Any = admin_client_.get(ACCOUNTS, {"q": term})

    assert [a.partner_id for a in response.context["cl"].result_list] == ["p-find"]
    assert isinstance(response.context["cl"].result_list[0], Account)


# --- In a browser ---------------------------------------------------------------------------

#: Run once the page has loaded: how far the list reaches past its box (0: it fits), and
#: whether the navigation sidebar is open (the admin's default).
MEASURE = """<script>window.addEventListener("load", () => {
  const results = document.querySelector("#changelist .results");
  document.body.dataset.fit = JSON.stringify({
    overflow: results.scrollWidth - results.clientWidth,
    navigation: document.getElementById("main").classList.contains("shifted"),
  });
});</script>"""


def as_local_page(html: str) -> str:
    """``html`` with its static files as ``file://`` URLs, and :data:`MEASURE`."""

    def local(match: re.Match[str]) -> str:
        found = finders.find(match.group(2))
        assert found, match.group(2)
        return f'{match.group(1)}="{Path(str(found)).as_uri()}"'

    return re.sub(r'(href|src)="/static/([^"?]+)"', local, html).replace(
        "</body>", MEASURE + "</body>"
    )


@pytest.mark.integration
@pytest.mark.e2e
def test_the_list_fits_a_1280_pixel_window_beside_the_navigation_and_filters(
    admin_client_: Client, tmp_path: Path
) -> None:
    if shutil.which(CHROMIUM) is None:
        require_service("Chromium", f"{CHROMIUM} is not installed")
    titles = ["Mastery Track: Interview Foundations", "Resume and Cover Letter Writing"]
    for n in range(6):
        user = UserFactory(
            username=f"member{n}",
            first_name="Alexandra-Bartholomew",
            last_name="Montgomery-Smythe",
            email=f"alexandra.montgomery-smythe{n}@a-long-university-domain.example.edu",
        )
        account = AccountFactory(
            user=user,
            partner_id="u-" + hashlib.sha256(str(n).encode()).hexdigest()[:40],
            last_synced_at=timezone.now(),
            last_sync_error="NotFound: Big Interview refused list_tracks (HTTP 404)",
            remote_missing_at=timezone.now(),
        )
        for position, title in enumerate(titles):
            TrackFactory(account=account, title=title, progress="1", position=position)
        InterviewFactory.create_batch(2, account=account)
    page = tmp_path / "accounts.html"
    page.write_text(as_local_page(admin_client_.get(ACCOUNTS).content.decode()))

    dom = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--allow-file-access-from-files", "--window-size=1280,900",
         "--virtual-time-budget=5000", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout  # fmt: skip

    found = re.search(r'data-fit="([^"]*)"', dom)
    assert found, dom[-2000:]
    fit = json.loads(html_module.unescape(found.group(1)))
    assert fit == {"overflow": 0, "navigation": True}
