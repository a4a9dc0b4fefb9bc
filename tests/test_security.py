"""Security review (issue #13): secrets unreachable through admin URLs, the API schema
limited to this app and to the readers ``API_SCHEMA_ACCESS`` names, the staff API behind
the models' view permissions, ``redirect_to`` limited to the member area."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.test import Client, RequestFactory
from django.urls import include, path, reverse

from django_biginterview import sso
from django_biginterview.admin import ReadOnlyAdmin
from django_biginterview.exceptions import InvalidSetting
from django_biginterview.models import Account, Interview, SyncRun, Track, WebhookEvent
from django_biginterview.testing.factories import (
    AccountWithTokenFactory,
    InterviewFactory,
    SyncRunFactory,
    TrackFactory,
    TrackStepFactory,
    UserFactory,
    WebhookEventFactory,
)
from tests.support.web import PRACTICE, logged_in, login_params
from tests.urls import HostPrivateView

TOKEN = "7" + "3f9c0e" * 10 + "a21"  # 64 characters, like a real one; the probes' miss is "8"
APP_MODELS = (Account, Interview, SyncRun, Track, WebhookEvent)
SECRETS = {Account: "sso_token", Interview: "raw", WebhookEvent: "payload"}


def with_permissions(user: Any, *codenames: str) -> Any:
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def changelist(model: type) -> str:
    return reverse(f"admin:biginterview_{model._meta.model_name}_changelist")


# --- 1. Admin: no lookup on a secret column ---------------------------------------------


@pytest.fixture
def secrets(db: None) -> Account:
    account = AccountWithTokenFactory(partner_id="p-secret", sso_token=TOKEN)
    TrackStepFactory(track=TrackFactory(account=account))
    InterviewFactory(account=account, raw={"id": 1, "private_note": "s3cret"})
    WebhookEventFactory(partner_id="p-secret")
    SyncRunFactory()
    return account


@pytest.fixture
def viewer(db: None) -> Client:
    """Staff holding only the view permissions: what the admin lets them see, no more."""
    user = UserFactory(username="viewer", is_staff=True)
    return logged_in(with_permissions(user, *(f"view_{m._meta.model_name}" for m in APP_MODELS)))


# (model, lookup, a value the secret matches, a value it does not)
SECRET_PROBES = [
    (Account, "sso_token__startswith", TOKEN[0], "8"),
    (Account, "sso_token__regex", f"^{TOKEN[0]}", "^8"),
    (Account, "sso_token__gt", TOKEN[0], "8"),
    (Account, "sso_token", TOKEN, "8" * 64),
    (Account, "user__biginterview_account__sso_token__startswith", TOKEN[0], "8"),
    (Track, "account__sso_token__startswith", TOKEN[0], "8"),
    (Interview, "account__sso_token__startswith", TOKEN[0], "8"),
    (Interview, "raw__private_note", "s3cret", "other"),
    (Interview, "raw__private_note__startswith", "s", "x"),
    (WebhookEvent, "payload__webhook__partner_id", "p-secret", "other"),
    (WebhookEvent, "payload__contains", '{"webhook": {"partner_id": "p-secret"}}', "{}"),
    (SyncRun, "failures__isnull", "False", "True"),
]


@pytest.mark.parametrize(("model", "lookup", "hit", "miss"), SECRET_PROBES)
def test_no_lookup_outside_the_declared_filters_can_tell_a_secret(
    secrets: Account, viewer: Client, model: type, lookup: str, hit: str, miss: str
) -> None:
    right = viewer.get(changelist(model), {lookup: hit})
    wrong = viewer.get(changelist(model), {lookup: miss})
    assert right.status_code == wrong.status_code == 400
    assert right.content == wrong.content


@pytest.mark.parametrize(("model", "field"), [*SECRETS.items(), (Account, "last_sync_error")])
def test_to_field_cannot_reference_a_secret(
    secrets: Account, viewer: Client, model: type, field: str
) -> None:
    response = viewer.get(changelist(model), {"_to_field": field, "_popup": "1"})
    assert response.status_code == 400
    assert TOKEN not in response.content.decode()


def test_search_does_not_look_at_the_token(secrets: Account, viewer: Client) -> None:
    for query in (TOKEN, TOKEN[:8]):
        assert "p-secret" not in viewer.get(changelist(Account), {"q": query}).content.decode()
    assert "p-secret" in viewer.get(changelist(Account), {"q": "p-secret"}).content.decode()


@pytest.mark.parametrize("model", APP_MODELS)
def test_every_app_admin_is_strict_and_keeps_secrets_out_of_its_lists(model: type) -> None:
    model_admin = admin.site._registry[model]
    assert isinstance(model_admin, ReadOnlyAdmin)
    secret = SECRETS.get(model)
    if secret is None:
        return
    assert secret in model_admin.secret_fields
    named = [
        *model_admin.list_display,
        *(model_admin.sortable_by or ()),
        *(model_admin.ordering or ()),
        *(f for f in model_admin.list_filter if isinstance(f, str)),
        model_admin.date_hierarchy or "",
    ]
    searched = model_admin.get_search_fields(RequestFactory().get("/"))
    assert not any(secret in re.split(r"__|[=^@-]", name) for name in [*named, *searched])
    assert all(secret not in action for action in model_admin.actions or ())


@pytest.mark.parametrize("model", APP_MODELS)
def test_declared_filters_date_links_and_django_parameters_keep_working(
    secrets: Account, viewer: Client, model: type
) -> None:
    """Every link the changelist renders (filters, date hierarchy, facets, sorting) and
    Django's own parameters still answer 200."""
    url = changelist(model)
    page = viewer.get(url, {"_facets": "True"})
    assert page.status_code == 200
    links = set(re.findall(r'href="(\?[^"]*)"', page.content.decode()))
    assert links, "no filter or sort link rendered"
    for link in links:
        response = viewer.get(url + link.replace("&amp;", "&"))
        assert response.status_code == 200, link
    for params in ({"o": "1.-2", "p": "1", "q": "x"}, {"e": "1"}, {"all": ""}, {"_popup": "1"}):
        assert viewer.get(url, params).status_code == 200, params
    assert viewer.get(url, {"_to_field": "id", "_popup": "1"}).status_code == 200


