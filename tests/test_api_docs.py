"""The API root, the Swagger UI docs page, and the schema URL opened by a browser or a tool."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
import yaml
from django.contrib.auth.models import Permission
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.core.management.base import SystemCheckError
from django.test import Client
from django.urls import reverse
from drf_spectacular.validation import validate_schema

from django_biginterview.checks import check_docs_assets
from django_biginterview.testing.factories import AccountWithTokenFactory, UserFactory
from tests.support.app_settings import set_app_settings
from tests.support.web import logged_in

pytestmark = pytest.mark.django_db

ROOT = "biginterview:api-root"
DOCS = "biginterview:api-docs"
SCHEMA = "biginterview:api-schema"
LOGIN_REQUIRED = "django.contrib.auth.middleware.LoginRequiredMiddleware"

#: What Firefox and Chrome send when a page is opened.
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"
#: What Swagger UI sends for the schema (swagger-ui-bundle.js: ``Accept:"application/json,*/*"``).
SWAGGER_UI = "application/json,*/*"

#: The root's keys, in its order, and the URL name each stands for.
URL_NAMES = {
    "me": "api-me",
    "me_interviews": "api-me-interviews",
    "accounts": "api-accounts",
    "interviews": "api-interviews",
    "tracks": "api-tracks",
    "schema": "api-schema",
    "docs": "api-docs",
}
EVERY_KEY = list(URL_NAMES)
STAFF_KEYS = ["accounts", "interviews", "tracks"]


def superuser_client() -> Client:
    return logged_in(UserFactory(username="root", is_staff=True, is_superuser=True))


def openapi(client: Client) -> dict[str, Any]:
    response = client.get(reverse(SCHEMA), {"format": "json"})
    assert response.status_code == 200
    return response.json()


# -- the API root ----------------------------------------------------------------------


def test_the_root_lists_every_endpoint_with_a_working_absolute_url() -> None:
    root = UserFactory(username="root", is_staff=True, is_superuser=True)
    AccountWithTokenFactory(user=root)
    client = logged_in(root)
    response = client.get(reverse(ROOT))

    assert response.status_code == 200
    listed = response.json()
    assert list(listed) == EVERY_KEY
    for key, url in listed.items():
        assert url == f"http://testserver{reverse(f'biginterview:{URL_NAMES[key]}')}"
        assert client.get(url, HTTP_ACCEPT=SWAGGER_UI).status_code == 200, key


def test_a_member_sees_their_own_endpoints_and_the_schema_not_the_staff_ones() -> None:
    account = AccountWithTokenFactory()
    client = logged_in(account.user)
    listed = client.get(reverse(ROOT)).json()

    assert list(listed) == ["me", "me_interviews", "schema", "docs"]
    for url in listed.values():
        assert client.get(url, HTTP_ACCEPT=SWAGGER_UI).status_code == 200


def test_staff_see_only_the_listings_their_view_permissions_open() -> None:
    staff = UserFactory(username="clerk", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_account"))
    listed = logged_in(staff).get(reverse(ROOT)).json()
    assert [key for key in listed if key in STAFF_KEYS] == ["accounts"]


def test_the_schema_and_docs_are_listed_as_api_schema_access_says(settings: Any) -> None:
    set_app_settings(settings, API_SCHEMA_ACCESS="staff")
    member = logged_in(UserFactory()).get(reverse(ROOT)).json()
    operator = logged_in(UserFactory(username="op", is_staff=True)).get(reverse(ROOT)).json()

    assert list(member) == ["me", "me_interviews"]
    assert list(operator) == ["me", "me_interviews", "schema", "docs"]


@pytest.mark.parametrize("middleware", [[], [LOGIN_REQUIRED]])
def test_anonymous_clients_get_the_json_error_the_other_endpoints_give(
    client: Client, settings: Any, middleware: list[str]
) -> None:
    settings.MIDDLEWARE = [*settings.MIDDLEWARE, *middleware]
    root = client.get(reverse(ROOT))
    me = client.get(reverse("biginterview:api-me"))
    assert root.status_code == me.status_code == 403  # session authentication first
    assert root["Content-Type"].startswith("application/json")
    assert root.json() == me.json()


def test_the_schema_documents_the_root_and_every_answer_it_gives(client: Client) -> None:
    schema = openapi(superuser_client())
    root = schema["paths"][reverse(ROOT)]["get"]
    answer = root["responses"]["200"]["content"]["application/json"]["schema"]

    assert list(answer["properties"]) == EVERY_KEY
    assert answer["required"] == ["me", "me_interviews"]
    seen = {
        client.get(reverse(ROOT)).status_code,
        superuser_client().get(reverse(ROOT)).status_code,
    }
    assert seen <= {int(status) for status in root["responses"]}


def test_the_schema_is_valid_openapi_and_leaves_out_the_pages_for_people() -> None:
    schema = openapi(superuser_client())
    validate_schema(schema)
    assert reverse(ROOT) in schema["paths"]
    assert reverse(DOCS) not in schema["paths"]
    assert reverse(SCHEMA) not in schema["paths"]


# -- the docs page ------------------------------------------------------------------------


@pytest.mark.parametrize("access", ["authenticated", "staff", "public"])
@pytest.mark.parametrize("reader", ["anonymous", "user", "staff"])
def test_the_docs_page_has_the_schemas_readers(settings: Any, access: str, reader: str) -> None:
    set_app_settings(settings, API_SCHEMA_ACCESS=access)
    client = {
        "anonymous": Client,
        "user": lambda: logged_in(UserFactory()),
        "staff": lambda: logged_in(UserFactory(username="op", is_staff=True)),
    }[reader]()
    allowed = access == "public" or (
        reader != "anonymous" and (access != "staff" or reader == "staff")
    )

    schema = client.get(reverse(SCHEMA), {"format": "json"}).status_code
    page = client.get(reverse(DOCS)).status_code
    script = client.get(reverse(DOCS), {"script": ""}).status_code

    assert schema == page == script == (200 if allowed else 403)


def docs_page() -> str:
    response = logged_in(UserFactory()).get(reverse(DOCS))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    return response.content.decode()


def test_the_docs_page_loads_nothing_from_another_site() -> None:
    html = docs_page()
    assert not re.search(r"(https?:)?//", html)
    assert "<script>" not in html  # its script is a URL of its own (a strict CSP allows it)


def test_the_docs_pages_files_are_the_sidecars_static_files(settings: Any) -> None:
    html = docs_page()
    urls = re.findall(r'(?:href|src)="([^"]+)"', html)
    static = [url for url in urls if url.startswith(settings.STATIC_URL)]
    assert {url.rsplit("/", 1)[1] for url in static} == {
        "favicon-32x32.png",
        "swagger-ui.css",
        "swagger-ui-bundle.js",
        "swagger-ui-standalone-preset.js",
    }
    for url in static:
        assert url.startswith(f"{settings.STATIC_URL}drf_spectacular_sidecar/swagger-ui-dist/")
        assert finders.find(url.removeprefix(settings.STATIC_URL)), url
    assert set(urls) - set(static) == {f"{reverse(DOCS)}?script="}


def test_the_docs_script_loads_the_schema_as_swagger_ui_asks_for_it() -> None:
    client = logged_in(UserFactory())
    script = client.get(reverse(DOCS), {"script": ""})
    assert script.status_code == 200
    assert script["Content-Type"].startswith("application/javascript")
    [schema_url] = re.findall(r'url: "([^"]+)"', script.content.decode())
    assert schema_url == reverse(SCHEMA)

    schema = client.get(schema_url, HTTP_ACCEPT=SWAGGER_UI)
    assert schema.status_code == 200
    assert schema["Content-Type"].startswith("application/json")
    assert reverse("biginterview:api-me") in schema.json()["paths"]


# -- the schema URL: a page for browsers, the document for tools ---------------------------


def test_a_browser_opening_the_schema_is_sent_to_the_docs_page() -> None:
    response = logged_in(UserFactory()).get(reverse(SCHEMA), HTTP_ACCEPT=BROWSER)
    assert response.status_code == 302
    assert response["Location"] == reverse(DOCS)
    assert "Accept" in response["Vary"]


def test_an_anonymous_browser_is_refused_by_the_docs_page_as_by_the_schema(client: Client) -> None:
    response = client.get(reverse(SCHEMA), HTTP_ACCEPT=BROWSER, follow=True)
    assert response.redirect_chain == [(reverse(DOCS), 302)]
    assert response.status_code == client.get(reverse(SCHEMA)).status_code == 403


@pytest.mark.parametrize(
    ("accept", "content_type", "load"),
    [
        (None, "application/vnd.oai.openapi", yaml.safe_load),  # curl, requests: YAML as before
        ("*/*", "application/vnd.oai.openapi", yaml.safe_load),
        ("application/yaml", "application/yaml", yaml.safe_load),
        ("application/json", "application/json", json.loads),
        ("application/vnd.oai.openapi+json", "application/vnd.oai.openapi+json", json.loads),
        # A browser that names a format gets it.
        (BROWSER, "application/vnd.oai.openapi+json", json.loads),
    ],
)
def test_tools_get_the_openapi_document(
    accept: str | None, content_type: str, load: Callable[[bytes], Any]
) -> None:
    headers = {} if accept is None else {"HTTP_ACCEPT": accept}
    query = {"format": "json"} if accept == BROWSER else {}
    response = logged_in(UserFactory()).get(reverse(SCHEMA), query, **headers)
    assert response.status_code == 200
    assert response["Content-Type"].split(";")[0] == content_type
    assert reverse(ROOT) in load(response.content)["paths"]
    assert "Accept" in response["Vary"]


# -- the sidecar in INSTALLED_APPS (biginterview.E016) -------------------------------------


def test_the_sidecar_installed_is_quiet() -> None:
    assert check_docs_assets() == []


def test_a_missing_sidecar_is_an_error(settings: Any) -> None:
    settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "drf_spectacular_sidecar"]
    [error] = check_docs_assets()
    assert error.id == "biginterview.E016"
    assert error.is_serious()
    assert "INSTALLED_APPS" in error.msg and "drf_spectacular_sidecar" in (error.hint or "")
    with pytest.raises(SystemCheckError, match=r"biginterview\.E016"):
        call_command("check")
