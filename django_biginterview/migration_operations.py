"""Migration operations that are safe on a populated PostgreSQL table: indexes built and
dropped ``CONCURRENTLY`` there (so webhooks and syncs keep writing), plainly elsewhere.
A migration using them must be non-atomic (``atomic = False``): PostgreSQL refuses
``CONCURRENTLY`` inside a transaction. Migrations import them from here, so they stay
importable as long as any migration names them.
"""

from typing import Any

from django.db import migrations
from django.db.migrations.operations.base import Operation


class AddIndexConcurrentlyOnPostgreSQL(migrations.AddIndex):
    """``django.contrib.postgres``'s ``AddIndexConcurrently`` on PostgreSQL, a plain
    ``AddIndex`` elsewhere. It is imported only there: it needs psycopg."""

    def _concurrently(self, schema_editor: Any) -> Any:
        if schema_editor.connection.vendor != "postgresql":
            return None
        from django.contrib.postgres.operations import AddIndexConcurrently

        return AddIndexConcurrently(self.model_name, self.index)

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        concurrently = self._concurrently(schema_editor)
        if concurrently is None:
            super().database_forwards(app_label, schema_editor, from_state, to_state)
        else:
            concurrently.database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        concurrently = self._concurrently(schema_editor)
        if concurrently is None:
            super().database_backwards(app_label, schema_editor, from_state, to_state)
        else:
            concurrently.database_backwards(app_label, schema_editor, from_state, to_state)

    def describe(self) -> str:
        return f"{super().describe()} (concurrently on PostgreSQL)"


class DropDerivedIndex(Operation):
    """Drops index ``name`` from the database, concurrently on PostgreSQL, and leaves the
    model state alone; unapplying builds it again from ``columns``. Only on ``vendors``:
    the "_like" index exists on PostgreSQL only."""

    def __init__(self, name: str, table: str, columns: str, vendors: tuple[str, ...]) -> None:
        self.name = name
        self.table = table
        self.columns = columns
        self.vendors = vendors

    def state_forwards(self, app_label: str, state: Any) -> None:
        pass

    def _run(self, schema_editor: Any, drop: bool) -> None:
        vendor = schema_editor.connection.vendor
        if vendor not in self.vendors:
            return
        concurrently = " CONCURRENTLY" if vendor == "postgresql" else ""
        name = schema_editor.quote_name(self.name)
        if drop:
            schema_editor.execute(f"DROP INDEX{concurrently} IF EXISTS {name}")
        else:
            table = schema_editor.quote_name(self.table)
            schema_editor.execute(
                f"CREATE INDEX{concurrently} IF NOT EXISTS {name} ON {table} ({self.columns})"
            )

    def database_forwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        self._run(schema_editor, drop=True)

    def database_backwards(
        self, app_label: str, schema_editor: Any, from_state: Any, to_state: Any
    ) -> None:
        self._run(schema_editor, drop=False)

    def describe(self) -> str:
        return f"Drop index {self.name} (concurrently on PostgreSQL; the state keeps it)"
