from django.db import migrations, models
from django.db.models import Q
from django.utils import timezone


def keep_remote_ids(apps, schema_editor):
    """Each remote id as the target's value (JSON) and as its text (the canonical key)."""
    vendor = schema_editor.connection.vendor
    table = "sync_entitysyncstate"
    if vendor == "postgresql":
        sql = (
            f"UPDATE {table} SET remote_key = remote_id::text, remote_value = to_jsonb(remote_id) "
            "WHERE remote_id IS NOT NULL"
        )
    elif vendor == "sqlite":
        sql = (
            f"UPDATE {table} SET remote_key = CAST(remote_id AS TEXT), "
            "remote_value = CAST(remote_id AS TEXT) WHERE remote_id IS NOT NULL"
        )
    else:
        State = apps.get_model("sync", "EntitySyncState")
        for state in State.objects.filter(remote_id__isnull=False).iterator(chunk_size=5000):
            state.remote_key, state.remote_value = str(state.remote_id), state.remote_id
            state.save(update_fields=["remote_key", "remote_value"])
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(sql)


class Migration(migrations.Migration):
    dependencies = [
        ("sync", "0004_notify_followers"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="entitysyncstate", name="sync_state_unique_remote_id"
        ),
        migrations.AddField(
            model_name="entitysyncstate",
            name="remote_key",
            field=models.CharField(
                blank=True,
                help_text='The remote id\'s text: "5" and 5 are one record. Empty: not known there.',
                max_length=255,
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="entitysyncstate",
            name="remote_value",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.RunPython(keep_remote_ids, migrations.RunPython.noop, elidable=False),
        migrations.RemoveField(model_name="entitysyncstate", name="remote_id"),
        migrations.RenameField(
            model_name="entitysyncstate", old_name="remote_value", new_name="remote_id"
        ),
        migrations.AlterField(
            model_name="entitysyncstate",
            name="remote_id",
            field=models.JSONField(
                blank=True,
                help_text="The entity's id on the target, as the target gave it.",
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="entitysyncstate",
            name="remote_parent_id",
            field=models.CharField(blank=True, max_length=255, null=True),
        ),
        migrations.RenameField(
            model_name="entitysyncstate",
            old_name="remote_parent_id",
            new_name="remote_parent_key",
        ),
        migrations.AlterField(
            model_name="entitysyncstate",
            name="remote_parent_key",
            field=models.CharField(
                blank=True, help_text="A comment's postId on the target.", max_length=255, null=True
            ),
        ),
        migrations.AlterField(
            model_name="entitysyncstate",
            name="delivered_hash",
            field=models.CharField(
                blank=True,
                help_text="Hash of the record last sent and acknowledged.",
                max_length=32,
            ),
        ),
        migrations.AddField(
            model_name="entitysyncstate",
            name="acknowledged_hash",
            field=models.CharField(
                blank=True,
                help_text="Hash of the record as the target said it stored it, when that differs.",
                max_length=32,
            ),
        ),
        migrations.AddField(
            model_name="entitysyncstate",
            name="unconfirmed_run",
            field=models.BigIntegerField(
                blank=True,
                help_text="The sync run that sent the unconfirmed create; it may land until that "
                "run has ended and a timeout has passed.",
                null=True,
            ),
        ),
        migrations.AddConstraint(
            model_name="entitysyncstate",
            constraint=models.UniqueConstraint(
                condition=Q(("remote_key__isnull", False)),
                fields=("entity_table", "remote_key"),
                name="sync_state_unique_remote_key",
            ),
        ),
        migrations.AddField(
            model_name="syncrun",
            name="target",
            field=models.CharField(blank=True, help_text="The target's base URL.", max_length=2000),
        ),
        migrations.AlterField(
            model_name="syncrun",
            name="status",
            field=models.CharField(
                choices=[
                    ("running", "running"),
                    ("succeeded", "succeeded"),
                    ("partial", "some entities failed"),
                    ("failed", "failed"),
                    ("abandoned", "abandoned (its process ended without finishing it)"),
                ],
                default="running",
                max_length=9,
            ),
        ),
        migrations.CreateModel(
            name="SyncTarget",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "url",
                    models.CharField(
                        help_text="The target's base URL, normalised.", max_length=2000
                    ),
                ),
                ("adopted_at", models.DateTimeField(default=timezone.now)),
                (
                    "rewrites",
                    models.JSONField(
                        blank=True, default=dict, help_text="Fields the target rewrites, by kind."
                    ),
                ),
            ],
        ),
    ]