def result_count(client: Client, model: type, params: dict[str, str]) -> int:
    response = client.get(changelist(model), params)
    assert response.status_code == 200
    return int(response.context["cl"].result_count)


def test_the_date_hierarchy_and_date_filters_still_filter(secrets: Account, viewer: Client) -> None:
    day = Interview.objects.get().remote_updated_at
    assert day is not None
    that_day = {
        "remote_updated_at__year": str(day.year),
        "remote_updated_at__month": str(day.month),
        "remote_updated_at__day": str(day.day),
    }
    assert result_count(viewer, Interview, that_day) == 1
    assert result_count(viewer, Interview, {"remote_updated_at__year": "1999"}) == 0
    assert result_count(viewer, Account, {"last_synced_at__isnull": "True"}) == 1
    assert result_count(viewer, Account, {"last_synced_at__isnull": "False"}) == 0


# --- 2. The schema: this app only, for the readers API_SCHEMA_ACCESS names -------------

SCHEMA = "biginterview:api-schema"


def schema_paths(client: Client) -> list[str]:
    response = client.get(reverse(SCHEMA), {"format": "json"})
    assert response.status_code == 200
    return list(response.json()["paths"])


@pytest.mark.parametrize("access", [None, "authenticated", "staff"])
def test_anonymous_visitors_cannot_read_the_schema(
    client: Client, settings: Any, access: str | None
) -> None:
    if access is not None:
        settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "API_SCHEMA_ACCESS": access}
    response = client.get(reverse(SCHEMA), {"format": "json"})
    assert response.status_code in (401, 403)
    assert b"paths" not in response.content


@pytest.mark.django_db
def test_the_schema_lists_this_app_only_at_its_mount_point() -> None:
    paths = schema_paths(logged_in(UserFactory()))
    mount = reverse("biginterview:practice").removesuffix("practice/")
    assert mount == "/biginterview/"
    assert paths and all(p.startswith(mount) for p in paths)
    assert reverse("biginterview:webhook") in paths
    assert reverse("biginterview:api-accounts") in paths
    assert reverse("host-private-api") not in paths


# A project that mounts the app elsewhere, next to an API of its own.
urlpatterns = [
    path("host/private-api/", HostPrivateView.as_view()),
    path("partners/bi/", include("django_biginterview.urls")),
]


@pytest.mark.django_db
def test_the_schema_follows_the_hosts_mount_point(settings: Any) -> None:
    settings.ROOT_URLCONF = __name__
    paths = schema_paths(logged_in(UserFactory()))
    assert "/partners/bi/webhook/" in paths
    assert "/partners/bi/api/me/" in paths
    assert all(p.startswith("/partners/bi/") for p in paths)


@pytest.mark.django_db
def test_staff_access_lets_only_staff_read_the_schema(settings: Any) -> None:
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "API_SCHEMA_ACCESS": "staff"}
    assert logged_in(UserFactory()).get(reverse(SCHEMA)).status_code == 403
    assert schema_paths(logged_in(UserFactory(username="op", is_staff=True)))


def test_public_access_lets_anyone_read_the_schema(client: Client, settings: Any) -> None:
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "API_SCHEMA_ACCESS": "public"}
    assert reverse("biginterview:webhook") in schema_paths(client)


def test_an_unknown_schema_access_value_is_refused_not_guessed(
    client: Client, settings: Any
) -> None:
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "API_SCHEMA_ACCESS": "Public"}
    with pytest.raises(InvalidSetting, match="API_SCHEMA_ACCESS"):
        client.get(reverse(SCHEMA))


# --- 3. The staff API: staff status and the model's view permission ---------------------

STAFF_ROUTES = {"api-accounts": "account", "api-interviews": "interview", "api-tracks": "track"}


