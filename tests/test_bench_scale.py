"""``bench/scale.py`` stays in step with the models, without loading its volume: every
concrete column of each model it loads has a value, every page of the admin reads a
loaded table, and (on PostgreSQL) its SQL loads a tiny volume that the constraints
accept."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

import pytest
from django.apps import apps
from django.contrib import admin
from django.db import connection

from tests.support.paths import ROOT


@pytest.fixture(scope="module")
def scale() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "bench" / "scale.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_the_loader_fills_every_column_of_every_model_it_loads(scale: ModuleType) -> None:
    for table in scale.TABLES:
        missing, unknown = scale.unfilled_columns(table)
        assert not missing, f"{table.model}: bench/scale.py has no value for {missing}"
        assert not unknown, f"{table.model}: bench/scale.py fills columns it lacks: {unknown}"


def test_every_changelist_of_the_app_lists_a_loaded_table(scale: ModuleType) -> None:
    loaded = {apps.get_model(table.model) for table in scale.TABLES}
    app_models = {m for m in admin.site._registry if m._meta.app_label == "biginterview"}
    assert app_models <= loaded


@pytest.mark.postgresql  # the loader's SQL is PostgreSQL's
@pytest.mark.auth_user  # it loads the example project's auth.User
@pytest.mark.django_db
def test_the_loader_sql_fills_the_tables(scale: ModuleType) -> None:
    volume = scale.Volume().scaled(0.0005)
    with connection.cursor() as cursor:
        for table in scale.TABLES:
            cursor.execute(scale.insert_sql(table, volume))
    Interview = apps.get_model("biginterview.Interview")
    WebhookEvent = apps.get_model("biginterview.WebhookEvent")
    assert Interview.objects.count() == volume.interviews
    assert WebhookEvent.objects.filter(status="processed").exists()
