"""Cost of the "Practice interviews" redirect when the cached SSO token is fresh.

    python bench/sso_redirect.py [--iterations 2000]

Standalone: its own minimal settings (in-memory SQLite), an in-process sandbox as Big
Interview, Django's test ``Client`` through the full middleware stack. It prints, for the
redirect with a fresh cached token, the outbound API calls (must be 0), the database
queries of one request (target: at most 4), and the median view time next to a plain
``login_required`` redirect view measured in the same run. Figures move from run to run
and machine to machine: compare within one run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import django
from django.conf import settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

API_KEY = "935d85189822bf96c28c4fa79d3d8f31"


def configure() -> None:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="bench-not-secret",
        ALLOWED_HOSTS=["*"],
        USE_TZ=True,
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[
            "django.contrib.auth",
            "django.contrib.contenttypes",
            "django.contrib.sessions",
            "rest_framework",
            "django_biginterview",
        ],
        MIDDLEWARE=[
            "django.contrib.sessions.middleware.SessionMiddleware",
            "django.middleware.common.CommonMiddleware",
            "django.middleware.csrf.CsrfViewMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
        ],
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}},
        TEMPLATES=[
            {"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}
        ],
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],
        LOGIN_URL="/login/",
        BIGINTERVIEW={"BASE_URL": "http://127.0.0.1:1", "API_KEY": API_KEY},
        LOGGING_CONFIG=None,
    )
    django.setup()


def plain_redirect(request):  # type: ignore[no-untyped-def]
    """The baseline: what any login_required redirect view costs on this stack."""
    from django.http import HttpResponseRedirect

    return HttpResponseRedirect("https://example.com/members/dashboard")


urlpatterns: list = []


def build_urls() -> None:
    from django.contrib.auth.decorators import login_required
    from django.urls import include, path

    urlpatterns.extend(
        [
            path("biginterview/", include("django_biginterview.urls")),
            path("plain/", login_required(plain_redirect)),
        ]
    )


def timed(client, url: str, iterations: int) -> list[float]:  # type: ignore[no-untyped-def]
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        response = client.get(url)
        samples.append(time.perf_counter() - start)
        assert response.status_code == 302, response.status_code
    return samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=2000)
    args = parser.parse_args()

    configure()
    build_urls()

    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext, setup_test_environment

    from django_biginterview.models import Account
    from django_biginterview.sandbox import Sandbox

    setup_test_environment()
    call_command("migrate", verbosity=0)
    sandbox = Sandbox(api_keys=[API_KEY]).start()
    settings.BIGINTERVIEW = {**settings.BIGINTERVIEW, "BASE_URL": sandbox.url}
    try:
        user = get_user_model().objects.create_user(
            "bench", email="bench@example.com", first_name="Ben", last_name="Ch"
        )
        client = Client()
        client.force_login(user)

        practice_url, plain_url = "/biginterview/practice/", "/plain/"
        first = client.get(practice_url)
        assert first.status_code == 302, first.status_code
        first_calls = len(sandbox.api_calls())
        assert Account.objects.get(user=user).sso_token

        sandbox.reset_calls()
        with CaptureQueriesContext(connection) as queries:
            response = client.get(practice_url)
        assert response.status_code == 302
        # Read the captures now: they are views on a log that later requests reset.
        practice_sql = [query["sql"] for query in queries.captured_queries]
        with CaptureQueriesContext(connection) as plain_queries:
            client.get(plain_url)
        plain_query_count = len(plain_queries)

        warmup = max(50, args.iterations // 10)
        timed(client, practice_url, warmup)
        timed(client, plain_url, warmup)
        # Interleave blocks so drift on a shared machine hits both views alike.
        practice, plain = [], []
        block = max(1, args.iterations // 10)
        while len(practice) < args.iterations:
            n = min(block, args.iterations - len(practice))
            practice += timed(client, practice_url, n)
            plain += timed(client, plain_url, n)
        calls_during_run = len(sandbox.api_calls())
    finally:
        sandbox.stop()

    def ms(values: list[float]) -> str:
        return f"{statistics.median(values) * 1000:.3f} ms"

    p95 = lambda values: sorted(values)[int(len(values) * 0.95)] * 1000  # noqa: E731
    median_practice, median_plain = statistics.median(practice), statistics.median(plain)
    print("SSO redirect with a fresh cached token (Django test Client, full middleware)")
    print(f"  first click (creates the account):     {first_calls} API call(s)")
    print(
        f"  outbound API calls, fresh token:        {calls_during_run} "
        f"over {args.iterations + warmup + 1} redirects (must be 0)"
    )
    print(f"  database queries per redirect:          {len(practice_sql)} (target <= 4)")
    for sql in practice_sql:
        print(f"      {sql[:96]}")
    print(f"  database queries, plain login_required: {plain_query_count}")
    print(f"  iterations per view:                    {args.iterations}")
    print(f"  median practice redirect:               {ms(practice)} (p95 {p95(practice):.3f} ms)")
    print(f"  median plain login_required redirect:   {ms(plain)} (p95 {p95(plain):.3f} ms)")
    print(
        f"  overhead of the practice view:          "
        f"{(median_practice - median_plain) * 1000:+.3f} ms "
        f"({median_practice / median_plain:.2f}x the plain redirect)"
    )
    ok = calls_during_run == 0 and len(practice_sql) <= 4
    print("RESULT:", "OK" if ok else "FAILED (API calls or query budget)")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
