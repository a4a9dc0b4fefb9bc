"""Indexes for the staff pages at scale (issue #14), built without locking writers out.

On PostgreSQL every index here is built with ``CREATE INDEX CONCURRENTLY`` and the two
redundant ones are dropped with ``DROP INDEX CONCURRENTLY``: webhooks and syncs keep
writing while it runs. That cannot happen inside a transaction, so this migration is
not atomic. If it is interrupted, an index may be left INVALID: drop it
(``DROP INDEX CONCURRENTLY name``) and migrate again. On SQLite the same indexes are
built and dropped plainly.

The dropped indexes are derived by Django from field definitions the model state keeps
(``Account.partner_id``'s ``unique=True`` adds a text-pattern "_like" index on
PostgreSQL, ``Interview.account``'s ForeignKey an index on ``account_id``), so they are
dropped from the database only.
"""

from django.db import migrations, models

from django_biginterview.migration_operations import (
    AddIndexConcurrentlyOnPostgreSQL,
    DropDerivedIndex,
)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("biginterview", "0003_sync_run_lease_and_outcomes"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgreSQL(
            model_name="account",
            index=models.Index(
                fields=["-created_at", "-id"], name="biginterview_acct_created_idx"
            ),
        ),
        AddIndexConcurrentlyOnPostgreSQL(
            model_name="interview",
            index=models.Index(
                fields=["-remote_updated_at", "-id"], name="biginterview_intv_updated_idx"
            ),
        ),
        AddIndexConcurrentlyOnPostgreSQL(
            model_name="interview",
            index=models.Index(fields=["remote_id"], name="biginterview_intv_remote_idx"),
        ),
        AddIndexConcurrentlyOnPostgreSQL(
            model_name="interview",
            index=models.Index(
                fields=["category", "-remote_updated_at", "-id"],
                name="biginterview_intv_category_idx",
            ),
        ),
        AddIndexConcurrentlyOnPostgreSQL(
            model_name="interview",
            index=models.Index(
                condition=models.Q(("deleted_at__isnull", False)),
                fields=["-remote_updated_at", "-id"],
                name="biginterview_intv_deleted_idx",
            ),
        ),
        DropDerivedIndex(
            name="biginterview_account_partner_id_6d055c85_like",
            table="biginterview_account",
            columns='"partner_id" varchar_pattern_ops',
            vendors=("postgresql",),
        ),
        DropDerivedIndex(
            name="biginterview_interview_account_id_a6f8765c",
            table="biginterview_interview",
            columns='"account_id"',
            vendors=("postgresql", "sqlite"),
        ),
    ]
