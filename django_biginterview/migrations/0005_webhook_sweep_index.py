"""The sweeper's partial index (issue #14): only ``pending`` events and ``failed`` ones
with a retry planned, so a sweep with nothing due costs a few index entries at any
volume. Built concurrently on PostgreSQL (the index holds few rows; the build reads the
table once), so this migration is not atomic."""

from django.db import migrations, models

from django_biginterview.migration_operations import AddIndexConcurrentlyOnPostgreSQL


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("biginterview", "0004_scale_indexes"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgreSQL(
            model_name="webhookevent",
            index=models.Index(
                condition=models.Q(
                    ("status", "pending"),
                    models.Q(("next_attempt_at__isnull", False), ("status", "failed")),
                    _connector="OR",
                ),
                fields=["received_at"],
                name="biginterview_wh_sweep_idx",
            ),
        ),
    ]