@pytest.mark.django_db
@pytest.mark.parametrize("route", STAFF_ROUTES)
def test_staff_without_the_view_permission_get_403(route: str) -> None:
    AccountWithTokenFactory(partner_id="p-hidden")
    staff = UserFactory(username="staff", is_staff=True)
    others = [m for r, m in STAFF_ROUTES.items() if r != route]
    with_permissions(staff, *(f"view_{m}" for m in others), "change_account")
    response = logged_in(staff).get(reverse(f"biginterview:{route}"))
    assert response.status_code == 403
    assert b"p-hidden" not in response.content


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "model"), STAFF_ROUTES.items())
def test_staff_with_the_view_permission_and_superusers_get_200(route: str, model: str) -> None:
    staff = with_permissions(UserFactory(username="staff", is_staff=True), f"view_{model}")
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    for user in (staff, root):
        assert logged_in(user).get(reverse(f"biginterview:{route}")).status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "model"), STAFF_ROUTES.items())
def test_the_view_permission_without_staff_status_is_not_enough(route: str, model: str) -> None:
    user = with_permissions(UserFactory(username="clerk"), f"view_{model}")
    assert logged_in(user).get(reverse(f"biginterview:{route}")).status_code == 403


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "model"), STAFF_ROUTES.items())
def test_writing_methods_stay_405(route: str, model: str) -> None:
    staff = with_permissions(UserFactory(username="staff", is_staff=True), f"view_{model}")
    assert logged_in(staff).post(reverse(f"biginterview:{route}")).status_code == 405


@pytest.mark.django_db
@pytest.mark.parametrize(("route", "model"), STAFF_ROUTES.items())
def test_the_schema_documents_the_permission_in_the_403(route: str, model: str) -> None:
    schema = logged_in(UserFactory()).get(reverse(SCHEMA), {"format": "json"}).json()
    forbidden = schema["paths"][reverse(f"biginterview:{route}")]["get"]["responses"]["403"]
    assert f"permission to view {model}s" in forbidden["description"]


@pytest.mark.django_db
@pytest.mark.parametrize("route", ["api-me", "api-me-interviews"])
def test_the_users_own_routes_need_no_model_permission(route: str) -> None:
    account = AccountWithTokenFactory()
    assert logged_in(account.user).get(reverse(f"biginterview:{route}")).status_code == 200


# --- 4. redirect_to: Big Interview's member area only -----------------------------------

OUTSIDE_THE_MEMBER_AREA = [
    "/sso/logout?return_url=http:evil.com",
    "/sso/logout?return_url=https%3A%2F%2Fevil.example%2F",
    "/sso/logout",
    "/sso/login",
    "/sso/login?token=someone-elses",
    "/api/users/abc123",
    "/api/users/abc123/interviews",
    "/",
    "/membersx",
    "/members-evil",
    "/members/../sso/logout?return_url=http:evil.com",
    "/members/%2e%2e/sso/logout",
    "/members/%2E%2E/sso/logout",
    "/members/%252e%252e/sso/logout",
    "/members/.%2e/sso/logout",
    "/members/./dashboard",
    "/members/dashboard/..",
]

MEMBER_AREA = [
    "/members",
    "/members/",
    "/members/dashboard",
    "/members/curriculum?chapter=6",
    "/members/mock_interviews/95607/review",
    "/members/mock_interviews/interview_info/52",
    "/members/dashboard?return_url=http:evil.com",  # a query of a member page, not a logout
    "/members/..hidden/file",
]


@pytest.mark.parametrize("value", OUTSIDE_THE_MEMBER_AREA)
def test_redirect_to_outside_the_member_area_is_dropped(value: str) -> None:
    assert sso.clean_redirect_to(value) is None


@pytest.mark.parametrize("value", MEMBER_AREA)
def test_member_area_paths_are_forwarded(value: str) -> None:
    assert sso.clean_redirect_to(value) == value


@pytest.mark.django_db
def test_the_default_landing_page_and_synced_step_links_pass() -> None:
    assert sso.default_redirect_to() == "/members/dashboard"
    step = TrackStepFactory()  # the link the sync stores, as the API documents it
    assert sso.clean_redirect_to(step.link) == step.link
    interview = InterviewFactory()
    for link in (interview.review_path, interview.retake_path):
        assert sso.clean_redirect_to(link) == link


@pytest.mark.django_db
@pytest.mark.parametrize(
    "value", ["/sso/logout?return_url=http:evil.com", "/sso/login", "/api/users/abc123"]
)
def test_the_practice_view_falls_back_to_the_default_landing_page(
    client: Client, biginterview_sandbox: Any, value: str
) -> None:
    client.force_login(UserFactory(email="ada@example.com"))
    response = client.get(PRACTICE, {"redirect_to": value})
    assert login_params(response)["redirect_to"] == "/members/dashboard"
    assert "evil" not in response["Location"] and "sso%2F" not in response["Location"]


@pytest.mark.django_db
def test_the_practice_view_forwards_a_member_page(
    client: Client, biginterview_sandbox: Any
) -> None:
    client.force_login(UserFactory(email="ada@example.com"))
    response = client.get(PRACTICE, {"redirect_to": "/members/curriculum?chapter=6"})
    assert login_params(response)["redirect_to"] == "/members/curriculum?chapter=6"
