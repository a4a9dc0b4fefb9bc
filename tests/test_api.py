"""The REST API: the user's own account and interviews, staff listings, the schema."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_biginterview.testing.factories import (
    AccountWithTokenFactory,
    InterviewFactory,
    TrackFactory,
    TrackStepFactory,
    UserFactory,
)
from tests.support.web import logged_in

pytestmark = pytest.mark.django_db

LOGIN_REQUIRED = "django.contrib.auth.middleware.LoginRequiredMiddleware"
ROUTES = ["api-me", "api-me-interviews", "api-accounts", "api-interviews", "api-tracks"]


@pytest.fixture
def account():
    account = AccountWithTokenFactory(partner_id="ada-api")
    fast = TrackFactory(account=account, title="Fast Track", progress="1.0", position=0)
    TrackStepFactory(track=fast, step=1, title="Tell me about yourself", completed=True)
    mastery = TrackFactory(account=account, title="Mastery Track", progress="0.5", position=1)
    TrackStepFactory(track=mastery, step=1, completed=True)
    TrackStepFactory(track=mastery, step=2, link="/members/curriculum?chapter=6")
    return account


def with_view_permissions(user, *models: str):
    user.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label="biginterview", codename__in=[f"view_{m}" for m in models]
        )
    )
    return user


@pytest.fixture
def staff_client() -> Client:
    """Staff with the view permission on each model the staff listings show."""
    staff = UserFactory(username="staff", is_staff=True)
    return logged_in(with_view_permissions(staff, "account", "interview", "track"))


@pytest.fixture
def user_client() -> Client:
    """Signed in, no staff status: may read the schema (``API_SCHEMA_ACCESS`` default)."""
    return logged_in(UserFactory(username="reader"))


@pytest.mark.parametrize("route", ROUTES)
def test_anonymous_clients_get_json_errors_not_a_login_redirect(client, route) -> None:
    response = client.get(reverse(f"biginterview:{route}"))
    assert response.status_code in (401, 403)
    assert response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("route", ROUTES)
def test_login_required_middleware_does_not_redirect_the_api(client, settings, route) -> None:
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, LOGIN_REQUIRED]
    response = client.get(reverse(f"biginterview:{route}"))
    assert response.status_code in (401, 403)
    assert response["Content-Type"].startswith("application/json")


def test_me_without_an_account_is_404() -> None:
    response = logged_in(UserFactory()).get(reverse("biginterview:api-me"))
    assert response.status_code == 404


def test_me_shows_tracks_with_steps_and_never_the_token(account) -> None:
    InterviewFactory(account=account)
    InterviewFactory(account=account, deleted_at=timezone.now())

    response = logged_in(account.user).get(reverse("biginterview:api-me"))

    assert response.status_code == 200
    body = response.json()
    assert body["partner_id"] == "ada-api"
    assert body["interview_count"] == 1
    assert body["remote_missing"] is False
    assert [t["title"] for t in body["tracks"]] == ["Fast Track", "Mastery Track"]
    mastery = body["tracks"][1]
    assert mastery["progress"] == 0.5 and mastery["percent"] == 50
    assert mastery["steps"][1] == {
        "step": 2,
        "title": mastery["steps"][1]["title"],
        "link": "/members/curriculum?chapter=6",
        "completed": False,
    }
    assert account.sso_token not in response.content.decode()
    assert "token" not in response.content.decode()


def test_me_interviews_are_mine_newest_first_without_deleted_and_paginated(account) -> None:
    now = timezone.now()
    mine = [
        InterviewFactory(account=account, remote_updated_at=now - timedelta(minutes=n))
        for n in range(25)
    ]
    InterviewFactory(account=account, remote_updated_at=now, deleted_at=now)
    InterviewFactory()  # someone else's

    client = logged_in(account.user)
    first = client.get(reverse("biginterview:api-me-interviews")).json()
    second = client.get(first["next"]).json()

    assert first["count"] == 25
    ids = [item["id"] for item in first["results"] + second["results"]]
    assert ids == [row.remote_id for row in mine]
    item = first["results"][0]
    assert item["links"] == {"review": mine[0].review_path, "retake": mine[0].retake_path}
    assert set(item) == {
        "id",
        "title",
        "interviewer_name",
        "category",
        "completed",
        "created_at",
        "updated_at",
        "links",
    }
    assert len(first["results"]) == 20 and second["next"] is None


@pytest.mark.parametrize("route", ["api-accounts", "api-interviews", "api-tracks"])
def test_staff_endpoints_refuse_regular_users(account, route) -> None:
    response = logged_in(account.user).get(reverse(f"biginterview:{route}"))
    assert response.status_code == 403


def test_staff_accounts_filter_by_partner_id_without_tokens(account, staff_client) -> None:
    other = AccountWithTokenFactory(partner_id="other-api")
    InterviewFactory.create_batch(3, account=account)

    everyone = staff_client.get(reverse("biginterview:api-accounts")).json()
    only = staff_client.get(reverse("biginterview:api-accounts"), {"partner_id": "ada-api"})

    assert everyone["count"] == 2
    assert [a["partner_id"] for a in only.json()["results"]] == ["ada-api"]
    assert only.json()["results"][0]["interview_count"] == 3
    assert only.json()["results"][0]["user"] == str(account.user.pk)
    text = str(everyone)
    assert account.sso_token not in text and other.sso_token not in text


def test_staff_account_list_query_count_does_not_grow(account, staff_client) -> None:
    from django.db import connection

    url = reverse("biginterview:api-accounts")
    with CaptureQueriesContext(connection) as few:
        staff_client.get(url)
    for _ in range(15):
        extra = AccountWithTokenFactory()
        TrackStepFactory(track=TrackFactory(account=extra))
        InterviewFactory(account=extra)
    with CaptureQueriesContext(connection) as many:
        assert staff_client.get(url).json()["count"] == 16
    assert len(many) == len(few)


def test_staff_interviews_and_tracks_filter_by_partner_id(account, staff_client) -> None:
    InterviewFactory.create_batch(2, account=account)
    deleted = InterviewFactory(account=account, deleted_at=timezone.now())
    InterviewFactory()

    body = staff_client.get(
        reverse("biginterview:api-interviews"), {"partner_id": "ada-api"}
    ).json()
    tracks = staff_client.get(reverse("biginterview:api-tracks"), {"partner_id": "ada-api"}).json()

    assert body["count"] == 3
    assert {i["partner_id"] for i in body["results"]} == {"ada-api"}
    assert any(i["id"] == deleted.remote_id and i["deleted_at"] for i in body["results"])
    assert [t["title"] for t in tracks["results"]] == ["Fast Track", "Mastery Track"]
    assert len(tracks["results"][1]["steps"]) == 2


def test_openapi_schema_lists_the_endpoints(user_client) -> None:
    response = user_client.get(reverse("biginterview:api-schema"), {"format": "json"})
    assert response.status_code == 200
    paths = response.json()["paths"]
    for route in ROUTES:
        assert reverse(f"biginterview:{route}") in paths
    me = paths[reverse("biginterview:api-me")]["get"]["responses"]["200"]
    assert "token" not in str(response.json()["components"]["schemas"]).lower()
    assert me


@pytest.mark.parametrize("route", ["api-accounts", "api-interviews", "api-tracks"])
@pytest.mark.parametrize("partner_id", ["nul\x00byte", "x" * 65, "has space"])
def test_staff_filter_with_an_impossible_partner_id_finds_nothing(
    account, staff_client, route, partner_id
) -> None:
    InterviewFactory(account=account)
    response = staff_client.get(reverse(f"biginterview:{route}"), {"partner_id": partner_id})
    assert response.status_code == 200
    assert response.json()["count"] == 0


def documented_statuses(reader: Client, path: str) -> set[int]:
    schema = reader.get(reverse("biginterview:api-schema"), {"format": "json"}).json()
    return {int(code) for code in schema["paths"][path]["get"]["responses"]}


@pytest.mark.parametrize("route", ROUTES)
def test_every_answer_the_api_gives_is_in_its_schema(
    account, staff_client, user_client, client, route
) -> None:
    """What a schema-driven client (or schemathesis) sees must be documented: success,
    anonymous, not allowed (staff routes), and no such page or account."""
    path = reverse(f"biginterview:{route}")
    staff = route not in ("api-me", "api-me-interviews")
    seen = {
        client.get(path).status_code,  # anonymous
        logged_in(account.user).get(path).status_code,  # 403 on staff routes, else 200
        (staff_client if staff else logged_in(account.user)).get(path).status_code,
        (staff_client if staff else logged_in(UserFactory())).get(path, {"page": 999}).status_code,
        (staff_client if staff else logged_in(account.user))
        .get(path, {"page_size": "x"})
        .status_code,
    }
    assert 404 in seen and 200 in seen
    assert seen <= documented_statuses(user_client, path)


@pytest.mark.parametrize(
    ("page_size", "status", "shown"),
    [("5", 200, 5), ("500", 200, 100), ("0", 400, None), ("-3", 400, None), ("ten", 400, None)],
)
def test_page_size_is_honoured_capped_or_refused(account, page_size, status, shown) -> None:
    for minutes in range(110):
        InterviewFactory(
            account=account, remote_updated_at=timezone.now() - timedelta(minutes=minutes)
        )
    response = logged_in(account.user).get(
        reverse("biginterview:api-me-interviews"), {"page_size": page_size}
    )
    assert response.status_code == status
    if shown is None:
        assert response.json() == {"page_size": ["Must be a positive integer."]}
    else:
        assert len(response.json()["results"]) == shown


def test_the_schema_leaves_itself_out(user_client) -> None:
    paths = user_client.get(reverse("biginterview:api-schema"), {"format": "json"}).json()["paths"]
    assert reverse("biginterview:api-schema") not in paths
    assert reverse("biginterview:api-me") in paths
