"""Row counts kept by triggers (PostgreSQL only; news/counts.py says why and how they are read).

Statement-level AFTER INSERT and AFTER DELETE triggers on news_post and news_comment append the
number of rows the statement added or removed (from its transition table) to news_rowcount; every
64th delta, when no other transaction is folding, folds the table's deltas into one row. AFTER
TRUNCATE removes the table's deltas. The counts start from the rows there are, with writes held
off until the migration commits. Other databases: nothing to do (they count the table).
"""

from django.db import migrations, models

TABLES = ("news_post", "news_comment")

CREATE = [
    """
    CREATE OR REPLACE FUNCTION news_rowcount_add() RETURNS trigger AS $$
    DECLARE
        delta bigint;
        delta_id bigint;
    BEGIN
        IF TG_OP = 'INSERT' THEN
            SELECT count(*) INTO delta FROM new_rows;
        ELSE
            SELECT -count(*) INTO delta FROM old_rows;
        END IF;
        IF delta = 0 THEN
            RETURN NULL;
        END IF;
        INSERT INTO news_rowcount (table_name, rows) VALUES (TG_TABLE_NAME, delta)
        RETURNING id INTO delta_id;
        IF delta_id % 64 = 0 AND pg_try_advisory_xact_lock(hashtext('news_rowcount_fold')) THEN
            WITH folded AS (
                DELETE FROM news_rowcount WHERE table_name = TG_TABLE_NAME RETURNING rows
            )
            INSERT INTO news_rowcount (table_name, rows)
            SELECT TG_TABLE_NAME, sum(rows) FROM folded HAVING count(*) > 0;
        END IF;
        RETURN NULL;
    END;
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE OR REPLACE FUNCTION news_rowcount_reset() RETURNS trigger AS $$
    BEGIN
        DELETE FROM news_rowcount WHERE table_name = TG_TABLE_NAME;
        RETURN NULL;
    END;
    $$ LANGUAGE plpgsql
    """,
]
for _table in TABLES:
    CREATE += [
        f"""
        CREATE TRIGGER {_table}_count_inserts AFTER INSERT ON {_table}
        REFERENCING NEW TABLE AS new_rows
        FOR EACH STATEMENT EXECUTE FUNCTION news_rowcount_add()
        """,
        f"""
        CREATE TRIGGER {_table}_count_deletes AFTER DELETE ON {_table}
        REFERENCING OLD TABLE AS old_rows
        FOR EACH STATEMENT EXECUTE FUNCTION news_rowcount_add()
        """,
        f"""
        CREATE TRIGGER {_table}_count_truncates AFTER TRUNCATE ON {_table}
        FOR EACH STATEMENT EXECUTE FUNCTION news_rowcount_reset()
        """,
    ]

START = [
    f"LOCK TABLE {', '.join(TABLES)} IN SHARE ROW EXCLUSIVE MODE",
    "DELETE FROM news_rowcount",
    *(
        f"INSERT INTO news_rowcount (table_name, rows) SELECT '{table}', count(*) FROM {table}"
        for table in TABLES
    ),
]

DROP = [
    *(
        f"DROP TRIGGER IF EXISTS {table}_count_{event} ON {table}"
        for table in TABLES
        for event in ("inserts", "deletes", "truncates")
    ),
    "DROP FUNCTION IF EXISTS news_rowcount_add()",
    "DROP FUNCTION IF EXISTS news_rowcount_reset()",
]


def create_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in [*START[:1], *CREATE, *START[1:]]:
            schema_editor.execute(statement, params=None)


def drop_triggers(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in DROP:
            schema_editor.execute(statement, params=None)


class Migration(migrations.Migration):
    dependencies = [
        ("news", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="RowCount",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("table_name", models.CharField(max_length=63)),
                ("rows", models.BigIntegerField()),
            ],
            options={
                "indexes": [models.Index(fields=["table_name"], name="news_rowcount_table")],
            },
        ),
        migrations.RunPython(create_triggers, drop_triggers),
    ]
