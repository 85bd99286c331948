"""A NOTIFY on channel sync_events in the transaction that logs change events (PostgreSQL only).

A statement-level AFTER INSERT trigger: one notification per INSERT statement, folded by
PostgreSQL into one per transaction, delivered only when the transaction commits, so a follower
(`sync_changes --follow`) hears only committed changes and the API pays no extra round trip.
The channel name is `sync.notifications.CHANNEL`. Other databases: nothing to do (the follower
polls there).
"""

from django.db import migrations

CREATE = [
    """
    CREATE OR REPLACE FUNCTION sync_modelevent_notify() RETURNS trigger AS $$
    BEGIN
        PERFORM pg_notify('sync_events', '');
        RETURN NULL;
    END;
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER sync_modelevent_notify
    AFTER INSERT ON sync_modelevent
    FOR EACH STATEMENT EXECUTE FUNCTION sync_modelevent_notify()
    """,
]

DROP = [
    "DROP TRIGGER IF EXISTS sync_modelevent_notify ON sync_modelevent",
    "DROP FUNCTION IF EXISTS sync_modelevent_notify()",
]


def create_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in CREATE:
            schema_editor.execute(statement)


def drop_trigger(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in DROP:
            schema_editor.execute(statement)


class Migration(migrations.Migration):

    dependencies = [
        ("sync", "0003_failed_calls"),
    ]

    operations = [migrations.RunPython(create_trigger, drop_trigger)]
